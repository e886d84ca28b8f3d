"""Emulator overhead benchmark: how much of a label is the machine rather than the network.

Brings a lab up on TOPO, runs one light traffic phase through it (`ndt traffic run`, default 40
flows at load 0.1 for 60 s) and prints JSON with, per topology:

- time to ready, flows started and flows labeled, labeled flow-windows;
- the emulator's overhead per flow-window: the measured delay minus the path's propagation and
  its frames' transmission time at the emulated capacities (median, p90, per hop), and its share
  of the label; issue 12 asks for under 2 ms or 10 % of the label, whichever is larger. HTB
  sends a frame at once while its bucket (15 KB) holds tokens, so a lightly loaded link does not
  serialize: the overhead can come out negative, and the delay above propagation alone is given
  beside it;
- the labels' spread within the phase (`label_spread`): the MAPE's own floor of its samples
  (`vtwin.evaluate.mape_floor`: each flow's windows against the flow's MAPE-optimal constant,
  the floor no predictor whose inputs are constant over the phase gets under); the share of flow-windows
  above 1.2 and 2 times their flow's median; and the share of packets that arrived more than
  5 ms later than their flow's 10th percentile, which on a light load is the emulator stalling
  (every flow at once), not a queue;
- CPU during the phase: the machine's idle share and each part's share of one core (the lab's
  ovs-vswitchd and ovsdb-server daemons, the delay relay, the controller, the collector, D-ITG's
  senders and receivers, the rest), read from /proc without touching any process; the frames
  the switch daemons received per second (their `netdev_received` counters) and the CPU each
  such frame cost them;
- memory (RSS) of the lab's switch daemons (summed, with their count), the relay and the
  controller.

    sudo .venv/bin/python bench/emulator.py [TOPO ...] [--flows 40] [--load 0.1] [--seconds 60]
        [--profile exponential] [--mean-size 512] [--capacity-scale auto] [--queue 32]
        [--ports-per-daemon 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ptwin.control import lab_down, lab_up  # noqa: E402
from ptwin.lab import LabConfig  # noqa: E402
from ptwin.state import CLOCK_TICKS, proc_stat, read_state  # noqa: E402
from ptwin.switchd import PORTS_PER_DAEMON  # noqa: E402
from topologies import load  # noqa: E402
from traffic.ditg import LogReader  # noqa: E402
from traffic.flowset import OVERHEAD  # noqa: E402
from traffic.store import Stores  # noqa: E402
from vtwin.dataset import from_stores  # noqa: E402
from vtwin.evaluate import mape_floor  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_scale import rss_mb  # noqa: E402

#: The lab's own Open vSwitch daemons (ptwin.switchd), one pair per group of switches.
DAEMONS = ("ovs-vswitchd", "ovsdb-server")


def _stat(pid: int) -> tuple[str, int] | None:
    """(comm, utime + stime in ticks) of a process, None when it is gone."""
    st = proc_stat(pid)
    return None if st is None else (st[0], int(st[1][11]) + int(st[1][12]))


def cpu_times() -> tuple[int, int]:
    """(idle, total) ticks of the whole machine."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return parts[3] + parts[4], sum(parts)


def lab_parts(processes: list[dict]) -> dict[int, str]:
    """PID -> part for the lab's own processes in its state file: the switch daemons, the relay,
    the controller and the lab daemon."""
    return {p["pid"]: p["what"].split()[0] for p in processes
            if p["what"] in ("relay", "controller", "lab daemon") or p["what"].split()[0] in DAEMONS}


class CpuSampler:
    """Every process's CPU ticks, sampled repeatedly (short-lived D-ITG processes included), each
    process named at first sight: by `named` (PID -> part), else D-ITG's programs by name, the
    project's Python processes by module (collector, trainer, `ndt` itself), else "other"."""

    PYTHON_PARTS = (("traffic.collector", "collector"), ("sync.retrain", "trainer"), ("-m apps", "ndt"))

    def __init__(self, named: dict[int, str]) -> None:
        self.named = named
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.part: dict[int, str] = {}

    def _part(self, pid: int, comm: str) -> str:
        if pid in self.named:
            return self.named[pid]
        if comm in ("ITGSend", "ITGRecv"):
            return comm
        if comm.startswith("python"):
            cmd = _cmdline(pid)
            return next((part for key, part in self.PYTHON_PARTS if key in cmd), "other")
        return "other"

    def sample(self) -> None:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                pid = int(entry)
                st = _stat(pid)
                if st is not None:
                    if pid not in self.first:
                        self.first[pid] = st[1]
                        self.part[pid] = self._part(pid, st[0])
                    self.last[pid] = st[1]

    def shares(self, seconds: float) -> dict[str, float]:
        """Cores used per part over the sampled span."""
        out: dict[str, float] = {}
        for pid, ticks in self.last.items():
            part = self.part[pid]
            out[part] = out.get(part, 0.0) + (ticks - self.first[pid]) / CLOCK_TICKS
        return {k: round(v / seconds, 3) for k, v in sorted(out.items())}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def frames_received(daemons: list[dict]) -> int:
    """Frames the lab's switch daemons have received from their ports so far (OVS's own
    `netdev_received` coverage counter of each ovs-vswitchd, summed; 0 where one does not answer)."""
    total = 0
    for d in daemons:
        out = subprocess.run(["ovs-appctl", "-t", str(Path(d["rundir"]) / "vswitchd.ctl"), "coverage/show"],
                             capture_output=True, text=True).stdout
        total += next((int(line.rsplit("total:", 1)[1]) for line in out.splitlines()
                       if line.startswith("netdev_received") and "total:" in line), 0)
    return total


