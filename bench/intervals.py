"""Prediction intervals and anomalies: coverage against the nominal level, width, cost, and how
soon a fault the twin is not told about is flagged. Prints JSON.

- coverage and median and mean relative width ((high - low) / prediction) of the shipped base model's
  intervals (`vtwin.intervals`, at `--level`, 0.9 by default), delay and jitter, overall and per
  flow category:
  * `held_out`: the corpus' held-out windows (the last 20 % of every run's phases): calibrated on
    the first half of each phase's held-out windows, scored on the second half;
  * `unseen_from_corpus`: calibrated on all the corpus' held-out windows, scored on each topology
    of `--unseen` (a network neither the twin nor its calibration has seen);
  * without `--corpus`, `unseen_from_other_networks`: each unseen network scored with the
    calibration of the other unseen ones;
  * `unseen_in_loop`: each unseen network in time order, every window's intervals from its own
    last 30 labeled windows (what `sync.intervals` does in `ndt run`), scored on that window;
- `cost`: the median time of a prediction for 50 nodes / 2,000 flows with and without its
  intervals (categories and delay and jitter intervals), and their ratio;
- with `--anomaly` (root, a lab; about 2.5 minutes): `ndt run` from the base model on the diamond,
  the link most flows cross cut to a fifth of its capacity behind the controller's back once the
  predictions carry intervals, and the time and windows from the cut to the first anomaly on a
  flow crossing it.

    .venv/bin/python bench/intervals.py [--corpus DATA] [--unseen DATA] [--level 0.9] [--anomaly]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.vtwin import random_snapshot, read  # noqa: E402
from topologies import load  # noqa: E402
from vtwin.dataset import Sample, batch, split  # noqa: E402
from vtwin.features import graph_tensors  # noqa: E402
from vtwin.intervals import CATEGORY_NAMES, Calibration, categories, coverage  # noqa: E402

LOOP_WINDOWS = 30


def predicted(twin, samples: list[Sample]) -> list[dict[str, np.ndarray]]:
    """Per sample: predicted and measured delay and jitter, and the flows' categories."""
    g, d_true, j_true = batch(samples)
    d, j = twin.predict_graph(g)
    cats = categories(g)
    out, at = [], 0
    for s in samples:
        n = len(s.snapshot.flows)
        sl = slice(at, at + n)
        out.append({"d": d[sl], "j": j[sl], "cat": cats[sl], "d_true": d_true[sl], "j_true": j_true[sl]})
        at += n
    return out


def _cat(parts: list[dict[str, np.ndarray]], key: str) -> np.ndarray:
    return np.concatenate([p[key] for p in parts]) if parts else np.zeros(0)


def calibrate(parts: list[dict[str, np.ndarray]], source: str) -> Calibration:
    return Calibration.fit({"delay": _cat(parts, "d"), "jitter": _cat(parts, "j")},
                           {"delay": _cat(parts, "d_true"), "jitter": _cat(parts, "j_true")}, _cat(parts, "cat"),
                           source)


def scores(cal: Calibration, parts: list[dict[str, np.ndarray]], level: float) -> dict:
    """Coverage and mean relative width, delay and jitter, overall and per category."""
    out: dict = {}
    cats = _cat(parts, "cat")
    for kpi, p, t in (("delay", "d", "d_true"), ("jitter", "j", "j_true")):
        pred, true = _cat(parts, p), _cat(parts, t)
        lo, hi = cal.interval(pred, cats, level, kpi)
        ok = np.isfinite(true)
        res = {"flows": int(ok.sum()), "coverage": _r(coverage(true, lo, hi))} | _widths((hi - lo)[ok] / pred[ok])
        res["by_category"] = {
            name: {"flows": int((ok & (cats == k)).sum()),
                   "coverage": _r(coverage(true[cats == k], lo[cats == k], hi[cats == k]))}
            for k, name in CATEGORY_NAMES.items() if (ok & (cats == k)).any()}
        out[kpi] = res
    return out


