"""How noisy the labels of a stored run are, and how much longer measurement windows would help.

    .venv/bin/python bench/label_floor.py --data DIR [RUN ...] [--merge 1,2,3,5,10]

For each run (default: every run in the data directory) and each phase (the paper's segments),
the labels' floor: the NMSE, in both definitions (`nmse_power_db`, the paper's, / mean y^2;
`nmse_var_db`, ours, / variance), of the hindsight oracle that predicts every flow-window by its
flow's mean delay over the phase (`sync.report.flow_mean_floor`, the same floor the run report
gives). No model whose inputs are constant per flow over a phase (offered rate, packet size, path,
capacities, buffers) can do better on average. Each floor is given for the stored windows and for
windows of K stored windows merged (the delays weighted by the packets received in each), which
is what `ndt run --window K x W` would have measured, beside the median packets received per
flow-window. JSON on stdout, a markdown table on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sync.report import flow_mean_floor  # noqa: E402
from traffic.store import Stores  # noqa: E402


def merged(rows: list[tuple[int, str, float, int]], k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Flow index and delay of each merged window of `k` stored windows, and the median packets in one."""
    groups: dict[tuple[str, int], list[tuple[float, int]]] = defaultdict(list)
    for window, flow, delay, received in rows:
        groups[(flow, window // k)].append((delay, received))
    flows: dict[str, int] = {}
    idx, delay, packets = [], [], []
    for (flow, _), v in groups.items():
        n = sum(r for _, r in v)
        if n <= 0:
            continue
        idx.append(flows.setdefault(flow, len(flows)))
        delay.append(sum(d * r for d, r in v) / n)
        packets.append(n)
    return np.asarray(idx, dtype=int), np.asarray(delay, dtype=float), float(np.median(packets)) if packets else 0.0


def run_floors(stores: Stores, run_id: str, merges: list[int]) -> dict:
    run = stores.run(run_id)
    phase_of = {w: p for p, (lo, hi) in stores.phase_windows(run_id).items() for w in range(lo, hi + 1)}
    profiles = {p["idx"]: p["profile"] for p in stores.phases(run_id)}
    by_phase: dict[int, list[tuple[int, str, float, int]]] = defaultdict(list)
    for (w, key), lab in stores.labels_of(run_id).items():
        if lab.delay_ms and lab.delay_ms > 0 and lab.received and (p := phase_of.get(w)) is not None:
            by_phase[p].append((w, key, lab.delay_ms, lab.received))
    phases = []
    for p in sorted(by_phase):
        per_merge = []
        for k in merges:
            flow, delay, packets = merged(by_phase[p], k)
            per_merge.append({"window_s": round(k * run["window_s"], 3), "samples": len(delay),
                              "median_packets_per_flow_window": packets, **flow_mean_floor(flow, delay)})
        phases.append({"phase": p + 1, "profile": profiles.get(p), "floors": per_merge})
    return {"run": run_id, "topology": run["topology"], "window_s": run["window_s"], "phases": phases}


def markdown(results: list[dict]) -> str:
    lines = ["| run | phase | " + " | ".join(f"{f['window_s']:g} s" for f in results[0]["phases"][0]["floors"])
             + " |", "|---|---|" + "---|" * len(results[0]["phases"][0]["floors"])]
    for r in results:
        for p in r["phases"]:
            cells = [f"{f['floor_nmse_power_db']} / {f['floor_nmse_var_db']} "
                     f"({f['median_packets_per_flow_window']:g} pkts)" for f in p["floors"]]
            lines.append(f"| {r['topology']} {r['run']} | {p['phase']} {p['profile']} | " + " | ".join(cells) + " |")
    return "\n".join(["labels' floor, delay NMSE power / var dB (median packets per flow-window)", *lines])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", metavar="RUN", nargs="*", help="run ids (default: every run in --data)")
    ap.add_argument("--data", type=Path, required=True, help="data directory of the runs (traffic.db, labels.db)")
    ap.add_argument("--merge", default="1,2,3,5,10", help="stored windows merged into one (comma-separated)")
    args = ap.parse_args()
    try:
        merges = [int(x) for x in args.merge.split(",")]
    except ValueError:
        merges = []
    if not merges or min(merges) < 1:
        print(f"bench/label_floor.py: --merge must be positive integers, got {args.merge!r}", file=sys.stderr)
        return 1
    if not (args.data / "labels.db").is_file():
        print(f"bench/label_floor.py: no labels.db in {args.data}", file=sys.stderr)
        return 1
    stores = Stores(args.data)
    runs = args.runs or [r["id"] for r in stores.runs()]
    known = stores.run_ids()
    if missing := [r for r in runs if r not in known]:
        print(f"bench/label_floor.py: no run {missing[0]} in {args.data}", file=sys.stderr)
        return 1
    results = [run_floors(stores, r, merges) for r in runs]
    results = [r for r in results if r["phases"]]
    if not results:
        print(f"bench/label_floor.py: no labeled windows in {args.data}", file=sys.stderr)
        return 1
    print(json.dumps({"merges": merges, "results": results}, indent=1))
    print(markdown(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
