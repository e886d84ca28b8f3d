"""Dataset benchmark: bring up a 10-15 switch lab, run the built-in `dataset` schedule (every
pattern at four load levels), export the training file, take the lab down. Prints JSON with the
dataset's size (windows, labeled windows, labels, bytes) and the wall time of each step.

    sudo .venv/bin/python bench/dataset.py [--topology Abilene] [--schedule dataset] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from ndtcli import lab_down, ndt, require_root


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topology", default="Abilene")
    ap.add_argument("--schedule", default="dataset")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    if not require_root("bench/dataset.py"):
        return 1
    data = args.data or tempfile.mkdtemp(prefix="ndt-dataset-")
    t0 = time.monotonic()
    lab = ndt("lab", "up", args.topology)
    t_up = time.monotonic() - t0
    try:
        t1 = time.monotonic()
        extra = ["--duration", str(args.duration)] if args.duration else []
        run = ndt("traffic", "run", args.schedule, "--data", data, *extra)
        t_run = time.monotonic() - t1
    finally:
        lab_down()
    summary = ndt("data", "summary", "--data", data, "--run", run["run"])["runs"][0]
    t2 = time.monotonic()
    out = Path(data) / "dataset.jsonl"
    exp = ndt("data", "export", "--data", data, "--run", run["run"], "--out", str(out))
    t_export = time.monotonic() - t2
    print(json.dumps({
        "bench": "dataset", "topology": args.topology, "switches": lab["switches"], "links": lab["links"],
        "schedule": args.schedule, "phases": len(summary["phases"]), "flows": summary["flows"],
        "windows": summary["windows"], "labeled_windows": exp["windows"], "labels": summary["labels"],
        "labeled_fraction": summary["labeled_fraction"], "failed_flows": run["flows_failed"],
        "export_bytes": out.stat().st_size, "data": data,
        "seconds": {"lab_up": round(t_up, 1), "traffic": round(t_run, 1), "export": round(t_export, 1),
                    "total": round(time.monotonic() - t0, 1)},
        "per_phase": [{"profile": p["profile"], "load": p["load"], "mean_bps": p["rate_bps"]["mean"],
                       "flows": p["flows"]} for p in summary["phases"]],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