def in_loop(parts: list[dict[str, np.ndarray]], level: float) -> dict:
    """Each window's intervals from the previous LOOP_WINDOWS labeled windows, scored on it."""
    recent: deque = deque(maxlen=LOOP_WINDOWS)
    hits = {"delay": [0, 0], "jitter": [0, 0]}
    widths = []
    for p in parts:
        if len(recent) >= 10:
            cal = calibrate(list(recent), "the network's last windows")
            for kpi, key, true in (("delay", "d", "d_true"), ("jitter", "j", "j_true")):
                try:
                    lo, hi = cal.interval(p[key], p["cat"], level, kpi)
                except ValueError:
                    continue
                ok = np.isfinite(p[true])
                hits[kpi][0] += int(((p[true] >= lo) & (p[true] <= hi))[ok].sum())
                hits[kpi][1] += int(ok.sum())
                if kpi == "delay" and ok.any():
                    widths.extend((hi - lo)[ok] / p[key][ok])
        recent.append(p)
    return {kpi: {"flows": n, "coverage": _r(c / n if n else None)} for kpi, (c, n) in hits.items()} | {
        f"delay_{k}": v for k, v in _widths(np.asarray(widths)).items()}


def _widths(rel: np.ndarray) -> dict:
    """Median and mean of (high - low) / prediction over the finite ones (a prediction of 0 has none)."""
    rel = rel[np.isfinite(rel)]
    return {"median_width_rel": _r(float(np.median(rel)) if rel.size else None),
            "mean_width_rel": _r(float(np.mean(rel)) if rel.size else None)}


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def unseen_only(unseen: str, level: float) -> dict:
    """Without the corpus: each unseen network scored with the calibration of the others (a network
    neither the twin nor its calibration has seen), and in the loop's way."""
    from vtwin.base_model import load as load_base

    twin = load_base().twin(xla=False)
    other = read(unseen)
    parts = {topo: predicted(twin, sorted((s for s in other if s.topology == topo), key=lambda s: (s.run, s.window)))
             for topo in sorted({s.topology for s in other})}
    out: dict = {"level": level, "unseen_from_other_networks": {}, "unseen_in_loop": {}}
    for topo, p in parts.items():
        cal = calibrate([x for t, q in parts.items() if t != topo for x in q], "the other unseen networks")
        out["unseen_from_other_networks"][topo] = scores(cal, p, level)
        out["unseen_in_loop"][topo] = in_loop(p, level)
    return out


def fidelity(corpus: str, unseen: str | None, level: float) -> dict:
    from vtwin.base_model import load as load_base

    twin = load_base().twin(xla=False)
    _, held = split(read(corpus))
    by_phase: dict[tuple, list[Sample]] = {}
    for s in held:
        by_phase.setdefault((s.run, s.phase), []).append(s)
    cal_part, test_part = [], []
    for windows in by_phase.values():
        windows.sort(key=lambda s: s.window)
        half = len(windows) // 2
        cal_part += windows[:half]
        test_part += windows[half:]
    cal_parts, test_parts = predicted(twin, cal_part), predicted(twin, test_part)
    cal = calibrate(cal_parts, "the first half of the corpus' held-out windows")
    out: dict = {"level": level, "held_out": {"calibration_flows": cal.size(), **scores(cal, test_parts, level),
                                              "factors": cal.quantiles(level)}}
    if unseen:
        every = calibrate(cal_parts + test_parts, "the corpus' held-out windows")
        other = read(unseen)
        out["unseen_from_corpus"], out["unseen_in_loop"] = {}, {}
        for topo in sorted({s.topology for s in other}):
            part = sorted((s for s in other if s.topology == topo), key=lambda s: (s.run, s.window))
            parts = predicted(twin, part)
            out["unseen_from_corpus"][topo] = scores(every, parts, level)
            out["unseen_in_loop"][topo] = in_loop(parts, level)
    return out


