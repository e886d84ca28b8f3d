"""Virtual-twin benchmark. Prints JSON with

- inference latency (median, p95, first call) for a 50-node / 2000-flow snapshot, compiled with
  XLA (the serving path) and without,
- training step time (a batch of 8 windows),
- accuracy on datasets built with the lab (`bench/dataset.py`): delay and jitter MAPE and NMSE
  of the GNN, the M/M/1 model and the per-flow MLP on the held-out last 20 % of every phase of the
  training topologies, and on a topology never used in training.

    .venv/bin/python bench/vtwin.py --train DATA [DATA ...] [--unseen DATA] [--budget 300]

DATA is a data directory (`--data` of `ndt traffic run`) or an exported `.jsonl` file. Without
--train only the latency figures are measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from topologies import load  # noqa: E402
from topologies.routing import path_links, shortest_paths_from  # noqa: E402
from traffic.store import Stores  # noqa: E402
from vtwin.baselines import MLPBaseline, mm1_predict  # noqa: E402
from vtwin.dataset import Sample, from_jsonl, from_stores, split  # noqa: E402
from vtwin.evaluate import evaluate, evaluate_by_load  # noqa: E402
from vtwin.features import FlowSpec, Normalization, Snapshot, graph_tensors  # noqa: E402
from vtwin.model import build_model, make_predict_fn  # noqa: E402
from vtwin.train import train  # noqa: E402
from vtwin.twin import Twin  # noqa: E402


def synthetic_snapshot(nodes: int = 50, flows: int = 2000, seed: int = 0) -> Snapshot:
    topo = load(f"random:{nodes}:{2 * nodes}:{seed + 1}")
    rng = random.Random(seed)
    paths = {s: shortest_paths_from(topo, s) for s in range(nodes)}
    specs = []
    for i in range(flows):
        a, b = rng.sample(range(nodes), 2)
        specs.append(FlowSpec(f"f{i}", tuple(path_links(topo, paths[a][b])), a, rng.uniform(1e4, 2e5), 512.0))
    return Snapshot(topo, specs)


def percentiles(times: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(times)
    return {"median_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def inference(state: int, iterations: int, repeats: int) -> dict:
    snap = synthetic_snapshot()
    g = graph_tensors([snap])
    norm = Normalization.fit([g])
    model = build_model(state, iterations)
    out = {"nodes": 50, "flows": len(snap.flows), "directed_links": int(g["link_x"].shape[0]),
           "max_path": int(g["path"].shape[1]), "state": state, "iterations": iterations}
    for name, xla in (("xla", True), ("plain", False)):
        fn = make_predict_fn(model, xla=xla)
        t0 = time.perf_counter()
        fn(norm.apply(g))
        first = time.perf_counter() - t0
        times, with_features = [], []
        x = norm.apply(g)
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
        for _ in range(max(5, repeats // 5)):
            t0 = time.perf_counter()
            fn(norm.apply(graph_tensors([snap])))  # what a what-if question costs from a snapshot
            with_features.append(time.perf_counter() - t0)
        out[name] = {**percentiles(times), "first_call_s": round(first, 2),
                     "with_features": percentiles(with_features)}
    return out


def read(path: str) -> list[Sample]:
    p = Path(path)
    if not p.exists():
        raise SystemExit(f"bench/vtwin.py: {path} does not exist (build one with bench/dataset.py)")
    return from_jsonl(p) if p.is_file() else from_stores(Stores(p))


def accuracy(train_paths: list[str], unseen: str | None, budget: float, state: int, iterations: int) -> dict:
    samples = [s for p in train_paths for s in read(p)]
    fit, held = split(samples)
    t0 = time.perf_counter()
    res = train(fit, state=state, iterations=iterations, budget_s=budget, epochs=1000, patience=40, progress=False)
    gnn = Twin(res.model, res.norm)
    steps = res.history and len(res.history)
    mlp = MLPBaseline().fit(fit)
    models = {"gnn": gnn.predict, "mm1": mm1_predict, "mlp": mlp.predict}
    out = {
        "training": {"topologies": sorted({s.topology for s in samples}), "windows": len(fit),
                     "labeled_flows": sum(s.labeled for s in fit), "epochs": res.epochs, "best_epoch": res.best_epoch,
                     "stopped": res.stopped, "seconds": round(time.perf_counter() - t0, 1),
                     "seconds_per_epoch": round(res.seconds / max(steps, 1), 2)},
        "held_out": {"windows": len(held), "labeled_flows": sum(s.labeled for s in held),
                     **{k: evaluate(f, held)["overall"] for k, f in models.items()}},
        "held_out_by_load": {k: evaluate_by_load(f, held) for k, f in models.items()},
        "per_phase_gnn": [{k: g[k] for k in ("topology", "phase", "delay_mape", "delay_nmse_db",
                                             "delay_nmse_power_db", "flows")}
                          for g in evaluate(gnn.predict, held)["groups"]],
    }
    if unseen:
        other = read(unseen)
        topos = {s.topology for s in other}
        overlap = topos & set(out["training"]["topologies"])
        if overlap:
            raise SystemExit(f"bench/vtwin.py: --unseen topology {sorted(overlap)} is also in --train")
        out["unseen"] = {"topologies": sorted(topos), "windows": len(other),
                         "labeled_flows": sum(s.labeled for s in other),
                         **{k: evaluate(f, other)["overall"] for k, f in models.items()},
                         "by_load": {k: evaluate_by_load(f, other) for k, f in models.items()}}
    return out, res


def train_step_time(samples: list[Sample], state: int, iterations: int) -> dict:
    """Seconds per optimizer step on batches of 8 windows (after the first, compiling, epoch)."""
    fit = samples[: 8 * 12]
    t0 = time.perf_counter()
    r1 = train(fit, state=state, iterations=iterations, epochs=1, patience=99, progress=False)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    train(fit, model=r1.model, norm=r1.norm, epochs=3, patience=99, progress=False)
    steps = 3 * -(-len(split(fit, held_out=0.15)[0]) // 8)
    return {"windows_per_batch": 8, "step_ms": round(1000 * (time.perf_counter() - t0) / steps, 1),
            "first_epoch_s": round(first, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", nargs="*", default=[], help="data directories or .jsonl files to train on")
    ap.add_argument("--unseen", help="a dataset of a topology never used in training")
    ap.add_argument("--budget", type=float, default=300.0, help="training time budget (s)")
    ap.add_argument("--state", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    out: dict = {"bench": "vtwin", "inference": inference(args.state, args.iterations, args.repeats)}
    if args.train:
        samples = [s for p in args.train for s in read(p)]
        out["train_step"] = train_step_time(samples, args.state, args.iterations)
        out["accuracy"], _ = accuracy(args.train, args.unseen, args.budget, args.state, args.iterations)
        out["targets"] = {"delay_mape_held_out_pct": 10, "inference_ms": 50}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
