"""Planning time of the optimizer by network size, without a lab: a seeded overloaded run on each
topology (`tests/seeded.py`: the traffic layer's flow set, queueing-formula labels), the shipped
base model as the twin, the loop's objective (minimize predicted SLO violations, then the highest
utilization, then mean delay; budgets of propagation + `--margin` ms). Prints one JSON document.

    .venv/bin/python bench/optimize_scale.py [--topologies diamond,random:20:32:3,germany_50]
        [--flows 6,20,40] [--load 1.2] [--budget 10] [--repeat 3]

Per topology: nodes, links, flows; the time to plan (the LP, the search and every evaluation, the
model already loaded), the search's candidates, rounds, candidates per second and why it stopped;
today's, the LP's and the twin's predicted violations, highest utilization and mean delay.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.optimize import network_of, optimize, parse_objective  # noqa: E402
from tests.seeded import base_predict, seed_traffic_run  # noqa: E402
from topologies import load  # noqa: E402
from traffic.store import Stores  # noqa: E402

METRICS = ("slo_violations", "max_utilization", "mean_delay")


def plan_once(predict: Any, stores: Stores, snap: int, budget: float, margin: float, seed: int) -> dict[str, Any]:
    obj = parse_objective({"snapshot_id": snap, "minimize": list(METRICS),
                           "slo": {"propagation_margin_ms": margin, "flow_latency_ms": {}},
                           "search": {"budget_s": budget, "seed": seed}})
    t0 = time.perf_counter()
    res = optimize(predict, stores, obj, network_of(stores, obj))
    res["planning_s"] = time.perf_counter() - t0
    return res


def bench_topology(predict: Any, name: str, flows: int, load_: float, budget: float, margin: float,
                   repeat: int, root: Path) -> dict[str, Any]:
    topo = load(name)
    data = root / name.replace(":", "_") / "data"
    seed_traffic_run(data, name, {"flows": flows, "seed": 3, "phases": [
        {"profile": "poisson", "load": load_, "duration_s": 3}]})
    stores = Stores(data)
    snap = stores.snapshot_list(None, 1, 0)[0]["id"]
    plan_once(predict, stores, snap, 0.5, margin, 0)  # warm: the model's shapes for this network
    runs = [plan_once(predict, stores, snap, budget, margin, seed) for seed in range(repeat)]
    last = runs[-1]
    return {
        "topology": name, "nodes": len(topo.nodes), "links": len(topo.links), "flows": flows, "load": load_,
        "planning_s": {"median": round(statistics.median(r["planning_s"] for r in runs), 3),
                       "max": round(max(r["planning_s"] for r in runs), 3)},
        "lp_s": round(statistics.median(r["lp"]["seconds"] for r in runs), 3),
        "candidates": [r["search"]["candidates"] for r in runs],
        "candidates_per_s": round(statistics.median(r["search"]["candidates_per_s"] for r in runs), 1),
        "stopped": [r["search"]["stopped"] for r in runs],
        "started_from": [r["search"]["started_from"] for r in runs],
        "predicted": {k: {m: last[k]["metrics"][m] for m in METRICS} for k in ("current", "lp", "twin")},
        "twin_changes": [len(r["twin"]["changes"]["weights"]) + len(r["twin"]["changes"]["pins"]) for r in runs],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topologies", default="diamond,random:20:32:3,germany_50")
    ap.add_argument("--flows", default="6,20,40", help="flows per topology, in the same order")
    ap.add_argument("--load", type=float, default=1.2, help="the busiest link's offered load")
    ap.add_argument("--budget", type=float, default=10.0, help="the search's time budget (s)")
    ap.add_argument("--margin", type=float, default=5.0, help="SLO budget: path propagation + this (ms)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    names = args.topologies.split(",")
    flows = [int(x) for x in args.flows.split(",")]
    if len(flows) != len(names):
        raise SystemExit("bench: --flows needs one count per topology")
    predict = base_predict()
    root = Path(tempfile.mkdtemp(prefix="ndt-bench-optscale-"))
    out = [bench_topology(predict, n, f, args.load, args.budget, args.margin, args.repeat, root)
           for n, f in zip(names, flows, strict=True)]
    print(json.dumps({"budget_s": args.budget, "margin_ms": args.margin, "results": out}, indent=1))


if __name__ == "__main__":
    main()
