"""A seeded synthetic store for the tests that need no lab.

`seed_traffic_run` writes what a traffic run on a real lab stores (the run, its phases and flows,
one snapshot of flow and link counters per window, labels), through the stores' own writers and
the traffic layer's own flow set (the host pairs, paths and per-flow rates `ndt traffic run`
would choose), with delays from a queueing formula instead of a lab: per hop propagation,
transmission and an M/M/1 wait bounded by the link's buffer, and loss past capacity.
`seed_loop_run` adds what `ndt run` stores besides: predictions of real models trained on those
labels (the serving model and the frozen shadow, with one swap at a drift, and their intervals),
loop status and events, and the SLA and interval monitors' windows. Everything is seeded: two
calls with the same arguments store the same numbers (up to the trained models' float noise).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from topologies import Topology, load
from traffic.flowset import OVERHEAD, choose_pairs, per_flow_bps
from traffic.runner import data_port
from traffic.schedule import parse
from traffic.store import Stores, flow_key

T0 = 1_800_000_000.0  # a fixed start time: seeded stores are byte-for-byte reproducible
QUEUE_PKTS = 32
NOISE = 0.04  # relative noise of a measured delay


def _hop_state(topo: Topology, pairs: list, bps: float, wire: int) -> dict[tuple[str, int], dict[str, float]]:
    """Per link direction: utilisation, transmission time (s) and the share of packets it drops."""
    out: dict[tuple[str, int], dict[str, float]] = {}
    for p in pairs:
        for hop in p.hops:
            out.setdefault(hop, {"bps": 0.0})["bps"] += bps
    for (link_id, _), h in out.items():
        lk = topo.link(link_id)
        cap = lk.capacity_mbps * 1e6
        h["rho"] = h["bps"] / cap
        h["tx_s"] = 8.0 * wire / cap
        h["queue"] = lk.queue_pkts or QUEUE_PKTS
        h["loss"] = max(0.0, 1.0 - 1.0 / h["rho"]) if h["rho"] > 0 else 0.0
    return out


def _flow_delay_ms(topo: Topology, pair, hops: dict, rng: random.Random) -> tuple[float, float, float]:
    """Delay, jitter (ms) and loss share of one flow in one window."""
    delay = jitter = 0.0
    delivered = 1.0
    for hop in pair.hops:
        h = hops[hop]
        rho = h["rho"]
        wait = h["queue"] * h["tx_s"] if rho >= 1 else min(h["tx_s"] * rho / (1 - rho), h["queue"] * h["tx_s"])
        delay += topo.link(hop[0]).delay_ms / 1000 + h["tx_s"] + wait
        jitter += 0.5 * wait + 0.05 * h["tx_s"]
        delivered *= 1 - h["loss"]
    noise = 1 + rng.gauss(0, NOISE)
    return 1000 * delay * noise, 1000 * jitter * noise, 1 - delivered


def seed_traffic_run(data: Path, topology: str, schedule: dict[str, Any], *, run_id: str = "run-seeded-1",
                     window_s: float = 1.0, seed: int = 1) -> str:
    """Store a traffic run of `schedule` (the JSON form `ndt traffic run` reads) on the named
    topology under `data`; its run id."""
    topo = load(topology)
    sched = parse(schedule, "seeded")
    pairs = choose_pairs(topo, sched.flows, sched.seed)
    rng = random.Random(seed)
    stores = Stores(data)
    t = stores.traffic
    with t.conn:
        t["runs"].insert({"id": run_id, "topology": topo.name, "schedule": sched.name,
                          "schedule_json": sched.to_dict(), "topology_json": topo.to_dict(), "window_s": window_s,
                          "t0": T0, "started_at": T0 - 1, "ended_at": T0 + sched.duration_s + 1, "status": "finished",
                          "flows": len(pairs), "seed": sched.seed})
    window = 0
    start = T0
    totals: dict[str, tuple[int, int]] = {}
    all_labels: list[dict[str, Any]] = []
    for idx, phase in enumerate(sched.phases):
        prof = phase.profile
        bps = per_flow_bps(topo, pairs, phase.load)
        wire = prof.mean_size + OVERHEAD[prof.protocol]
        pps = bps / (8.0 * wire)
        proto = prof.protocol.lower()
        end = start + phase.duration_s
        keys = {no: flow_key(proto, p.src_ip, 40000 + 100 * idx + no, p.dst_ip, data_port(idx, no))
                for no, p in enumerate(pairs)}
        with t.conn:
            t["phases"].insert({"run_id": run_id, "idx": idx, "profile": prof.name, "protocol": prof.protocol,
                                "load": phase.load, "planned_s": phase.duration_s, "start_at": start, "end_at": end})
            t["run_flows"].insert_all({
                "run_id": run_id, "phase_idx": idx, "flow_no": no, "flow_key": keys[no], "src": p.src, "dst": p.dst,
                "src_ip": p.src_ip, "dst_ip": p.dst_ip, "proto": proto, "sport": 40000 + 100 * idx + no,
                "dport": data_port(idx, no), "rate_pps": pps, "pkt_size": prof.mean_size, "offered_bps": bps,
                "idt": prof.idt, "size_dist": prof.size, "status": "finished", "error": None, "sent_pps": pps}
                for no, p in enumerate(pairs))
        hops = _hop_state(topo, pairs, bps, wire)
        for _ in range(round(phase.duration_s / window_s)):
            flows, labels = [], []
            for no, p in enumerate(pairs):
                delay, jitter, loss = _flow_delay_ms(topo, p, hops, rng)
                sent = max(1, round(pps * window_s * (1 + rng.gauss(0, 0.02))))
                received = round(sent * (1 - loss))
                pk, by = totals.get(keys[no], (0, 0))
                totals[keys[no]] = (pk + sent, by + sent * wire)
                flows.append({"flow_key": keys[no], "ctl_flow_id": 1000 * idx + no, "src": p.src, "dst": p.dst,
                              "proto": proto, "sport": 40000 + 100 * idx + no, "dport": data_port(idx, no),
                              "links": json.dumps(list(p.links)), "packets": pk + sent, "bytes": by + sent * wire,
                              "window_packets": sent, "window_bytes": sent * wire,
                              "measured_bps": 8.0 * sent * wire / window_s, "ctl_rate_bps": bps,
                              "offered_bps": bps, "pkt_size": prof.mean_size, "flow_no": no})
                labels.append({"run_id": run_id, "window": window, "flow_key": keys[no], "flow_no": no,
                               "delay_ms": delay if received else None, "jitter_ms": jitter if received else None,
                               "loss_pct": 100.0 * (1 - received / sent), "sent": sent, "received": received,
                               "rx_bps": 8.0 * received * wire / window_s})
            links = []
            for lk in topo.links:
                ab, ba = hops.get((lk.id, lk.a), {}), hops.get((lk.id, lk.b), {})
                links.append({"link_id": lk.id, "capacity_mbps": lk.capacity_mbps, "delay_ms": lk.delay_ms,
                              "queue_pkts": lk.queue_pkts or QUEUE_PKTS, "up": 1,
                              "load_ab_bps": min(ab.get("bps", 0.0), lk.capacity_mbps * 1e6),
                              "load_ba_bps": min(ba.get("bps", 0.0), lk.capacity_mbps * 1e6),
                              "drops_ab": round(ab.get("loss", 0.0) * ab.get("bps", 0.0) * window_s / (8 * wire)),
                              "drops_ba": round(ba.get("loss", 0.0) * ba.get("bps", 0.0) * window_s / (8 * wire))})
            t_start = T0 + window * window_s
            stores.write_window({"run_id": run_id, "window": window, "t_start": t_start, "t_end": t_start + window_s,
                                 "phase_idx": idx, "topology": topo.name, "routing_version": 0}, flows, links)
            all_labels += labels
            window += 1
        start = end
    sids = stores.snapshot_ids(run_id)  # labels name their window's snapshot, as the runner's do
    stores.write_labels([{**lab, "snapshot_id": sids[lab["window"]]} for lab in all_labels])
    stores.close()
    return run_id


def train_seeded(samples: list, epochs: int = 60, seed: int = 1, model=None, norm=None):
    """A fixed number of epochs whatever the machine's load (the budget is only a bound), traced
    (eager took 80 s for 50 windows, traced 10 s) with batches of 32 windows: about 3 % MAPE on
    the formula's labels, whose noise is 4 %. `model`, `norm`: warm start (the model is trained
    in place)."""
    from vtwin.train import train

    return train(samples, model=model, norm=norm, budget_s=300, epochs=epochs, patience=epochs, windows_per_batch=32,
                 progress=False, lr=3e-3, seed=seed)


def seed_loop_run(data: Path, topology: str, schedule: dict[str, Any], *, run_id: str = "run-seeded-loop",
                  detect_after: int = 3, swap_after: int = 6, epochs: int = 60, seed: int = 1,
                  before_loop: Callable[[Stores], None] | None = None) -> dict[str, Any]:
    """Store a closed-loop run: the traffic run of `seed_traffic_run`, a bootstrap model trained on
    its first phase (v1, serving, then the frozen shadow), a drift detected `detect_after` windows
    into the second phase, a model retrained on every labeled window (v2) serving from `swap_after`
    windows into it, the predictions of both, the loop's final status and events, and the SLA
    monitor's and the interval monitor's windows. `before_loop(stores)` may change the stored
    labels before the loop's stages see them. Returns what `ndt run --json` would summarize: run,
    serving, shadow, swaps."""

    from sync.intervals import IntervalMonitor
    from sync.sla import SlaMonitor
    from sync.stages import Prediction
    from sync.store import LoopStore
    from vtwin.dataset import from_stores
    from vtwin.registry import Registry

    seed_traffic_run(data, topology, schedule, run_id=run_id, seed=seed)
    stores = Stores(data)
    reg = Registry(stores)
    samples = from_stores(stores, [run_id])
    if len({s.phase for s in samples}) < 2:
        raise ValueError("seed_loop_run needs a schedule of at least two phases")
    first = [s for s in samples if s.phase == 0]
    boot = train_seeded(first, epochs, seed)
    v1 = reg.register("delay", boot.model, boot.norm)
    reg.promote("delay", v1)
    retrained = train_seeded(samples, epochs // 2, seed, model=boot.model, norm=boot.norm)  # v1 warm-started
    v2 = reg.register("delay", retrained.model, retrained.norm, parent=v1)
    reg.promote("delay", v2)
    windows = stores.windows(run_id, labels=True)
    phase = {w.window: w.phase for w in windows}
    second = min(w for w, p in phase.items() if p == 1)
    drift_w, swap_w = second + detect_after, second + swap_after
    topo = stores.topology(run_id)
    if before_loop is not None:
        before_loop(stores)
        windows = stores.windows(run_id, labels=True)
    # the loop's own stages on the stored windows: v1 serves (and is the shadow), v2 from swap_w
    loop_store = LoopStore(stores)
    intervals = IntervalMonitor(stores, run_id)
    prediction = Prediction(stores, loop_store, run_id, topo, intervals)
    sla = SlaMonitor(stores, run_id, topo=topo, predicted=prediction.predicted)
    prediction.serve(v1)
    try:
        for w in windows:
            if w.window == swap_w:
                prediction.serve(v2)
            prediction.update(w)
            intervals.update(w)
            sla.update(w)
        intervals.finish()
        sla.finish()
    finally:
        prediction.close()
    last = windows[-1].window
    at = {w: T0 + w + 1 for w in (0, drift_w, swap_w, last)}
    stores.event(run_id, at[0], "swapped", {"state": "serving", "job": "bootstrap", "version": v1, "seconds": 8.0})
    stores.event(run_id, at[drift_w], "drift", {"state": "serving", "window": drift_w, "features": ["rate"],
                                                "phase": 1})
    stores.event(run_id, at[drift_w], "training_started", {"state": "training", "job": "retrain",
                                                           "from_window": drift_w})
    stores.event(run_id, at[swap_w], "swapped", {"state": "serving", "job": "retrain", "version": v2,
                                                 "drift_window": drift_w, "seconds": 20.0})
    loop_store.write_status(run_id, {
        "run": run_id, "state": "finished", "window": last, "phase": phase[last], "phases": len(schedule["phases"]),
        "predicted": len(windows), "detections": 1, "shadow": v1,
        "manager": {"state": "serving", "serving": v2, "swaps": 2, "training_s": 28.0, "worker": None, "job": None},
        "detector": {"features": ["rate"], "filled": 20, "window": 20, "seen": len(windows), "last_detection": drift_w},
        "predict_ms": 4.2})
    stores.close()
    return {"run": run_id, "serving": v2, "shadow": v1, "swaps": 2, "drift_window": drift_w, "swap_window": swap_w}


#: Eight flows on mesh6 at 1.1 times its busiest link: the optimizer's and the plans' seeded run.
OVERLOADED_MESH = {"flows": 8, "seed": 3, "phases": [{"profile": "poisson", "load": 1.1, "duration_s": 4}]}


def seed_overloaded_mesh(data: Path) -> int:
    """The overloaded mesh6 run in `data`; returns the id of its newest snapshot."""
    from traffic.store import Stores

    seed_traffic_run(data, "mesh6", OVERLOADED_MESH)
    return Stores(data).snapshot_list(None, 1, 0)[0]["id"]


def base_predict():
    """The shipped base model as a what-if/optimizer `predict` (version "base")."""
    from vtwin.base_model import load as load_base

    twin = load_base().twin(xla=False)

    def predict(snaps):
        d, j = twin.predict(snaps)
        return d, j, "base"

    return predict
