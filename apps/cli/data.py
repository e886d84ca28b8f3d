"""`ndt traffic run` (D-ITG schedules on the lab, into the stores) and `ndt data
summary|export|import` (the traffic and labeled stores)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from apps.common.table import emit, print_table
from controller_app.client import ControllerClient
from topologies import Topology

from .base import CliError, Parser
from .lab import progress


def cmd_traffic_run(args: argparse.Namespace) -> None:
    from ptwin.control import lab_status
    from traffic.runner import SHORT_SHARE, TrafficRun
    from traffic.schedule import load_schedule
    from traffic.store import Stores

    schedule = load_schedule(args.schedule)
    if args.duration is not None:
        schedule = schedule.scaled_to(args.duration)
    if args.flows is not None or args.seed is not None:
        from dataclasses import replace

        schedule = replace(schedule, flows=args.flows or schedule.flows,
                           seed=args.seed if args.seed is not None else schedule.seed)
    st = lab_status()
    if st.get("status") != "ready":
        raise CliError("no lab is running; start one with 'ndt lab up TOPO'")
    info = st["info"]
    client = ControllerClient(info["controller"]["rest"])
    topo = Topology.from_dict(client.topology())
    stores = Stores(args.data)
    run = TrafficRun(schedule, stores, info["hosts"], topo, client, window_s=args.window,
                     progress=not args.json)
    if not args.json:
        print(f"run {run.run_id}: schedule {schedule.name}, {len(schedule.phases)} phase(s), "
              f"{schedule.duration_s:g} s, {schedule.flows} flows, data in {stores.root}", file=sys.stderr)
    result = run.run()

    def render(r: dict[str, Any]) -> None:
        print(f"run {r['run']} {r['status']}: {r['windows']} windows, {r['labels']} labels, "
              f"{r['flows_failed']} failed flow(s)")
        for p in r["phases"]:
            share = "" if p["sent_share"] is None else f", senders sent {p['sent_share']:.0%} of the asked rate"
            print(f"  phase {p['idx'] + 1} {p['profile']} load {p['load']:g}: "
                  f"{p['finished']} finished, {p['failed']} failed{share}")

    emit(result, args.json, render)
    for p in result["phases"]:
        if p["senders_short"]:
            print(f"warning: phase {p['idx'] + 1}: {p['senders_short']} sender(s) sent under "
                  f"{SHORT_SHARE:.0%} of their asked rate (median {p['sent_share']:.0%}); the machine's CPU "
                  "is short, and the labels describe less traffic than was asked", file=sys.stderr)
    if result["flows_failed"]:
        raise CliError(f"{result['flows_failed']} flow(s) failed; see {run.logs}")

def cmd_data_summary(args: argparse.Namespace) -> None:
    from traffic.dataset import summary
    from traffic.store import Stores

    info = summary(Stores(args.data), args.run)

    def render(d: dict[str, Any]) -> None:
        print(f"data {d['data']}: {len(d['runs'])} run(s), {d['windows']} windows, {d['labels']} labels")
        for r in d["runs"]:
            print(f"\nrun {r['id']} ({r['status']}): topology {r['topology']}, schedule {r['schedule']}, "
                  f"{r['windows']} windows, {r['flow_rows']} flow-windows, labeled {100 * r['labeled_fraction']:.1f}%")
            rows = [{"phase": p["idx"] + 1, "profile": p["profile"], "proto": p["protocol"], "load": p["load"],
                     "seconds": round((p["end_at"] or p["start_at"]) - p["start_at"], 1),
                     "flows": p["flows"], "mean_bps": p["rate_bps"]["mean"], "stdev_bps": p["rate_bps"]["stdev"]}
                    for p in r["phases"]]
            print_table(rows, ["phase", "profile", "proto", "load", "seconds", "flows", "mean_bps", "stdev_bps"])

    emit(info, args.json, render)

def cmd_data_export(args: argparse.Namespace) -> None:
    from pathlib import Path

    from traffic.dataset import export
    from traffic.store import Stores

    res = export(Stores(args.data), Path(args.out), args.run)
    emit(res, args.json, lambda r: print(f"wrote {r['file']}: {r['runs']} run(s), {r['windows']} windows, "
                                         f"{r['labeled_flows']} labeled flow-windows"))

def cmd_data_import(args: argparse.Namespace) -> None:
    from pathlib import Path

    from vtwin.paper_data import PaperDataError, find_splits, import_splits

    if args.source != "robust-ndt":
        raise CliError(f"unknown dataset source {args.source!r}; ndt imports: robust-ndt")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CliError(f"{out.parent}: no such directory for --out")
    try:
        splits = find_splits(Path(args.dir), args.topology, args.split)
        res = import_splits(splits, out, every=args.every, progress=(lambda m: None) if args.json else progress)
    except PaperDataError as exc:
        raise CliError(str(exc)) from None

    def render(r: dict[str, Any]) -> None:
        print(f"wrote {r['file']}: {r['rows']} labeled rows")
        print_table(r["splits"], ["topology", "pattern", "split", "rows", "paths"])

    emit(res, args.json, render)


def register(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser("traffic", help="run D-ITG traffic schedules on the lab")
    trsub = tr.add_subparsers(dest="sub", required=True, parser_class=Parser)
    t = trsub.add_parser("run", help="run a schedule (built-in name or .yaml/.json file)")
    t.add_argument("schedule", metavar="SCHEDULE")
    t.add_argument("--duration", type=float, default=None, help="scale the phases to last this many seconds")
    t.add_argument("--window", type=float, default=1.0, help="measurement window, seconds (default 1)")
    t.add_argument("--flows", type=int, default=None, help="number of flows (default: the schedule's)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--data", default=None, help="data directory (default $NDT_DATA or ~/.local/share/ndt)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_traffic_run)

    da = sub.add_parser("data", help="the traffic and labeled stores")
    dsub = da.add_subparsers(dest="sub", required=True, parser_class=Parser)
    t = dsub.add_parser("summary", help="windows, flows, labeled fraction, phases, rates")
    t.add_argument("--run", default=None)
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_data_summary)
    t = dsub.add_parser("export", help="write a training-ready JSON Lines file")
    t.add_argument("--out", required=True)
    t.add_argument("--run", default=None)
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_data_export)
    t = dsub.add_parser("import", help="labeled data from elsewhere as a training-ready JSON Lines file "
                                       "(robust-ndt: the paper's tf.data datasets)")
    t.add_argument("source", choices=["robust-ndt"])
    t.add_argument("dir", metavar="DIR", help="the datasets folder, or one topology's, or one split's")
    t.add_argument("--out", required=True, help="the JSON Lines file to write ('ndt train --dataset' reads it)")
    t.add_argument("--topology", default=None, help="only this topology (5g_crosshaul, germany, passion)")
    t.add_argument("--split", default=None, choices=["training", "validation"])
    t.add_argument("--every", type=int, default=1, metavar="K", help="keep one row in K (default every row)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_data_import)
