"""Lab scale benchmark: time to ready and pingall time for 10-, 30- and 50-switch topologies, and
the memory of the switch daemon (ovs-vswitchd), the controller, the delay relay and the lab
process. Prints one JSON document.

    sudo .venv/bin/python bench/lab_scale.py [--sizes 10:15,30:45,50:100] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ptwin.control import lab_down, lab_up, request  # noqa: E402
from ptwin.lab import LabConfig  # noqa: E402
from ptwin.state import read_state  # noqa: E402
from topologies import load  # noqa: E402


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def pid_of(name: str) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    return int(entry)
            except OSError:
                continue
    return None


def measure(spec: str) -> dict:
    topo = load(spec)
    vswitchd = pid_of("ovs-vswitchd")
    before = rss_mb(vswitchd) if vswitchd else None
    t0 = time.monotonic()
    state = lab_up(topo, LabConfig())
    ready = time.monotonic() - t0
    try:
        procs = {p["what"]: p["pid"] for p in (read_state() or {}).get("processes", [])}
        ping = request("pingall", timeout=1800)
        after = rss_mb(vswitchd) if vswitchd else None
        row = {
            "topology": spec, "switches": len(topo.nodes), "links": len(topo.links),
            "delay_backend": state["info"]["delay_backend"], "datapath": state["info"]["datapath"],
            "ready_s": round(ready, 2),
            "pingall_s": ping["seconds"], "pingall_pairs": ping["pairs"], "pingall_loss_pct": ping["loss_pct"],
            "rss_mb": {
                "ovs_vswitchd": after, "ovs_vswitchd_growth": round(after - before, 1) if after and before else None,
                "controller": rss_mb(procs["controller"]),
                "relay": rss_mb(procs["relay"]) if "relay" in procs else None,
                "lab_process": rss_mb(procs["lab daemon"]),
            },
        }
    finally:
        t1 = time.monotonic()
        lab_down()
        down = time.monotonic() - t1
    row["down_s"] = round(down, 2)
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10:15,30:45,50:100", help="N:M pairs for random:N:M:SEED")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/lab_scale.py needs root", file=sys.stderr)
        return 1
    os.environ.setdefault("NDT_RUN_DIR", tempfile.mkdtemp(prefix="ndt-bench-"))
    rows = []
    for size in args.sizes.split(","):
        n, m = size.split(":")
        rows.append(measure(f"random:{n}:{m}:{args.seed}"))
        print(f"... {rows[-1]['topology']}: ready {rows[-1]['ready_s']} s, pingall {rows[-1]['pingall_s']} s",
              file=sys.stderr, flush=True)
    print(json.dumps({"bench": "lab_scale", "cores": os.cpu_count(), "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
