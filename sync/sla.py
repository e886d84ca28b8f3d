"""SLA monitoring: per-flow packet delay budgets from policy, predicted violations every window,
and, once the window's labels arrive, the confusion matrix against the measured delay.

A flow's budget comes from the policy, never from the labels: the first matching per-flow rule
(a host pair "h1>h4" or a glob on the flow key), else its protocol class, else the default, the
path's propagation delay plus `margin_ms` (5 ms: on the emulated lab a flow's delay beyond
propagation is 0.5-1.5 ms at load 0.3 and 3-6 ms at load 0.5, so 5 ms separates light from
loaded paths). A flow violates when its delay exceeds the budget; a flow that lost every
packet of a window violates too. A flow is at risk when its prediction's interval (`sync.intervals`,
once the run is calibrated) crosses its budget: the twin cannot tell on which side it is.

The monitor is a stage of the closed loop (`sync.loop`): it sees each window with its predictions
as the loop makes them. Per window, stored in traffic.db's `sla_windows` (`SlaStore`): flows
predicted, predicted violations, flows at risk, and for the flows with labels the confusion matrix (a violation
is the positive class) with precision, recall, F1 and accuracy, beside the accuracy of always
answering "compliant" and the confusion matrix of the loop's frozen shadow (`shadow_tp`...:
what the same monitor would have said without synchronization).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from topologies import Topology
from traffic.store import Stores
from traffic.window import Label, Window

from .intervals import PENDING_WINDOWS
from .store import LoopStore

DEFAULT_MARGIN_MS = 5.0


class SlaPolicyError(ValueError):
    pass


def _ms(value: Any, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SlaPolicyError(f"{what} must be a number of milliseconds, got {value!r}") from None
    if not v > 0:
        raise SlaPolicyError(f"{what} must be positive, got {v}")
    return v


@dataclass(frozen=True)
class SlaPolicy:
    margin_ms: float = DEFAULT_MARGIN_MS
    classes: dict[str, float] = field(default_factory=dict)  # protocol -> budget (ms)
    flows: tuple[tuple[str, float], ...] = ()  # (host pair or flow-key glob, budget ms), first match wins

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SlaPolicy:
        if not isinstance(d, dict):
            raise SlaPolicyError("the policy must be a mapping")
        unknown = set(d) - {"margin_ms", "classes", "flows"}
        if unknown:
            raise SlaPolicyError(f"unknown key(s) {', '.join(sorted(unknown))}; use margin_ms, classes, flows")
        try:
            margin = float(d.get("margin_ms", DEFAULT_MARGIN_MS))
        except (TypeError, ValueError):
            raise SlaPolicyError(f"margin_ms must be a number of milliseconds, got {d['margin_ms']!r}") from None
        if not margin >= 0:
            raise SlaPolicyError(f"margin_ms must not be negative, got {margin}")
        classes = d.get("classes") or {}
        if not isinstance(classes, dict):
            raise SlaPolicyError("classes must map a protocol (udp, tcp) to a budget in ms")
        rules = d.get("flows") or []
        if not isinstance(rules, list) or not all(isinstance(r, dict) and "match" in r for r in rules):
            raise SlaPolicyError("flows must be a list of {match, latency_ms}")
        return cls(margin, {str(k).lower(): _ms(v, f"class {k}") for k, v in classes.items()},
                   tuple((str(r["match"]), _ms(r.get("latency_ms"), f"flow rule {r['match']}")) for r in rules))

    def to_dict(self) -> dict[str, Any]:
        return {"margin_ms": self.margin_ms, "classes": dict(self.classes),
                "flows": [{"match": m, "latency_ms": b} for m, b in self.flows]}

    def budget(self, flow_key: str, proto: str | None, src: str | None, dst: str | None,
               propagation_ms: float) -> tuple[float, str]:
        """(budget in ms, where it came from: flow, class or default)."""
        pair = f"{src}>{dst}"
        for match, ms in self.flows:
            if match == pair or fnmatch.fnmatchcase(flow_key, match):
                return ms, "flow"
        if proto and proto.lower() in self.classes:
            return self.classes[proto.lower()], "class"
        return propagation_ms + self.margin_ms, "default"


def confusion(rows: list[tuple[bool, bool]]) -> dict[str, Any]:
    """Scores of (predicted violation, measured violation) pairs; a violation is the positive class."""
    tp = sum(p and m for p, m in rows)
    fp = sum(p and not m for p, m in rows)
    fn = sum(m and not p for p, m in rows)
    tn = len(rows) - tp - fp - fn
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, **scores(tp, fp, fn, tn)}


def scores(tp: int, fp: int, fn: int, tn: int) -> dict[str, float | None]:
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else (
        0.0 if precision is not None and recall is not None else None)
    return {"precision": _r(precision), "recall": _r(recall), "f1": _r(f1),
            "accuracy": _r((tp + tn) / n if n else None),
            "always_compliant_accuracy": _r((tn + fp) / n if n else None)}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


@dataclass
class FlowState:
    flow_key: str
    src: str
    dst: str
    proto: str
    hops: int
    budget_ms: float
    budget_from: str
    predicted_ms: float | None
    measured_ms: float | None
    lost: bool
    shadow_ms: float | None = None
    low_ms: float | None = None  # the serving prediction's interval, when the run is calibrated
    high_ms: float | None = None

    @property
    def at_risk(self) -> bool | None:
        """The interval crosses the budget: the twin cannot tell on which side the flow is."""
        if self.low_ms is None or self.high_ms is None:
            return None
        return self.low_ms <= self.budget_ms <= self.high_ms

    @property
    def shadow_violation(self) -> bool | None:
        return None if self.shadow_ms is None else self.shadow_ms > self.budget_ms

    @property
    def predicted_violation(self) -> bool | None:
        return None if self.predicted_ms is None else self.predicted_ms > self.budget_ms

    @property
    def measured_violation(self) -> bool | None:
        if self.lost:
            return True
        return None if self.measured_ms is None else self.measured_ms > self.budget_ms

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "predicted_violation": self.predicted_violation,
                "measured_violation": self.measured_violation, "at_risk": self.at_risk}


class SlaStore:
    """The monitor's results in traffic.db's `sla_windows`, per run and window."""

    def __init__(self, stores: Stores) -> None:
        self.db = stores.traffic
        stores.create_once("sync.sla", self._create)

    def _create(self) -> None:
        self.db.execute("""CREATE TABLE IF NOT EXISTS sla_windows (
            run_id TEXT, window INTEGER, flows INTEGER, predicted_violations INTEGER, labeled INTEGER,
            measured_violations INTEGER, tp INTEGER, fp INTEGER, fn INTEGER, tn INTEGER, precision REAL,
            recall REAL, f1 REAL, accuracy REAL, always_compliant_accuracy REAL, evaluated_at REAL,
            shadow_tp INTEGER, shadow_fp INTEGER, shadow_fn INTEGER, shadow_tn INTEGER, at_risk INTEGER,
            PRIMARY KEY (run_id, window))""")
        cols = self.db["sla_windows"].columns_dict
        for col in ("shadow_tp", "shadow_fp", "shadow_fn", "shadow_tn", "at_risk"):  # older tables
            if col not in cols:
                self.db["sla_windows"].add_column(col, int)

    def write(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self.db.conn:
                self.db["sla_windows"].insert_all(rows, replace=True)

    def windows(self, run_id: str, from_window: int = 0) -> list[dict[str, Any]]:
        """The run's evaluated windows from `from_window` on, oldest first."""
        return list(self.db.query("SELECT * FROM sla_windows WHERE run_id = ? AND window >= ? ORDER BY window",
                                  [run_id, from_window]))

    def latest(self, run_id: str, labeled: bool = False) -> dict[str, Any] | None:
        """The newest evaluated window (with labels)."""
        rows = list(self.db.query("SELECT * FROM sla_windows WHERE run_id = ?" + (" AND labeled > 0" if labeled else "")
                                  + " ORDER BY window DESC LIMIT 1", [run_id]))
        return rows[0] if rows else None