def overheads(data: Path, mean_size: int, protocol: str) -> dict:
    """Per labeled flow-window: delay - propagation - transmission on the path (ms)."""
    stores = Stores(data)
    run_id = stores.runs()[0]["id"]
    links = {lk.id: {"delay_ms": lk.delay_ms, "capacity_mbps": lk.capacity_mbps}
             for lk in stores.topology(run_id).links}
    frame_bits = (mean_size + OVERHEAD[protocol]) * 8
    over, share, per_hop, ok, above_prop = [], [], [], [], []
    measured = [(f.links, w.labels[f.flow_key].delay_ms)
                for w in stores.windows(run_id, labels=True, run_flows_only=True) for f in w.flows
                if f.flow_key in w.labels and w.labels[f.flow_key].delay_ms is not None]
    for path, d in measured:
        if not path:
            continue
        prop = sum(links[x]["delay_ms"] for x in path)
        base = prop + sum(frame_bits / (links[x]["capacity_mbps"] * 1e3) for x in path)
        above_prop.append(d - prop)
        over.append(d - base)
        share.append((d - base) / d if d > 0 else 0.0)
        per_hop.append((d - base) / len(path))
        ok.append(d - base < max(2.0, 0.1 * d))
    status = stores.flow_status_counts(run_id)
    flows = (sum(status.values()), status.get("finished", 0))
    labeled = len({key for _, key in stores.labels_of(run_id)})
    if not over:
        return {"flows_started": flows[0], "flows_labeled": labeled, "flow_windows": 0}
    q = statistics.quantiles(over, n=10)
    return {"flows_started": flows[0], "flows_finished": flows[1], "flows_labeled": labeled,
            "flow_windows": len(over), "overhead_ms_median": round(statistics.median(over), 2),
            "overhead_ms_p90": round(q[-1], 2), "overhead_ms_per_hop_median": round(statistics.median(per_hop), 2),
            "overhead_share_of_label_median": round(statistics.median(share), 3),
            "delay_above_propagation_ms_median": round(statistics.median(above_prop), 2),
            "transmission_ms_median": round(statistics.median(a - o for a, o in zip(above_prop, over, strict=True)), 2),
            "share_within_goal": round(sum(ok) / len(ok), 3)}


def label_spread(data: Path) -> dict:
    """How much a flow's window labels vary within the phase (see the module's docstring): the
    MAPE's own floor of the run's samples (`vtwin.evaluate.mape_floor`, in hindsight) and the
    share of flow-windows above 1.2 and 2 times their flow's median."""
    samples = from_stores(Stores(data))
    floor = mape_floor(samples)
    per_flow: dict[str, list[float]] = {}
    for s in samples:
        for f, d in zip(s.snapshot.flows, s.delay_ms, strict=True):
            if np.isfinite(d) and d > 0:
                per_flow.setdefault(f.key, []).append(float(d))
    ratio = [y / statistics.median(ys) for ys in per_flow.values() if len(ys) >= 3 for y in ys]
    if floor is None or not ratio:
        return {}
    return {"label_floor_mape": floor["overall"]["delay_mape"],
            "flow_windows_above_1_2x_median_share": round(sum(r > 1.2 for r in ratio) / len(ratio), 4),
            "flow_windows_above_2x_median_share": round(sum(r > 2 for r in ratio) / len(ratio), 4)}


