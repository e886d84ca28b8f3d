"""What-if benchmark: how long the twin takes to answer "what if this link fails?" on a 40-node
topology, against answering the same question by emulating it. Prints JSON.

1. A real lab on the topology (default `random:40:60:1`, 40 switches and 60 links) runs two
   phases of D-ITG traffic into a fresh data directory; a model is trained on it (`ndt train`).
2. The question: the most loaded link that is not a bridge fails, on the busiest snapshot of the
   second phase. The twin answers it in-process (the engine) and over HTTP (`ndt serve`), many
   times: median and p95.
3. Emulation answers it too: bring the lab up again, take the link down, run the second phase's
   traffic (same flows, rates and duration), decode the measurements. Its wall time against the
   twin's answer is the ratio; the twin's predicted post-failure delays are scored against the
   measured ones (MAPE per flow, matched by host pair and flow number).

    sudo .venv/bin/python bench/whatif.py [--topology random:40:60:1] [--flows 20] [--phase-s 20]
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
import requests
from ndtcli import ROOT, lab_down, ndt, require_root

sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def schedule(path: Path, flows: int, phases: list[dict]) -> str:
    path.write_text(json.dumps({"flows": flows, "seed": 4, "phases": phases}))
    return str(path)


def pct(xs: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(xs), 2), "p95_ms": round(float(np.percentile(xs, 95)), 2),
            "n": len(xs)}


def flow_id(key: str) -> tuple[str, str, int]:
    """(source ip, destination ip, flow number) of a run flow's key proto:src:sport>dst:dport."""
    left, right = key.split(">")
    dst, dport = right.rsplit(":", 1)
    return left.split(":")[1], dst, int(dport) % 100


def question(data: str) -> tuple[int, str]:
    """The busiest snapshot of the second phase and its most loaded non-bridge link."""
    import networkx as nx

    from apps.whatif import baseline, route, utilization
    from traffic.store import Stores

    stores = Stores(data)
    run = stores.runs()[-1]["id"]
    busiest = max(stores.windows(run, phase=1, run_flows_only=True), key=lambda w: (len(w.flows), -w.window))
    snap = busiest.snapshot_id
    net = baseline(stores, snap)[2]
    util = utilization(route(net)[0])
    bridges = {net.topo.link_between(u, v).id for u, v in nx.bridges(nx.Graph([(lk.a, lk.b)
                                                                                for lk in net.topo.links]))}
    link = max((lid for lid in util if lid not in bridges), key=util.get)
    return snap, link


def engine_latency(data: str, request: dict, n: int) -> tuple[list[float], dict]:
    from apps.whatif import answer, parse_request
    from traffic.store import Stores
    from vtwin.predictor import Predictor
    from vtwin.registry import Registry

    stores = Stores(data)
    predictor = Predictor(Registry(stores), xla=False)
    request = parse_request(request)
    answer(predictor.predict, stores, request)  # warm
    times, res = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        res = answer(predictor.predict, stores, request).result
        times.append(1000 * (time.perf_counter() - t0))
    return times, res


