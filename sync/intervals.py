"""Prediction intervals in the closed loop, their coverage, and anomalies: where the measured
network leaves its twin.

`IntervalMonitor` calibrates on the run's recent labeled windows (`vtwin.intervals`: conformal,
per flow category, on log ratios): the scores of the last `keep_windows` labeled windows, of
whichever model predicted them, so that after a drift the twin's misses widen the intervals until
a retrained model narrows them again. The prediction stage asks it for every new window's
intervals (`attach`: at `level`, 90 % by default, and at the stricter `anomaly_level`, 99 %) and
stores them with the predictions; nothing is given until the run has enough scores for the level.

As a stage of the loop (`update(window)`), once a window's labels arrive it
- records the window's coverage (labeled flows whose measured delay lies inside their interval)
  and mean relative width in traffic.db's `interval_windows`,
- records an anomaly in `anomalies` for every flow whose measured delay lies outside its
  anomaly-level interval (by more than `ANOMALY_TOLERANCE` of its nearer end): the flow, its
  path, measured and predicted delay, the interval and the size of the miss (how far outside, in
  ms and as a ratio to the nearer end), and
- adds the window's scores to the calibration.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from traffic.store import Stores
from traffic.window import Window
from vtwin.intervals import ANOMALY_LEVEL, DEFAULT_LEVEL, Calibration, IntervalError, check_level, needed

#: Pending windows older than this (in windows) are dropped: their labels are not coming.
PENDING_WINDOWS = 60
#: A measured delay counts as an anomaly only when it misses its anomaly interval by more than this
#: share of the interval's nearer end. The calibration holds the last windows' own scores, so after a
#: fault the interval's edge can sit exactly at what the faulted flows measure: a test run on the
#: diamond recorded "anomalies" missing a 72.595 ms edge by 0.000-0.4 ms.
ANOMALY_TOLERANCE = 0.01


@dataclass
class _Pending:
    rows: dict[str, dict[str, Any]]  # flow key -> its prediction row (with intervals)
    paths: dict[str, list[str]]
    scored: set[str] = field(default_factory=set)


class IntervalStore:
    """Coverage per window and anomaly events, in traffic.db."""

    def __init__(self, stores: Stores) -> None:
        self.db = stores.traffic
        stores.create_once("sync.intervals", self._create)

    def _create(self) -> None:
        self.db.execute("""CREATE TABLE IF NOT EXISTS interval_windows (
            run_id TEXT, window INTEGER, level REAL, calibration INTEGER, predicted INTEGER, labeled INTEGER,
            covered INTEGER, coverage REAL, mean_width_rel REAL, anomalies INTEGER, evaluated_at REAL,
            PRIMARY KEY (run_id, window))""")
        self.db.execute("""CREATE TABLE IF NOT EXISTS anomalies (
            run_id TEXT, window INTEGER, flow_key TEXT, path TEXT, measured_ms REAL, predicted_ms REAL,
            low_ms REAL, high_ms REAL, level REAL, miss_ms REAL, miss_ratio REAL, version TEXT, detected_at REAL,
            PRIMARY KEY (run_id, window, flow_key))""")

    def write(self, window_row: dict[str, Any], anomalies: list[dict[str, Any]]) -> None:
        with self.db.conn:
            self.db["interval_windows"].insert(window_row, replace=True)
            if anomalies:
                self.db["anomalies"].insert_all(anomalies, ignore=True)

    def windows(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM interval_windows WHERE run_id = ? ORDER BY window", [run_id]))

    def anomalies(self, run_id: str, newest: int | None = None) -> list[dict[str, Any]]:
        q = "SELECT * FROM anomalies WHERE run_id = ? ORDER BY window DESC, miss_ratio DESC"
        args: list[Any] = [run_id]
        if newest is not None:
            q, args = q + " LIMIT ?", [*args, newest]
        return list(self.db.query(q, args))

    def summary(self, run_id: str) -> dict[str, Any]:
        """Coverage over the run's labeled windows (pooled over flows), mean relative width, anomaly count."""
        rows = [r for r in self.windows(run_id) if r["labeled"]]
        labeled = sum(r["labeled"] for r in rows)
        covered = sum(r["covered"] for r in rows)
        widths = [r["mean_width_rel"] for r in rows if r["mean_width_rel"] is not None]
        n = self.db.execute("SELECT count(*) FROM anomalies WHERE run_id = ?", [run_id]).fetchone()[0]
        first = self.db.execute("SELECT min(detected_at) FROM anomalies WHERE run_id = ?", [run_id]).fetchone()[0]
        return {"level": rows[-1]["level"] if rows else None, "windows": len(rows), "labeled": labeled,
                "coverage": round(covered / labeled, 4) if labeled else None,
                "mean_width_rel": round(float(np.mean(widths)), 4) if widths else None,
                "anomalies": n, "first_anomaly_at": first}