def late_packets(data: Path, late_s: float = 0.005) -> dict:
    """Share of received packets whose one-way delay exceeds their flow's 10th percentile by more
    than `late_s`, read from the run's D-ITG logs."""
    stores = Stores(data)
    run = stores.runs()[0]
    late = total = 0
    for rx_log in sorted((data / "runs" / run["id"] / "logs").glob("*.rx")):
        p = LogReader(rx_log, float(run["t0"])).read()
        d = (p.rx - p.tx)[np.isfinite(p.rx)]
        if d.size >= 10:
            late += int((d > np.percentile(d, 10) + late_s).sum())
            total += int(d.size)
    return {"packets_late_5ms_share": round(late / total, 4) if total else None}


def measure(spec: str, args: argparse.Namespace, work: Path) -> dict:
    topo = load(spec)
    scale = args.capacity_scale if args.capacity_scale == "auto" else float(args.capacity_scale)
    t0 = time.monotonic()
    state = lab_up(topo, LabConfig(capacity_scale=scale, queue_pkts=args.queue,
                                   ports_per_daemon=args.ports_per_daemon))
    ready_s = time.monotonic() - t0
    try:
        named = lab_parts((read_state() or {}).get("processes", []))
        sched = work / f"{topo.name}.json"
        sched.write_text(json.dumps({"flows": args.flows, "seed": 1, "phases": [
            {"profile": args.profile, "load": args.load, "duration_s": args.seconds, "mean_size": args.mean_size}]}))
        data = work / f"{topo.name}-data"
        sampler = CpuSampler(named)
        proc = subprocess.Popen([sys.executable, "-m", "apps", "traffic", "run", str(sched), "--data", str(data),
                                 "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)  # the phase's senders start after their receivers listen
        idle0, total0 = cpu_times()
        frames0 = frames_received(state["info"]["switch_daemons"])
        start = time.monotonic()
        while proc.poll() is None and time.monotonic() - start < args.seconds - 5:
            sampler.sample()
            time.sleep(1.0)
        idle1, total1 = cpu_times()
        seconds = time.monotonic() - start
        frames_per_s = (frames_received(state["info"]["switch_daemons"]) - frames0) / seconds
        out, err = proc.communicate(timeout=args.seconds + 300)
        if proc.returncode != 0:
            raise RuntimeError(f"ndt traffic run failed: {err.strip().splitlines()[-1] if err.strip() else '?'}")
        summary = json.loads(out)
        protocol = "UDP" if args.profile == "deterministic" else "TCP"
        daemons = {part: [pid for pid, what in named.items() if what == part] for part in DAEMONS}
        rel = next((pid for pid, what in named.items() if what == "relay"), 0)
        ctl = next((pid for pid, what in named.items() if what == "controller"), 0)
        return {
            "topology": spec, "switches": len(topo.nodes), "links": len(topo.links),
            "capacity_scale": state["info"]["capacity_scale"], "queue_pkts": args.queue,
            "delay_backend": state["info"]["delay_backend"], "ready_s": round(ready_s, 1),
            "switch_daemons": len(state["info"]["switch_daemons"]), "ports_per_daemon": args.ports_per_daemon,
            "profile": args.profile, "load": args.load, "mean_size": args.mean_size, "flows": args.flows,
            "sent_share": [p.get("sent_share") for p in summary["phases"]],
            **overheads(data, args.mean_size, protocol),
            "label_spread": {**label_spread(data), **late_packets(data)},
            "cpu_idle_share": round((idle1 - idle0) / max(1, total1 - total0), 3),
            "cpu_cores_by_part": (shares := sampler.shares(seconds)),
            "switch_frames_per_s": round(frames_per_s),
            # what one frame a switch daemon receives costs (CPU of every ovs-vswitchd, per frame)
            "switch_cpu_us_per_frame": round(1e6 * shares.get("ovs-vswitchd", 0.0) / frames_per_s, 1)
            if frames_per_s else None,
            "rss_mb": {**{part: round(sum(rss_mb(pid) or 0 for pid in pids), 1) for part, pids in daemons.items()},
                       "relay": rss_mb(rel), "controller": rss_mb(ctl)},
        }
    finally:
        lab_down()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("topo", nargs="*", default=["../shared/robust-ndt/topologies/germany_50.gml"])
    ap.add_argument("--flows", type=int, default=40)
    ap.add_argument("--load", type=float, default=0.1)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--profile", default="exponential")
    ap.add_argument("--mean-size", type=int, default=512)
    ap.add_argument("--capacity-scale", default="auto")
    ap.add_argument("--queue", type=int, default=32)
    ap.add_argument("--ports-per-daemon", type=int, default=PORTS_PER_DAEMON)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="ndt-emulator-") as tmp:
        for spec in args.topo:
            results.append(measure(spec, args, Path(tmp)))
            print(f"... {spec}: done", file=sys.stderr, flush=True)
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
