"""`ndt optimize OBJECTIVE`: search a stored snapshot's routing with the virtual twin, beside
today's routing and the min-max-utilization LP (`apps.optimize`)."""

from __future__ import annotations

import argparse
from typing import Any

from apps.common.table import emit, print_table
from traffic.store import Stores

from .base import CliError
from .model import add_base_model_arg, serve_base_model_first

SHOWN = ("slo_violations", "max_utilization", "mean_delay", "p95_delay", "changes")


def _objective(args: argparse.Namespace, stores: Stores):
    from apps.optimize import OptimizeError, read_objective

    try:
        obj = read_objective(args.objective) if args.objective else None
    except OptimizeError as exc:
        raise CliError(str(exc)) from None
    from apps.optimize import parse_objective

    obj = obj or parse_objective({})
    if args.snapshot is not None:
        obj = obj.model_copy(update={"snapshot_id": args.snapshot})
    if args.budget is not None:
        if not args.budget > 0:
            raise CliError(f"--budget must be above 0 seconds, not {args.budget:g}")
        obj = obj.model_copy(update={"search": obj.search.model_copy(update={"budget_s": args.budget})})
    if obj.snapshot_id is None:
        run = stores.newest_run()
        last = stores.last_window(run) if run else None
        if last is None:
            raise CliError(f"no snapshot in {stores.root}: give --snapshot ID (or run traffic first)")
        obj = obj.model_copy(update={"snapshot_id": last["id"]})
    return obj


def render(r: dict[str, Any]) -> None:
    s = r["search"]
    print(f"snapshot {r['snapshot_id']} ({r['run']} window {r['window']}), model {r['model_version']}: "
          f"{s['candidates']} candidates in {s['seconds']:.1f} s ({s['candidates_per_s']:.0f}/s, "
          f"stopped: {s['stopped']})")
    rows = [{"configuration": name, **{k: r[name]["metrics"][k] for k in SHOWN},
             "intents": "ok" if r[name]["feasible"] else "broken"} for name in ("current", "lp", "twin")]
    print_table(rows, ["configuration", *SHOWN, "intents"])
    ch = r["twin"]["changes"]
    if not r["better_than_current"]:
        print("the twin found nothing better than today's routing")
        return
    for lid, w in ch["weights"].items():
        print(f"  weight {lid} = {w:g}")
    for p in ch["pins"]:
        print(f"  pin {p['src']}->{p['dst']} on {','.join(p['links'])} ({p['flows']} flow(s))")
    moved = [f for f in r["flows"] if f["moved"]]
    print(f"{len(moved)} flow(s) move, {len(r['flows'])} change their predicted delay by more than 5 %")


def cmd_optimize(args: argparse.Namespace) -> None:
    from apps.optimize import OptimizeError, network_of, optimize
    from apps.whatif import WhatIfError

    stores = Stores(args.data)
    obj = _objective(args, stores)
    try:
        net = network_of(stores, obj)  # a bad snapshot is refused before the model (and TensorFlow) loads
    except (OptimizeError, WhatIfError) as exc:
        raise CliError(str(exc)) from None
    from vtwin.predictor import Predictor
    from vtwin.registry import Registry

    serve_base_model_first(stores, args)
    predictor = Predictor(Registry(stores), xla=False)
    try:
        result = optimize(predictor.predict, stores, obj, net)
    except OptimizeError as exc:
        raise CliError(str(exc)) from None
    emit(result, args.json, render)


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("optimize", help="search a snapshot's routing with the twin (objective: YAML or JSON)")
    t.add_argument("objective", metavar="OBJECTIVE", nargs="?", default=None,
                   help="objective file (default: minimize SLO violations, max utilization, mean delay)")
    t.add_argument("--snapshot", type=int, default=None, help="snapshot id (default: the objective's, else the newest)")
    t.add_argument("--budget", type=float, default=None, help="search seconds (overrides the objective's)")
    t.add_argument("--data", default=None)
    add_base_model_arg(t)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_optimize)
