"""Closed-loop benchmark: `ndt run` with the `paper-drift` schedule on a 10-15 switch topology
(Abilene by default), then its report. Prints JSON: per drift the post-drift NMSE with and
without synchronization and the gain, detection delays, retraining time per drift and the share
of the run spent retraining, swaps, false alarms, against the targets (every post-drift segment
at least 3 dB better with sync, retraining under 2 minutes each and under 10 % of the run).

    sudo .venv/bin/python bench/loop.py [--topology Abilene] [--schedule paper-drift] [--duration S]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from ndtcli import ndt, require_root


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topology", default="Abilene")
    ap.add_argument("--schedule", default="paper-drift")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--train-budget", type=float, default=30.0)
    ap.add_argument("--data", default=None)
    ap.add_argument("--no-base-model", action="store_true", help="start from no model (bootstrap), not the base model")
    args = ap.parse_args()
    if not require_root("bench/loop.py"):
        return 1
    data = args.data or tempfile.mkdtemp(prefix="ndt-loop-")
    t0 = time.monotonic()
    extra = ["--duration", str(args.duration)] if args.duration else []
    extra += ["--no-base-model"] if args.no_base_model else []
    run = ndt("run", args.topology, "--schedule", args.schedule, "--data", data,
              "--train-budget", str(args.train_budget), *extra)
    rep = ndt("report", run["run"], "--data", data)
    retrains = [t for t in rep["trainings"] if t["job"] == "retrain"]
    drifts = [{k: d[k] for k in ("drift", "from", "to", "detection_delay", "pre_nmse_with", "pre_nmse_without",
                                 "post_nmse_with", "post_nmse_without", "post_gain_db", "after_swap_nmse_with",
                                 "after_swap_nmse_without", "post_mape_with", "post_mape_without",
                                 "post_nmse_power_db_with", "post_nmse_power_db_without")}
              for d in rep["drifts"]]
    print(json.dumps({
        "bench": "loop", "topology": rep["topology"], "schedule": rep["schedule"], "run": rep["run"], "data": data,
        "duration_s": rep["duration_s"], "windows": rep["windows"], "labeled_predictions": rep["samples"],
        "overall_nmse_db": {"with": rep["overall"]["with"], "without": rep["overall"]["without"]},
        "overall_nmse_var_db": {"with": rep["overall"]["nmse_var_db_with"],
                                "without": rep["overall"]["nmse_var_db_without"]},
        "overall_nmse_power_db": {"with": rep["overall"]["nmse_power_db_with"],
                                  "without": rep["overall"]["nmse_power_db_without"]},
        "drifts": drifts, "detections": rep["detections"], "false_alarms": rep["false_alarms"],
        "detections_ignored": rep["detections_ignored"], "swaps": rep["swaps"],
        "trainings": rep["trainings"], "retraining_s": [t["seconds"] for t in retrains],
        "retraining_share": rep["retraining_share"], "training_share_with_bootstrap": rep["training_share"],
        "trainer_start_s": rep["trainer_starts_s"], "label_pauses": rep["label_pauses"],
        "predict_ms": run.get("predict_ms"),
        "targets": {"post_gain_db_min": 3.0, "retraining_s_max": 120, "retraining_share_max": 0.10},
        "met": {"gain": all((d["post_gain_db"] or 0) >= 3.0 for d in drifts) if drifts else False,
                "retraining_time": all((t["seconds"] or 0) < 120 for t in retrains),
                "retraining_share": rep["retraining_share"] < 0.10},
        "wall_s": round(time.monotonic() - t0, 1), "plot": rep["files"]["plot"],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