#: Predictions of one window: flow key -> (serving model's delay, frozen shadow's delay, the serving
#: prediction's interval low and high or None), ms.
Predicted = dict[str, tuple[float | None, float | None, float | None, float | None]]


class SlaMonitor:
    """Evaluates a run's windows against the policy, as a stage of the loop: `update(window)`
    takes each new window with its predictions, in memory, and evaluates it, then
    evaluates again every window whose labels arrived since (labels come seconds after their
    window); `finish()` takes the labels written last. `replay()` evaluates a stored run."""

    def __init__(self, stores: Stores, run_id: str, policy: SlaPolicy | None = None, *, topo: Topology | None = None,
                 predicted: Callable[[int], Predicted] | None = None) -> None:
        """`topo`: the run's topology (else read from its run); `predicted`: a window's predictions
        (else read from the loop's stored predictions)."""
        self.stores = stores
        self.store = SlaStore(stores)
        self.run_id = run_id
        self.policy = policy or SlaPolicy()
        topo = topo or stores.topology(run_id)
        self.link_delay = {lk.id: float(lk.delay_ms) for lk in topo.links}
        self.predicted = predicted or (lambda window: predicted_of(stores, run_id, window))
        self.pending: dict[int, list[FlowState]] = {}  # windows whose labels may still come
        self.label_counts: dict[int, int] = {}

    def flows(self, window: Window, predicted: Predicted) -> list[FlowState]:
        """Every run flow of the window with its budget, prediction and measurement."""
        out = []
        for f in window.run_flows:
            if not f.links:
                continue
            prop = sum(self.link_delay.get(lk, 0.0) for lk in f.links)
            budget, source = self.policy.budget(f.flow_key, f.proto, f.src, f.dst, prop)
            m = window.labels.get(f.flow_key)
            serving, shadow, low, high = predicted.get(f.flow_key, (None, None, None, None))
            out.append(FlowState(f.flow_key, f.src, f.dst, f.proto or "", len(f.links), round(budget, 3), source,
                                 serving, None if m is None else m.delay_ms, bool(m and m.lost), shadow, low, high))
        return out

    def stored_flows(self, window: int) -> list[FlowState]:
        """A stored window's flows, with the loop's stored predictions."""
        w = self.stores.window(self.run_id, window)
        return [] if w is None else self.flows(w, predicted_of(self.stores, self.run_id, window))

    def evaluate(self, window: int, flows: list[FlowState]) -> dict[str, Any]:
        flows = [f for f in flows if f.predicted_ms is not None]
        labeled = [(bool(f.predicted_violation), bool(f.measured_violation)) for f in flows
                   if f.measured_violation is not None]
        row: dict[str, Any] = {"run_id": self.run_id, "window": window, "flows": len(flows),
                               "predicted_violations": sum(bool(f.predicted_violation) for f in flows),
                               "at_risk": sum(bool(f.at_risk) for f in flows),
                               "labeled": len(labeled), "evaluated_at": time.time()}
        if labeled:
            c = confusion(labeled)
            row.update({"measured_violations": c["tp"] + c["fn"], **c})
            shadow = [(bool(f.shadow_violation), bool(f.measured_violation)) for f in flows
                      if f.measured_violation is not None and f.shadow_ms is not None]
            if shadow:
                row.update({f"shadow_{k}": v for k, v in confusion(shadow).items() if k in ("tp", "fp", "fn", "tn")})
        return row

    def update(self, window: Window) -> None:
        """A new window with its predictions; then the windows whose labels arrived."""
        predicted = self.predicted(window.window)
        flows = self.flows(window, predicted)
        rows = [self.evaluate(window.window, flows)] if predicted else []
        if predicted:
            self.pending[window.window] = flows
            self.label_counts[window.window] = len(window.labels)  # evaluated with these
        self.store.write(rows + self._labeled())

    def finish(self) -> None:
        """The labels written since the last window (the run's last labels come after it), in
        any window of the run."""
        self.store.write(self._labeled(every=True))

    def _labeled(self, every: bool = False) -> list[dict[str, Any]]:
        """Rows for the pending windows whose label count changed, with their labels filled in:
        among the last PENDING_WINDOWS windows (each window's work stays the same over a long
        run), or `every` pending window."""
        if not self.pending:
            return []
        first = min(self.pending) if every else max(min(self.pending), max(self.pending) - PENDING_WINDOWS)
        counts = self.stores.label_counts(self.run_id, first)
        changed = [w for w in sorted(self.pending) if w >= first and counts.get(w, 0) != self.label_counts.get(w, 0)]
        if not changed:
            return []
        labels = self.stores.labels_of(self.run_id, changed[0])
        rows = []
        for w in changed:
            flows = [_measured(f, labels.get((w, f.flow_key))) for f in self.pending[w]]
            self.pending[w] = flows
            self.label_counts[w] = counts[w]
            rows.append(self.evaluate(w, flows))
        return rows

    def replay(self) -> int:
        """Evaluate every stored window of the run with the loop's stored predictions; returns
        how many windows were evaluated."""
        preds: dict[int, Predicted] = {}
        for p in LoopStore(self.stores).predictions(self.run_id):
            preds.setdefault(p["window"], {})[p["flow_key"]] = _predicted(p)
        rows = [self.evaluate(w.window, self.flows(w, preds[w.window]))
                for w in self.stores.windows(self.run_id, labels=True, run_flows_only=True) if w.window in preds]
        self.store.write(rows)
        return len(rows)


