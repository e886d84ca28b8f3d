"""Does retraining distort what the lab measures? Training shares the two cores with the emulated
network, and a starved switch daemon or delay relay adds delay that is not the network's.

Runs stationary traffic (the same deterministic phase three times) on a lab: phase 1 with
nothing else running, phase 2 with a retraining job as the loop runs it (SCHED_IDLE, nice 19,
one TensorFlow thread), phase 3 with an unrestrained one (nice 0, all threads). Prints JSON: each
flow's mean delay per phase, the change against phase 1, and the measurement noise (the
standard deviation of a flow's per-window delay in phase 1, and the standard error of its mean).

    sudo .venv/bin/python bench/distortion.py [--topology diamond] [--phase-s 40] [--load 0.5]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from statistics import fmean, pstdev

from ndtcli import ROOT, lab_down, ndt, require_root


def trainer(data: str, run_id: str, restrained: bool, budget: float) -> subprocess.Popen:
    how = ["--nice", "19", "--idle", "--threads", "1"] if restrained else ["--nice", "0", "--no-idle", "--threads", "0"]
    return subprocess.Popen([sys.executable, "-m", "sync.retrain", "--data", data, "--run", run_id,
                             "--from-window", "0", "--budget", str(budget), "--replay", "0",
                             "--patience", "1000000", *how],  # no early stopping: train the whole phase
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topology", default="diamond")
    ap.add_argument("--phase-s", type=float, default=40.0)
    ap.add_argument("--load", type=float, default=0.5)
    args = ap.parse_args()
    if not require_root("bench/distortion.py"):
        return 1
    data = tempfile.mkdtemp(prefix="ndt-distortion-")
    phase = {"profile": "deterministic", "load": args.load, "duration_s": args.phase_s}
    sched = Path(data) / "steady3.json"
    sched.write_text(json.dumps({"flows": 6, "seed": 5, "phases": [phase, phase, phase]}))
    ndt("lab", "up", args.topology)
    jobs: dict[str, dict] = {}

    def drive() -> None:
        """Start a trainer at the start of phases 2 and 3 (once phase 1's labels exist)."""
        db = Path(data) / "traffic.db"
        for idx, name in ((1, "restrained"), (2, "unrestrained")):
            while True:
                try:
                    con = sqlite3.connect(db, timeout=5)
                    row = con.execute("SELECT run_id FROM phases WHERE idx = ?", [idx]).fetchone()
                    con.close()
                except sqlite3.Error:
                    row = None
                if row:
                    break
                time.sleep(0.2)
            deadline = time.monotonic() + 30  # phase 1's labels are decoded as phase 2 starts
            while time.monotonic() < deadline:
                try:
                    con = sqlite3.connect(Path(data) / "labels.db", timeout=5)
                    n = con.execute("SELECT count(DISTINCT window) FROM labels").fetchone()[0]
                    con.close()
                except sqlite3.Error:
                    n = 0
                if n >= 10:
                    break
                time.sleep(0.2)
            t0 = time.monotonic()
            proc = trainer(data, row[0], name == "restrained", args.phase_s - 5)
            out, err = proc.communicate()
            jobs[name] = {"phase": idx, "seconds": round(time.monotonic() - t0, 1), "exit": proc.returncode,
                          "error": err.strip().splitlines()[-1] if proc.returncode and err.strip() else None}

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        run = ndt("traffic", "run", str(sched), "--data", data)
    finally:
        lab_down()
    driver.join(timeout=120)
    lab = sqlite3.connect(Path(data) / "labels.db")
    lab.execute(f"ATTACH '{Path(data) / 'traffic.db'}' AS t")
    per: dict[tuple[int, int], list[float]] = {}
    for no, ph, d in lab.execute(
            "SELECT l.flow_no, s.phase_idx, l.delay_ms FROM labels l JOIN t.snapshots s ON s.id = l.snapshot_id "
            "WHERE l.run_id = ? AND l.delay_ms IS NOT NULL", [run["run"]]):
        per.setdefault((no, ph), []).append(d)
    flows = []
    for no in sorted({k[0] for k in per}):
        base = per.get((no, 0), [])
        if len(base) < 3:
            continue
        m0 = fmean(base)
        row = {"flow": no, "phase1_ms": round(m0, 3), "noise_sd_ms": round(pstdev(base), 3),
               "noise_se_ms": round(pstdev(base) / len(base) ** 0.5, 3)}
        for ph, name in ((1, "restrained"), (2, "unrestrained")):
            vals = per.get((no, ph), [])
            row[f"{name}_ms"] = round(fmean(vals), 3) if vals else None
            row[f"{name}_change_ms"] = round(fmean(vals) - m0, 3) if vals else None
        flows.append(row)

    def mean(key: str) -> float | None:
        vals = [f[key] for f in flows if f.get(key) is not None]
        return round(fmean(vals), 3) if vals else None

    print(json.dumps({
        "bench": "distortion", "topology": args.topology, "load": args.load, "phase_s": args.phase_s,
        "run": run["run"], "data": data, "trainers": jobs, "flows": flows,
        "mean_change_ms": {"restrained": mean("restrained_change_ms"), "unrestrained": mean("unrestrained_change_ms")},
        "mean_abs_change_ms": {k: round(fmean(abs(f[f"{k}_change_ms"]) for f in flows
                                              if f.get(f"{k}_change_ms") is not None), 3) if flows else None
                               for k in ("restrained", "unrestrained")},
        "noise_sd_ms": mean("noise_sd_ms"), "noise_se_ms": mean("noise_se_ms"),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