def cost(level: float, repeats: int = 30) -> dict:
    from vtwin.base_model import load as load_base

    twin = load_base().twin(xla=True)
    snap = random_snapshot(load("random:50:100:1"), 2000)
    rng = np.random.default_rng(0)
    n = 2000
    cal = Calibration.fit({"delay": np.ones(n), "jitter": np.ones(n)},
                          {"delay": np.exp(rng.normal(0, 0.2, n)), "jitter": np.exp(rng.normal(0, 0.5, n))},
                          rng.integers(0, 4, n), "synthetic scores")
    twin.predict([snap])
    plain, with_iv = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        g = graph_tensors([snap])
        d, j = twin.predict_graph(g)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        g = graph_tensors([snap])
        d, j = twin.predict_graph(g)
        cats = categories(g)
        cal.interval(d, cats, level, "delay")
        cal.interval(j, cats, level, "jitter")
        with_iv.append(time.perf_counter() - t0)
    a, b = float(np.median(plain)) * 1000, float(np.median(with_iv)) * 1000
    return {"nodes": 50, "flows": 2000, "median_ms": round(a, 2), "with_intervals_median_ms": round(b, 2),
            "added_pct": round(100 * (b - a) / a, 1)}


def anomaly() -> dict:
    """The faulted run of tests/test_anomaly_lab.py, timed."""
    steady = {"flows": 4, "seed": 5, "phases": [{"profile": "deterministic", "load": 0.5, "duration_s": 110}]}
    tmp = Path(tempfile.mkdtemp(prefix="ndt-bench-anomaly-"))
    (tmp / "steady.json").write_text(json.dumps(steady))
    data = tmp / "data"
    ndt = [sys.executable, "-m", "apps"]
    proc = subprocess.Popen([*ndt, "run", "diamond", "--schedule", str(tmp / "steady.json"), "--data", str(data),
                             "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stores():
        from traffic.store import Stores

        return Stores(data) if (data / "traffic.db").exists() and (data / "labels.db").exists() else None

    def calibrated_windows() -> int:
        from sync.store import LoopStore

        st = stores()
        run = st and st.newest_run()
        return len({p["window"] for p in LoopStore(st).predictions(run) if p["anomaly_lo"] is not None}) if run else 0

    try:
        deadline = time.monotonic() + 150
        while calibrated_windows() < 8:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("bench/intervals.py: the run never calibrated its intervals")
            time.sleep(0.5)
        st = stores()
        run = st.newest_run()
        fault_window = st.last_window(run)["window"]
        crossing = Counter(lk for f in st.window(run, fault_window).run_flows for lk in f.links)
        link = crossing.most_common(1)[0][0]
        subprocess.run([*ndt, "lab", "capacity", link, str(load("diamond").link(link).capacity_mbps * 0.2),
                        "--untold"], cwd=ROOT, check=True, capture_output=True)
        fault_at = time.time()
        summary = json.loads(proc.communicate(timeout=300)[0] or "{}")
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
    from sync.intervals import IntervalStore

    every = sorted(IntervalStore(stores()).anomalies(run), key=lambda a: a["detected_at"])
    rows = [a for a in every if link in a["path"].split(",") and a["window"] > fault_window]
    return {"link": link, "cut_to": 0.2, "fault_window": fault_window, "anomalies_after": len(rows),
            "anomalies_before": sum(a["window"] <= fault_window for a in every),
            "first_anomaly_s": round(rows[0]["detected_at"] - fault_at, 1) if rows else None,
            "first_anomaly_windows": rows[0]["window"] - fault_window if rows else None,
            "run_intervals": summary.get("intervals"), "data": str(data)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", help="the base model's corpus (data directory or .jsonl)")
    ap.add_argument("--unseen", help="a corpus of networks not in it")
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--anomaly", action="store_true", help="time the flagging of an untold fault on a lab (root)")
    args = ap.parse_args()
    out: dict = {"cost": cost(args.level)}
    if args.corpus:
        out["coverage"] = fidelity(args.corpus, args.unseen, args.level)
    elif args.unseen:
        out["coverage"] = unseen_only(args.unseen, args.level)
    if args.anomaly:
        out["anomaly"] = anomaly()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