class IntervalMonitor:
    """Intervals for the loop's predictions and, as labels arrive, coverage and anomalies."""

    def __init__(self, stores: Stores, run_id: str, level: float = DEFAULT_LEVEL,
                 anomaly_level: float = ANOMALY_LEVEL, keep_windows: int = 30) -> None:
        self.stores, self.run_id = stores, run_id
        self.level, self.anomaly_level = check_level(level), check_level(anomaly_level)
        if self.anomaly_level < self.level:
            raise IntervalError(f"the anomaly level ({self.anomaly_level:g}) must be at least the interval "
                                f"level ({self.level:g})")
        self.store = IntervalStore(stores)
        # per labeled window: predicted and measured delay, predicted and measured jitter, categories
        self.scores: deque[tuple[np.ndarray, ...]] = deque(maxlen=keep_windows)
        self.calibration: Calibration | None = None
        self.pending: dict[int, _Pending] = {}
        self.label_counts: dict[int, int] = {}
        self.anomaly_count = 0

    # -- intervals for new predictions ------------------------------------------------------------
    def attach(self, window: Window, rows: list[dict[str, Any]], cats: dict[str, int]) -> None:
        """Put the intervals (delay_lo/hi, jitter_lo/hi, anomaly_lo/hi, level) into a window's
        prediction rows, in place (None while the calibration is too small), and keep the window
        until its labels arrive."""
        c = self.calibration
        for r in rows:
            r["category"] = cats.get(r["flow_key"])
        if rows and c is not None and c.size() >= needed(self.anomaly_level):
            cat = np.array([r["category"] or 0 for r in rows])
            for kpi in ("delay", "jitter"):
                lo, hi = c.interval(np.array([r[f"{kpi}_ms"] for r in rows]), cat, self.level, kpi)
                for r, a, b in zip(rows, lo, hi, strict=True):
                    r[f"{kpi}_lo"], r[f"{kpi}_hi"] = float(a), float(b)
            lo, hi = c.interval(np.array([r["delay_ms"] for r in rows]), cat, self.anomaly_level, "delay")
            for r, a, b in zip(rows, lo, hi, strict=True):
                r["anomaly_lo"], r["anomaly_hi"], r["level"] = float(a), float(b), self.level
        paths = {f.flow_key: list(f.links) for f in window.run_flows}
        self.pending[window.window] = _Pending({r["flow_key"]: r for r in rows}, paths)
        for w in [w for w in self.pending if w < window.window - PENDING_WINDOWS]:
            del self.pending[w]

    # -- the stage --------------------------------------------------------------------------------
    def update(self, window: Window) -> None:
        """Score the pending windows whose labels arrived since."""
        self.finish()

    def finish(self) -> None:
        if not self.pending:
            return
        counts = self.stores.label_counts(self.run_id, min(self.pending))  # not the whole run's
        changed = [w for w in sorted(self.pending) if counts.get(w, 0) != self.label_counts.get(w, 0)]
        if not changed:
            return
        labels = self.stores.labels_of(self.run_id, changed[0])
        for w in changed:
            self.label_counts[w] = counts.get(w, 0)
            self._score(w, {k: lab for (lw, k), lab in labels.items() if lw == w})

    def _score(self, window: int, labels: dict[str, Any]) -> None:
        p = self.pending[window]
        new = [k for k, lab in labels.items() if k in p.rows and k not in p.scored and not lab.lost
               and lab.delay_ms is not None]
        if new:
            rows = [p.rows[k] for k in new]
            self.scores.append(tuple(np.array(x, dtype=float) for x in (
                [r["delay_ms"] for r in rows], [labels[k].delay_ms for k in new],
                [r["jitter_ms"] for r in rows], [_nan(labels[k].jitter_ms) for k in new],
                [r["category"] or 0 for r in rows])))
            p.scored.update(new)
        inside = [(k, labels[k].delay_ms) for k in p.scored if p.rows[k].get("delay_lo") is not None]
        now = time.time()
        anomalies = []
        for k, m in inside:
            r = p.rows[k]
            if not r["anomaly_lo"] * (1 - ANOMALY_TOLERANCE) <= m <= r["anomaly_hi"] * (1 + ANOMALY_TOLERANCE):
                edge = r["anomaly_hi"] if m > r["anomaly_hi"] else r["anomaly_lo"]
                anomalies.append({"run_id": self.run_id, "window": window, "flow_key": k,
                                  "path": ",".join(p.paths.get(k, [])), "measured_ms": round(m, 3),
                                  "predicted_ms": round(r["delay_ms"], 3), "low_ms": round(r["anomaly_lo"], 3),
                                  "high_ms": round(r["anomaly_hi"], 3), "level": self.anomaly_level,
                                  "miss_ms": round(m - edge, 3), "miss_ratio": round(m / max(edge, 1e-9), 3),
                                  "version": r.get("version"), "detected_at": now})
        covered = sum(p.rows[k]["delay_lo"] <= m <= p.rows[k]["delay_hi"] for k, m in inside)
        widths = [(p.rows[k]["delay_hi"] - p.rows[k]["delay_lo"]) / max(p.rows[k]["delay_ms"], 1e-9)
                  for k, _ in inside]
        self.store.write({"run_id": self.run_id, "window": window, "level": self.level,
                          "calibration": self.calibration.size() if self.calibration else 0,
                          "predicted": len(p.rows), "labeled": len(inside), "covered": int(covered),
                          "coverage": round(covered / len(inside), 4) if inside else None,
                          "mean_width_rel": round(float(np.mean(widths)), 4) if widths else None,
                          "anomalies": len(anomalies)}, anomalies)
        self.anomaly_count += len(anomalies)
        self._refit()

    def _refit(self) -> None:
        if not self.scores:
            return
        pd, md, pj, mj, c = (np.concatenate(x) for x in zip(*self.scores, strict=True))
        self.calibration = Calibration.fit({"delay": pd, "jitter": pj}, {"delay": md, "jitter": mj}, c,
                                           f"the run's last {len(self.scores)} labeled windows")


def _nan(x: float | None) -> float:
    return float("nan") if x is None else float(x)
