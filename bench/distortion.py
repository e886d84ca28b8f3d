"""Does the training worker distort what the lab measures? Training shares the two cores with the
emulated network, and a starved switch daemon or delay relay adds delay that is not the network's.
The closed loop pauses labels while it would (`sync.manager`); this measures what each pause saves.

Runs stationary traffic (the same deterministic phase, first a short one to let the new lab settle:
its first 10-15 s measured delays 2-3x the steady ones, then three long ones) and, from the start
of phases 2-4, one activity of the loop's training worker:
- "startup": the worker as the loop starts it (`sync.retrain --serve`: SCHED_IDLE, nice 19, one
  TensorFlow thread) importing TensorFlow and tracing its step, then idle;
- "restrained": a retraining job as the loop runs it (same restraints), for half the phase;
- "unrestrained": the same job at nice 0 with every thread (what the restraints are worth).
Each activity is compared, flow by flow, over the windows it ran in against the windows of the
same phase after it ended (same traffic, minutes apart at most). Prints JSON: per activity its
seconds, windows, mean change of delay in ms and in % of the idle windows, against the
measurement noise (standard deviation of a flow's per-window delay in the idle windows).

    sudo .venv/bin/python bench/distortion.py [--topology diamond] [--phase-s 40] [--load 0.5]
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import fmean, pstdev

from ndtcli import ROOT, lab_down, ndt, require_root

sys.path.insert(0, str(ROOT))
from traffic.store import Stores  # noqa: E402

ACTIVITIES = ("startup", "restrained", "unrestrained")


def trainer(data: str, run_id: str, activity: str, budget: float) -> subprocess.Popen:
    base = [sys.executable, "-m", "sync.retrain", "--data", data, "--run", run_id]
    if activity == "startup":
        return subprocess.Popen([*base, "--serve", "--nice", "19", "--idle", "--threads", "1"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    how = ["--nice", "19", "--idle", "--threads", "1"] if activity == "restrained" else \
        ["--nice", "0", "--no-idle", "--threads", "0"]
    return subprocess.Popen([*base, "--from-window", "0", "--budget", str(budget), "--replay", "0",
                             "--patience", "1000000", *how],  # no early stopping: train the whole phase
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def wait_until(cond, timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = cond()
        except sqlite3.Error:  # a store being created under the reader
            value = None
        if value:
            return value
        time.sleep(0.2)
    return None


def run_with_phase(stores: Stores, idx: int) -> str | None:
    """The run once its phase `idx` has started."""
    run = stores.newest_run()
    return run if run and any(p["idx"] == idx for p in stores.phases(run)) else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topology", default="diamond")
    ap.add_argument("--phase-s", type=float, default=60.0)
    ap.add_argument("--settle-s", type=float, default=20.0)
    ap.add_argument("--load", type=float, default=0.5)
    args = ap.parse_args()
    if not require_root("bench/distortion.py"):
        return 1
    data = Path(tempfile.mkdtemp(prefix="ndt-distortion-"))
    phase = {"profile": "deterministic", "load": args.load, "duration_s": args.phase_s}
    sched = data / "steady4.json"
    settle = dict(phase, duration_s=args.settle_s)
    sched.write_text(json.dumps({"flows": 6, "seed": 5, "phases": [settle] + [phase] * 3}))
    ndt("lab", "up", args.topology)
    jobs: dict[str, dict] = {}

    def drive() -> None:
        """Start each activity at the start of phases 2-4 (once phase 1's labels exist)."""
        stores = Stores(data)  # SQLite connections belong to their thread
        for idx, name in enumerate(ACTIVITIES, start=1):
            run_id = wait_until(lambda i=idx: run_with_phase(stores, i), args.phase_s * 3)
            if not run_id:
                return
            wait_until(lambda r=run_id: len(stores.label_counts(r)) >= 10,
                       30)  # the settling phase's labels are decoded as phase 2 starts
            start = time.time()
            proc = trainer(str(data), run_id, name, args.phase_s / 2 - 5)
            if name == "startup":
                line = proc.stdout.readline()  # {"ready": ...} once traced
                end = time.time()
                _, err = proc.communicate()  # end of input: the worker exits
                ok = line.startswith('{"ready"')
            else:
                _, err = proc.communicate()
                end = time.time()
                ok = proc.returncode == 0
            jobs[name] = {"phase": idx, "start": start, "end": end, "seconds": round(end - start, 1), "ok": ok,
                          "error": None if ok else (err.strip().splitlines() or ["?"])[-1]}

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        run = ndt("traffic", "run", str(sched), "--data", str(data))
    finally:
        lab_down()
    driver.join(timeout=120)
    stores = Stores(data)
    info = stores.run(run["run"])
    t0, window_s = info["t0"], info["window_s"]
    rows = [(f.flow_no, w.phase, w.window, w.labels[f.flow_key].delay_ms)
            for w in stores.windows(run["run"], labels=True, run_flows_only=True) for f in w.flows
            if f.flow_key in w.labels and w.labels[f.flow_key].delay_ms is not None]
    phases = {p["idx"]: (p["start_at"], p["end_at"]) for p in stores.phases(run["run"])}
    out: dict[str, dict] = {}
    noise = []
    for name, job in jobs.items():
        # the windows wholly inside the activity, against the phase's windows from 3 s after it ended
        first, last = math.ceil((job["start"] - t0) / window_s), math.floor((job["end"] - t0) / window_s) - 1
        idle_from = math.ceil((job["end"] + 3 - t0) / window_s)
        idle_to = math.floor((phases[job["phase"]][1] - t0) / window_s) - 2
        during: dict[int, list[float]] = {}
        idle: dict[int, list[float]] = {}
        for no, ph, w, d in rows:
            if ph == job["phase"] and first <= w <= last:
                during.setdefault(no, []).append(d)
            elif ph == job["phase"] and idle_from <= w <= idle_to:
                idle.setdefault(no, []).append(d)
        changes = [(fmean(v) - fmean(idle[no]), fmean(idle[no])) for no, v in during.items()
                   if len(idle.get(no, [])) >= 3]
        noise += [pstdev(v) for v in idle.values() if len(v) >= 3]
        out[name] = {"seconds": job["seconds"], "ok": job["ok"], "error": job["error"],
                     "windows": max(0, last - first + 1), "idle_windows": max(0, idle_to - idle_from + 1),
                     "idle_ms": round(fmean(m for _, m in changes), 3) if changes else None,
                     "mean_change_ms": round(fmean(c for c, _ in changes), 3) if changes else None,
                     "mean_change_pct": round(100 * fmean(c / m for c, m in changes), 2) if changes else None,
                     "max_abs_change_pct": round(100 * max(abs(c / m) for c, m in changes), 2) if changes else None}
    print(json.dumps({
        "bench": "distortion", "topology": args.topology, "load": args.load, "phase_s": args.phase_s,
        "run": run["run"], "data": str(data), "activities": out,
        "noise_sd_ms": round(fmean(noise), 3) if noise else None,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