def _measured(f: FlowState, label: Label | None) -> FlowState:
    if label is None:
        return f
    return replace(f, measured_ms=label.delay_ms, lost=label.lost)


def predicted_of(stores: Stores, run_id: str, window: int) -> Predicted:
    return {p["flow_key"]: _predicted(p) for p in LoopStore(stores).predictions(run_id, window)}


def _predicted(row: dict[str, Any]) -> tuple[float | None, float | None, float | None, float | None]:
    return row["delay_ms"], row["shadow_delay_ms"], row.get("delay_lo"), row.get("delay_hi")


def summary(stores: Stores, run_id: str) -> dict[str, Any]:
    """The run's SLA results so far: totals over the evaluated windows and the latest ones."""
    rows = SlaStore(stores).windows(run_id)
    return {"run": run_id, "windows": len(rows), "labeled_windows": sum(1 for r in rows if r["labeled"]),
            **totals(rows), "latest": rows[-1] if rows else None}


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Confusion counts and scores summed over `sla_windows` rows, with the frozen shadow's scores
    (the same policy without synchronization) under `without_sync`."""
    tot = {k: sum(r.get(k) or 0 for r in rows) for k in ("tp", "fp", "fn", "tn", "predicted_violations",
                                                        "measured_violations", "flows", "labeled", "at_risk")}
    shadow = {k: sum(r.get(f"shadow_{k}") or 0 for r in rows) for k in ("tp", "fp", "fn", "tn")}
    return {**tot, **scores(tot["tp"], tot["fp"], tot["fn"], tot["tn"]),
            "without_sync": {**shadow, **scores(shadow["tp"], shadow["fp"], shadow["fn"], shadow["tn"])}}
