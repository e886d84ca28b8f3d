"""Accuracy measures: MAPE (%) and NMSE in dB, overall and per topology and phase.

Two NMSE definitions, both in dB (10 log10), always labeled:
- `nmse_db` / `nmse_var_db` (ours): sum (y - y_hat)^2 / sum (y - mean y)^2; 0 dB is as good as
  always answering the mean, -10 dB is ten times better;
- `nmse_power_db` (the robust-ndt paper's): mean (y - y_hat)^2 / mean y^2, normalized by the
  labels' power; it is lower than ours by 10 log10(1 + mean^2 / variance) on the same predictions.
Jitter MAPE skips targets under 0.01 ms.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

MIN_JITTER_MS = 0.01


def mape(pred: np.ndarray, true: np.ndarray, floor: float = 1e-9) -> float | None:
    ok = np.isfinite(true) & (np.abs(true) > floor)
    if not ok.any():
        return None
    return float(100.0 * np.mean(np.abs(pred[ok] - true[ok]) / np.abs(true[ok])))


def nmse_db(pred: np.ndarray, true: np.ndarray) -> float | None:
    ok = np.isfinite(true)
    if ok.sum() < 2:
        return None
    err = float(np.sum((pred[ok] - true[ok]) ** 2))
    var = float(np.sum((true[ok] - true[ok].mean()) ** 2))
    if var <= 0:
        return None
    return 10.0 * math.log10(max(err, 1e-30) / var)


def nmse_power_db(pred: np.ndarray, true: np.ndarray) -> float | None:
    """The paper's NMSE: mean squared error over the labels' mean square, in dB."""
    ok = np.isfinite(true)
    if ok.sum() < 1:
        return None
    err = float(np.mean((pred[ok] - true[ok]) ** 2))
    power = float(np.mean(true[ok] ** 2))
    if power <= 0:
        return None
    return 10.0 * math.log10(max(err, 1e-30) / power)


nmse_var_db = nmse_db


def mae(pred: np.ndarray, true: np.ndarray) -> float | None:
    ok = np.isfinite(true)
    return float(np.mean(np.abs(pred[ok] - true[ok]))) if ok.any() else None


def scores(pd: np.ndarray, pj: np.ndarray, yd: np.ndarray, yj: np.ndarray) -> dict[str, Any]:
    return {"delay_mape": _r(mape(pd, yd)), "delay_nmse_db": _r(nmse_db(pd, yd)),
            "delay_nmse_power_db": _r(nmse_power_db(pd, yd)), "delay_mae_ms": _r(mae(pd, yd)),
            "jitter_mape": _r(mape(pj, yj, MIN_JITTER_MS)), "jitter_nmse_db": _r(nmse_db(pj, yj)),
            "jitter_nmse_power_db": _r(nmse_power_db(pj, yj)), "jitter_mae_ms": _r(mae(pj, yj)),
            "flows": int(np.isfinite(yd).sum())}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def evaluate(predict, samples: list) -> dict[str, Any]:
    """Scores of `predict(snapshots) -> (delay, jitter)` on the samples, overall and per (topology,
    phase)."""
    groups: dict[tuple[str, Any], list] = defaultdict(list)
    for s in samples:
        groups[(s.topology, s.phase)].append(s)
    all_p: list[np.ndarray] = [[], [], [], []]  # type: ignore[list-item]
    per = []
    for (topo, phase), group in sorted(groups.items(), key=lambda kv: (kv[0][0], -1 if kv[0][1] is None else kv[0][1])):
        pd, pj = predict([s.snapshot for s in group])
        yd = np.concatenate([s.delay_ms for s in group])
        yj = np.concatenate([s.jitter_ms for s in group])
        per.append({"topology": topo, "phase": phase, **scores(pd, pj, yd, yj)})
        for acc, x in zip(all_p, (pd, pj, yd, yj), strict=True):
            acc.append(x)
    if not per:
        return {"overall": None, "groups": []}
    pd, pj, yd, yj = (np.concatenate(x) for x in all_p)
    return {"overall": scores(pd, pj, yd, yj), "groups": per}


def path_utilization(samples: list) -> np.ndarray:
    """Per flow (in the samples' order): the highest computed utilization on its path."""
    from .features import graph_tensors

    g = graph_tensors([s.snapshot for s in samples])
    util = np.append(g["link_x"][:, 2], 0.0)  # the padding index points past the real links
    return np.max(np.where(g["mask"], util[g["path"]], 0.0), axis=1)


def evaluate_by_load(predict, samples: list, limit: float = 1.0) -> dict[str, Any]:
    """Scores for flows whose path stays under `limit` utilization (computed from offered rates)
    and for flows crossing an overloaded link, where queues grow for as long as the overload
    lasts and a snapshot cannot say how long that has been."""
    if not samples:
        return {"stable": None, "overloaded": None}
    pd, pj = predict([s.snapshot for s in samples])
    yd = np.concatenate([s.delay_ms for s in samples])
    yj = np.concatenate([s.jitter_ms for s in samples])
    over = path_utilization(samples) >= limit
    out = {}
    for name, m in (("stable", ~over), ("overloaded", over)):
        out[name] = scores(pd[m], pj[m], yd[m], yj[m]) if m.any() else None
    return out


def _phase_labels(samples: list) -> dict[tuple[str, Any, str], list[tuple[int, float, float]]]:
    out: dict[tuple[str, Any, str], list[tuple[int, float, float]]] = defaultdict(list)
    for s in samples:
        for f, d, j in zip(s.snapshot.flows, s.delay_ms, s.jitter_ms, strict=True):
            if np.isfinite(d):
                out[(s.run, s.phase, f.key)].append((s.window, float(d), float(j)))
    return out


def weighted_median(values: np.ndarray) -> float:
    """The constant c that minimizes the mean of |c - y| / y over `values` (all positive): their
    median weighted by 1/y, the MAPE's own centre (below the mean and the median)."""
    v = np.sort(np.asarray(values, dtype=float))
    cum = np.cumsum(1.0 / v)
    return float(v[np.searchsorted(cum, cum[-1] / 2)])


def mape_floor(samples: list, reference: list | None = None, limit: float = 1.0) -> dict[str, Any] | None:
    """The delay and jitter MAPE of answering each flow-window with the one constant per flow and
    phase that minimizes the MAPE (`weighted_median`): chosen from `reference`'s windows of the
    same flow and phase (the training windows, for held-out ones: what remembering the flow's
    earlier windows scores), else in hindsight from `samples`' own windows. The hindsight figure
    bounds every twin whose inputs are constant over a phase: none scores a lower MAPE on these
    labels, whatever it learns. ndt's twin reads two inputs that move within a phase, a flow's
    age and a UDP flow's rate as counted in the window, so for it the bound is close, not
    strict. Given overall and for flows under and over `limit` utilization (as
    `evaluate_by_load`); flow-windows with no reference are left out, and jitter labels at or
    under MIN_JITTER_MS as in `scores`."""
    if not samples:
        return None
    over = path_utilization(samples) >= limit
    mine: dict[tuple, list[tuple[float, float, bool]]] = defaultdict(list)
    at = 0
    for s in samples:
        for f, d, j in zip(s.snapshot.flows, s.delay_ms, s.jitter_ms, strict=True):
            if np.isfinite(d) and d > 0:
                mine[(s.run, s.phase, f.key)].append((float(d), float(j), bool(over[at])))
            at += 1
    ref = _phase_labels(reference) if reference is not None else None
    errs: dict[str, dict[bool, list[float]]] = {"delay": {False: [], True: []}, "jitter": {False: [], True: []}}
    for key, pts in mine.items():
        if ref is not None:
            d_ref = [p[1] for p in ref.get(key, []) if p[1] > 0]
            j_ref = [p[2] for p in ref.get(key, []) if np.isfinite(p[2]) and p[2] > MIN_JITTER_MS]
        else:
            d_ref = [p[0] for p in pts]
            j_ref = [p[1] for p in pts if np.isfinite(p[1]) and p[1] > MIN_JITTER_MS]
        c_d = weighted_median(np.array(d_ref)) if d_ref else None
        c_j = weighted_median(np.array(j_ref)) if j_ref else None
        for d, j, o in pts:
            if c_d is not None:
                errs["delay"][o].append(abs(c_d - d) / d)
            if c_j is not None and np.isfinite(j) and j > MIN_JITTER_MS:
                errs["jitter"][o].append(abs(c_j - j) / j)

    def pct(v: list[float]) -> float | None:
        return round(100.0 * float(np.mean(v)), 3) if v else None

    out: dict[str, Any] = {}
    for name, sel in (("overall", (False, True)), ("stable", (False,)), ("overloaded", (True,))):
        d = [e for o in sel for e in errs["delay"][o]]
        j = [e for o in sel for e in errs["jitter"][o]]
        out[name] = {"delay_mape": pct(d), "jitter_mape": pct(j), "flows": len(d)}
    return out if out["overall"]["flows"] else None


def label_floor(samples: list, reference: list | None = None) -> dict[str, Any] | None:
    """The labels' own floor: the scores of a hindsight predictor that answers each flow-window
    with its flow's mean label over other windows of the same phase, those of `reference` (the
    training windows, for held-out ones), else every other window of `samples` (leave-one-out).
    Every input of the twin is constant over a phase, so no twin does better on average than the
    phase mean: what this scores is the labels' variation within a phase (queues' and TCP's
    dynamics, a window's sampling of them), not a model's error. Flows with no other window are
    left out."""
    mine = _phase_labels(samples)
    ref = _phase_labels(reference) if reference is not None else None
    pd, pj, yd, yj = [], [], [], []
    for key, pts in mine.items():
        for w, d, j in pts:
            others = (ref or {}).get(key, []) if ref is not None else [p for p in pts if p[0] != w]
            if not others:
                continue
            pd.append(np.mean([p[1] for p in others]))
            pj.append(np.nanmean([p[2] for p in others]) if np.isfinite([p[2] for p in others]).any() else np.nan)
            yd.append(d)
            yj.append(j)
    if not yd:
        return None
    return scores(*(np.asarray(x, dtype=float) for x in (pd, pj, yd, yj)))
