"""How sure the twin is: prediction intervals for per-flow delay and jitter by split conformal
calibration (crepes' Mondrian conformal regressor) on labeled windows.

Method. The nonconformity score of a labeled flow-window is its log ratio, log(measured /
predicted): the twin's errors are multiplicative (a MAPE-like spread at every delay scale, from
1 ms idle paths to 500 ms full buffers), so on a log scale one quantile serves every scale and an
interval is [p * exp(-q), p * exp(q)] around a prediction p. Scores are kept per category
(Mondrian): flows whose path crosses a link more traffic reaches than it carries (`link_full`
> 0) err about three times as much as the others (45 % against 14 % MAPE on the base corpus'
held-out windows), and TCP more than UDP, so a single quantile would cover stable flows too
widely and overloaded ones too narrowly. Within each category, split conformal gives at least the
nominal coverage on exchangeable windows (Vovk et al.; the `crepes` package, Boström 2022);
where a category has too few scores for the level, the flows in it get the interval from all
scores together, and with too few of those there is no calibration (`IntervalError`).

Sources. `Calibration.fit` takes predictions and labels from anywhere: the loop calibrates on its
recent labeled windows (a rolling set, so intervals widen after a drift makes the twin miss), a
what-if on the recent labeled windows of its snapshot's run predicted by the serving model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import IntervalError, SnapshotError

DEFAULT_LEVEL = 0.9
#: The stricter level whose interval a measurement must leave to be an anomaly.
ANOMALY_LEVEL = 0.99
KPIS = ("delay", "jitter")
__all__ = ["IntervalError", "Calibration", "calibrate", "categories", "check_level", "coverage", "needed"]
#: Mondrian categories: bit 0 TCP, bit 1 overloaded path.
CATEGORY_NAMES = {0: "udp", 1: "tcp", 2: "udp, overloaded", 3: "tcp, overloaded"}
_FLOOR_MS = 1e-3  # predictions and labels are floored here before the log


def check_level(level: Any) -> float:
    """The level as a float in (0, 1), else IntervalError."""
    try:
        v = float(level)
    except (TypeError, ValueError):
        raise IntervalError(f"interval level must be a number in (0, 1), got {level!r}") from None
    if not 0.0 < v < 1.0:
        raise IntervalError(f"interval level must be in (0, 1), got {v:g}")
    return v


def needed(level: float) -> int:
    """The fewest scores with which split conformal gives a finite interval at `level`."""
    return int(np.ceil(level / (1.0 - level) - 1e-9))


def categories(g: dict[str, np.ndarray]) -> np.ndarray:
    """Each flow's Mondrian category from raw graph tensors (`features.graph_tensors`): TCP or not,
    and whether any link of its path is fed more than it carries."""
    tcp = g["flow_x"][:, 3] > 0.5
    full = np.concatenate([g["link_full"], [0.0]])[g["path"]] * g["mask"]
    return tcp.astype(np.int64) + 2 * (full.max(axis=1) > 0).astype(np.int64)


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(x, dtype=np.float64), _FLOOR_MS))


@dataclass
class Calibration:
    """Log-ratio scores per KPI with each score's category; `interval` turns predictions into
    intervals at any level the scores support."""

    scores: dict[str, np.ndarray]
    cats: dict[str, np.ndarray]
    source: str = ""

    @classmethod
    def fit(cls, predicted: dict[str, np.ndarray], measured: dict[str, np.ndarray], cats: np.ndarray,
            source: str = "") -> Calibration:
        """From predictions and labels per KPI ("delay", "jitter"; NaN labels are skipped) and the
        flows' categories."""
        scores, kept = {}, {}
        for kpi in KPIS:
            p, m = np.asarray(predicted[kpi], float), np.asarray(measured[kpi], float)
            ok = np.isfinite(p) & np.isfinite(m)
            scores[kpi] = _log(m[ok]) - _log(p[ok])
            kept[kpi] = np.asarray(cats)[ok]
        return cls(scores, kept, source)

    def size(self, kpi: str = "delay") -> int:
        return int(len(self.scores[kpi]))

    def check(self, level: float, kpi: str = "delay") -> None:
        if self.size(kpi) < needed(level):
            raise IntervalError(f"the twin's {kpi} has {self.size(kpi)} calibration score(s) "
                                f"({self.source or 'no labeled windows'}); an interval at {level:g} needs "
                                f"{needed(level)}")

    def interval(self, predicted: np.ndarray, cats: np.ndarray, level: float = DEFAULT_LEVEL,
                 kpi: str = "delay") -> tuple[np.ndarray, np.ndarray]:
        """(low, high) per prediction at `level`; IntervalError without enough scores."""
        from crepes import ConformalRegressor

        level = check_level(level)
        self.check(level, kpi)
        s, c = self.scores[kpi], self.cats[kpi]
        logp = _log(predicted)
        cats = np.asarray(cats)
        counts = {int(k): int(n) for k, n in zip(*np.unique(c, return_counts=True), strict=True)}
        own = np.array([counts.get(int(k), 0) >= needed(level) for k in cats], dtype=bool)
        out = np.empty((len(logp), 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # crepes warns about categories too small; those are not used
            if own.any():
                out[own] = ConformalRegressor().fit(s, bins=c).predict_int(logp[own], bins=cats[own],
                                                                           confidence=level)
            if (~own).any():
                out[~own] = ConformalRegressor().fit(s).predict_int(logp[~own], confidence=level)
        return np.exp(out[:, 0]), np.exp(out[:, 1])

    def quantiles(self, level: float = DEFAULT_LEVEL, kpi: str = "delay") -> dict[str, Any]:
        """Per category: scores and the interval's factor (high / prediction) at `level`."""
        out = {}
        for k, name in CATEGORY_NAMES.items():
            n = int((self.cats[kpi] == k).sum())
            if n:
                _, hi = self.interval(np.ones(1), np.array([k]), level, kpi)
                out[name] = {"scores": n, "factor": round(float(hi[0]), 3)}
        return out


def coverage(measured: np.ndarray, low: np.ndarray, high: np.ndarray) -> float | None:
    """The share of finite measurements inside their intervals."""
    m = np.asarray(measured, float)
    ok = np.isfinite(m)
    if not ok.any():
        return None
    return float(np.mean((m[ok] >= low[ok]) & (m[ok] <= high[ok])))


def calibrate(twin: Any, samples: list[Any], source: str = "") -> Calibration:
    """A calibration from labeled samples (`vtwin.dataset.Sample`: snapshot, delay and jitter
    labels) predicted by `twin` in one batch."""
    from .dataset import batch

    if not samples:
        raise IntervalError(f"no labeled windows to calibrate on ({source or 'none given'})")
    try:
        g, delay, jitter = batch(samples)
    except SnapshotError as exc:
        raise IntervalError(f"cannot calibrate: {exc}") from None
    d, j = twin.predict_graph(g)
    return Calibration.fit({"delay": d, "jitter": j}, {"delay": delay, "jitter": jitter}, categories(g), source)