def http_latency(data: str, request: dict, n: int, port: int) -> list[float]:
    proc = subprocess.Popen([sys.executable, "-m", "apps", "serve", "--data", data, "--port", str(port)], cwd=ROOT,
                            env={**os.environ, "NDT_TOKEN": "bench"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(url + "/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("bench/whatif.py: ndt serve did not come up")
            time.sleep(0.3)
        session = requests.Session()
        session.post(url + "/twin/whatif", json=request, timeout=60).raise_for_status()  # warm
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            session.post(url + "/twin/whatif", json=request, timeout=60).raise_for_status()
            times.append(1000 * (time.perf_counter() - t0))
        return times
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topology", default="random:40:60:1")
    ap.add_argument("--flows", type=int, default=20)
    ap.add_argument("--phase-s", type=float, default=20.0, help="duration of each traffic phase")
    ap.add_argument("--loads", default="0.4,0.8", help="loads of the two phases")
    ap.add_argument("--train-budget", type=float, default=90.0)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--port", type=int, default=18900)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    if not require_root("bench/whatif.py"):
        return 1
    data = args.data or tempfile.mkdtemp(prefix="ndt-whatif-")
    work = Path(data).parent
    lo, hi = (float(x) for x in args.loads.split(","))
    phases = [{"profile": "deterministic", "load": lo, "duration_s": args.phase_s},
              {"profile": "deterministic", "load": hi, "duration_s": args.phase_s}]
    t = {}
    try:
        t0 = time.monotonic()
        up = ndt("lab", "up", args.topology)
        t["baseline_lab_up_s"] = round(time.monotonic() - t0, 1)
        base = ndt("traffic", "run", schedule(work / "whatif-base.json", args.flows, phases), "--data", data)
    finally:
        lab_down()
    t0 = time.monotonic()
    trained = ndt("train", "--data", data, "--budget", str(args.train_budget), "--promote")
    t["train_s"] = round(time.monotonic() - t0, 1)
    snap, link = question(data)
    request = {"snapshot_id": snap, "scenario": {"type": "link_failure", "targets": [link]},
               "slo": {"latency_ms": 100}, "policies": ["intent:reachability", "intent:max-utilization:1.0"]}
    engine, res = engine_latency(data, request, args.repeat)
    http = http_latency(data, request, max(10, args.repeat // 2), args.port)

    # the same question by emulation: the changed lab, the same traffic, measured
    em: dict = {}
    t0 = time.monotonic()
    try:
        ndt("lab", "up", args.topology)
        em["lab_up_s"] = round(time.monotonic() - t0, 1)
        ndt("lab", "link", link, "down")
        t1 = time.monotonic()
        run2 = ndt("traffic", "run", schedule(work / "whatif-emulate.json", args.flows, phases[1:]), "--data",
                   str(Path(data) / "emulated"))
        em["traffic_and_measure_s"] = round(time.monotonic() - t1, 1)
        em["answer_s"] = round(time.monotonic() - t0, 1)
    finally:
        t2 = time.monotonic()
        lab_down()
        em["lab_down_s"] = round(time.monotonic() - t2, 1)

    # the twin's predicted post-failure delays against the emulated measurements
    from traffic.store import Stores

    delays: dict[str, list[float]] = {}
    for (_, key), lab in Stores(Path(data) / "emulated").labels_of(run2["run"]).items():
        if lab.delay_ms is not None:
            delays.setdefault(key, []).append(lab.delay_ms)
    measured = {flow_id(key): sum(d) / len(d) for key, d in delays.items()}
    pairs = [(f["post_delay_ms"], measured[flow_id(f["flow"])]) for f in res["flows"]
             if f["post_delay_ms"] is not None and flow_id(f["flow"]) in measured and f["flow"].endswith(
                 tuple(f":{10100 + i}" for i in range(args.flows)))]
    err = [abs(p - m) / m for p, m in pairs if m > 0]
    twin_ms = statistics.median(engine)
    print(json.dumps({
        "bench": "whatif", "topology": args.topology, "switches": len(up.get("hosts", {})) or None,
        "flows": args.flows, "data": data, "baseline_run": base["run"], "snapshot_id": snap, "failed_link": link,
        "model": trained["uri"], "decision": res["decision"], "risk_score": res["risk_score"],
        "affected_flows": res["blast_radius"]["flows"], "flows_in_snapshot": len(res["flows"]),
        "whatif_engine": pct(engine), "whatif_http": pct(http),
        "emulation": {**em, "phase_s": args.phase_s, "run": run2["run"]},
        "speedup": {"engine": round(1000 * em["answer_s"] / twin_ms), "http": round(1000 * em["answer_s"]
                                                                                   / statistics.median(http))},
        "twin_vs_emulation": {"flows_matched": len(err), "post_delay_mape": round(100 * statistics.mean(err), 1)
                              if err else None},
        "setup": t, "targets": {"answer_ms_max": 100, "speedup_min": 1000},
        "met": {"answer": statistics.median(http) < 100, "speedup": 1000 * em["answer_s"] / twin_ms >= 1000},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
