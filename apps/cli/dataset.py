"""`ndt dataset build|status|export|import`: training corpora, campaigns of labeled runs over
many networks from a corpus spec (`traffic.corpus`, `traffic.campaign`)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from apps.common.table import emit, print_table

from .base import CliError, Parser
from .lab import progress
from .lab_args import add_daemon_args

COLUMNS = ["key", "topology", "nodes", "flows", "queue", "max_mbps", "failed", "status", "windows", "labels",
           "build_seconds", "short_phases"]


def _campaign(args: argparse.Namespace):
    from ptwin.lab import LabConfig
    from traffic.campaign import Campaign
    from traffic.corpus import CorpusError, load_spec
    from traffic.store import Stores

    try:
        spec = load_spec(args.spec)
        ports = ("of_port", "rest_port", "ports_per_daemon")
        lab = LabConfig(**{k: getattr(args, k) for k in ports if hasattr(args, k)})
        return Campaign(spec, Stores(args.data), progress=(lambda m: None) if args.json else progress,
                        bars=not args.json, lab=lab)
    except CorpusError as exc:
        raise CliError(str(exc)) from None


def render_summary(s: dict[str, Any]) -> None:
    print(f"corpus {s['spec']} in {s['data']}: {s['done']}/{s['total']} runs done, {s['windows']} windows, "
          f"{s['labeled_flow_windows']} labeled flow-windows, built in {s['build_seconds'] / 60:.1f} min")
    rows = [{**r, "failed": ",".join(r["failed"]) or "-", "max_mbps": r["max_mbps"] or "auto",
             "queue": r["queue"] or "default"} for r in s["runs"]]
    print_table(rows, COLUMNS)
    for r in s["runs"]:
        if r["error"] and r["status"] != "done":
            print(f"  {r['key']}: {r['error']}")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_build(args: argparse.Namespace) -> None:
    from traffic.corpus import CorpusError

    camp = _campaign(args)
    pending = camp.pending()
    if not args.json:
        done = len(camp.spec.runs) - len(pending)
        print(f"corpus {camp.spec.name}: {len(camp.spec.runs)} runs, {done} already done, "
              f"{sum(r.schedule.duration_s for r in pending) / 60:.0f} min of traffic to go, data in "
              f"{camp.stores.root}", file=sys.stderr)
    # SIGTERM ends the campaign like Ctrl-C: the run's lab goes down and the run is marked interrupted
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = camp.build(limit=args.limit)
    except KeyboardInterrupt:
        print("ndt: interrupted; run the same command again to resume (done runs are kept)", file=sys.stderr)
        raise SystemExit(130) from None
    except CorpusError as exc:
        raise CliError(str(exc)) from None
    emit(summary, args.json, render_summary)
    failed = [r["key"] for r in summary["runs"] if r["status"] not in ("done", "pending")]
    if failed:
        raise CliError(f"{len(failed)} run(s) not built: {', '.join(failed)}; run the command again to retry them")


def cmd_status(args: argparse.Namespace) -> None:
    emit(_campaign(args).summary(), args.json, render_summary)


def cmd_export(args: argparse.Namespace) -> None:
    from traffic.campaign import done_run_ids
    from traffic.dataset import export
    from traffic.store import Stores

    stores = Stores(args.data)
    runs = done_run_ids(stores.root)
    if runs is None:
        raise CliError(f"{stores.root}: no corpus here (no campaign record); 'ndt data export' exports any runs")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CliError(f"{out.parent}: no such directory for --out")
    res = export(stores, out, runs_only=runs)
    emit(res, args.json, lambda r: print(f"wrote {r['file']}: {r['runs']} run(s), {r['windows']} windows, "
                                         f"{r['labeled_flows']} labeled flow-windows"))


def cmd_import(args: argparse.Namespace) -> None:
    from traffic.dataset import import_jsonl
    from traffic.store import Stores

    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    try:
        res = import_jsonl(Stores(args.data), path)
    except (ValueError, KeyError) as exc:
        raise CliError(str(exc)) from None
    emit(res, args.json, lambda r: print(f"imported {r['runs']} run(s) ({r['skipped_runs']} already there), "
                                         f"{r['windows']} windows, {r['labeled_flows']} labeled flow-windows"))


def register(sub: argparse._SubParsersAction) -> None:
    from traffic.corpus import builtin_specs

    ds = sub.add_parser("dataset", help="training corpora: labeled runs over many networks")
    dsub = ds.add_subparsers(dest="sub", required=True, parser_class=Parser)
    names = ", ".join(builtin_specs())
    t = dsub.add_parser("build", help="run a corpus campaign (resumable: run it again after Ctrl-C or a crash)")
    t.add_argument("spec", metavar="SPEC", help=f"a corpus spec (.yaml) or a built-in one ({names})")
    t.add_argument("--data", default=None, help="the corpus data directory (default $NDT_DATA or ~/.local/share/ndt)")
    t.add_argument("--limit", type=int, default=None, metavar="N", help="build at most N runs this time")
    add_daemon_args(t)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_build)
    t = dsub.add_parser("status", help="what a campaign has built so far")
    t.add_argument("spec", metavar="SPEC")
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_status)
    t = dsub.add_parser("export", help="the corpus' done runs as one JSON Lines file")
    t.add_argument("--out", required=True)
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_export)
    t = dsub.add_parser("import", help="an exported corpus (or 'ndt data export' file) into a data directory")
    t.add_argument("file", metavar="FILE")
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_import)
