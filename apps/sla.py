"""SLA monitoring: per-flow packet delay budgets from policy, predicted violations every window,
and, once the window's labels arrive, the confusion matrix against the measured delay.

A flow's budget comes from the policy, never from the labels: the first matching per-flow rule
(a host pair "h1>h4" or a glob on the flow key), else its protocol class, else the default, the
path's propagation delay plus `margin_ms` (5 ms: on the emulated lab a flow's delay beyond
propagation is 0.5-1.5 ms at load 0.3 and 3-6 ms at load 0.5, so 5 ms separates light from
loaded paths). A flow violates when its delay exceeds the budget; a flow that lost every
packet of a window violates too.

Per window, stored in traffic.db's `sla_windows`: flows predicted, predicted violations, and for
the flows with labels the confusion matrix (a violation is the positive class) with precision,
recall, F1 and accuracy, beside the accuracy of always answering "compliant" and the confusion
matrix of the loop's frozen shadow (`shadow_tp`...: what the same monitor would have said
without synchronization).
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from traffic.store import Stores

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
                "measured_violation": self.measured_violation}


class SlaMonitor:
    """Evaluates a run's windows against the policy; `update()` evaluates the windows whose
    predictions or labels changed since the last call and stores them."""

    def __init__(self, stores: Stores, run_id: str, policy: SlaPolicy | None = None) -> None:
        self.stores = stores
        self.run_id = run_id
        self.policy = policy or SlaPolicy()
        run = stores.run(run_id)
        topo = json.loads(run["topology_json"])
        self.link_delay = {lk["id"]: float(lk["delay_ms"]) for lk in topo["links"]}
        self.seen: dict[int, tuple[int, int]] = {}

    def flows(self, window: int) -> list[FlowState]:
        """Every run flow of the window with its budget, prediction and measurement."""
        t, lab = self.stores.traffic, self.stores.labels
        pred = {r["flow_key"]: (r["delay_ms"], r["shadow_delay_ms"]) for r in t.query(
            "SELECT flow_key, delay_ms, shadow_delay_ms FROM predictions WHERE run_id = ? AND window = ?",
            [self.run_id, window])}
        meas = {r["flow_key"]: r for r in lab.query(
            "SELECT flow_key, delay_ms, sent, received FROM labels WHERE run_id = ? AND window = ?",
            [self.run_id, window])}
        out = []
        for f in t.query("SELECT f.flow_key, f.src, f.dst, f.proto, f.links FROM snapshot_flows f JOIN snapshots s "
                         "ON s.id = f.snapshot_id WHERE s.run_id = ? AND s.window = ? AND f.flow_no IS NOT NULL",
                         [self.run_id, window]):
            links = json.loads(f["links"] or "[]")
            if not links:
                continue
            prop = sum(self.link_delay.get(lk, 0.0) for lk in links)
            budget, source = self.policy.budget(f["flow_key"], f["proto"], f["src"], f["dst"], prop)
            m = meas.get(f["flow_key"])
            serving, shadow = pred.get(f["flow_key"], (None, None))
            out.append(FlowState(f["flow_key"], f["src"], f["dst"], f["proto"] or "", len(links), round(budget, 3),
                                 source, serving, None if m is None else m["delay_ms"],
                                 bool(m and m["sent"] and not m["received"]), shadow))
        return out

    def evaluate(self, window: int) -> dict[str, Any]:
        flows = [f for f in self.flows(window) if f.predicted_ms is not None]
        labeled = [(bool(f.predicted_violation), bool(f.measured_violation)) for f in flows
                   if f.measured_violation is not None]
        row: dict[str, Any] = {"run_id": self.run_id, "window": window, "flows": len(flows),
                               "predicted_violations": sum(bool(f.predicted_violation) for f in flows),
                               "labeled": len(labeled), "evaluated_at": time.time()}
        if labeled:
            c = confusion(labeled)
            row.update({"measured_violations": c["tp"] + c["fn"], **c})
            shadow = [(bool(f.shadow_violation), bool(f.measured_violation)) for f in flows
                      if f.measured_violation is not None and f.shadow_ms is not None]
            if shadow:
                row.update({f"shadow_{k}": v for k, v in confusion(shadow).items() if k in ("tp", "fp", "fn", "tn")})
        return row

    def _counts(self) -> dict[int, tuple[int, int]]:
        counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for w, n in self.stores.traffic.execute(
                "SELECT window, count(*) FROM predictions WHERE run_id = ? GROUP BY window", [self.run_id]):
            counts[w][0] = n
        for w, n in self.stores.labels.execute(
                "SELECT window, count(*) FROM labels WHERE run_id = ? GROUP BY window", [self.run_id]):
            if w in counts:
                counts[w][1] = n
        return {w: (a, b) for w, (a, b) in counts.items()}

    def update(self) -> int:
        """Evaluate and store the windows that changed; returns how many were (re)evaluated."""
        counts = self._counts()
        changed = [w for w, c in sorted(counts.items()) if self.seen.get(w) != c]
        rows = [self.evaluate(w) for w in changed]
        if rows:
            with self.stores.traffic.conn:
                self.stores.traffic["sla_windows"].insert_all(rows, replace=True)
        self.seen.update({w: counts[w] for w in changed})
        return len(rows)


def summary(stores: Stores, run_id: str) -> dict[str, Any]:
    """The run's SLA results so far: totals over the evaluated windows and the latest ones."""
    rows = list(stores.traffic.query("SELECT * FROM sla_windows WHERE run_id = ? ORDER BY window", [run_id]))
    return {"run": run_id, "windows": len(rows), "labeled_windows": sum(1 for r in rows if r["labeled"]),
            **totals(rows), "latest": rows[-1] if rows else None}


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Confusion counts and scores summed over `sla_windows` rows, with the frozen shadow's scores
    (the same policy without synchronization) under `without_sync`."""
    tot = {k: sum(r[k] or 0 for r in rows) for k in ("tp", "fp", "fn", "tn", "predicted_violations",
                                                    "measured_violations", "flows", "labeled")}
    shadow = {k: sum(r.get(f"shadow_{k}") or 0 for r in rows) for k in ("tp", "fp", "fn", "tn")}
    return {**tot, **scores(tot["tp"], tot["fp"], tot["fn"], tot["tn"]),
            "without_sync": {**shadow, **scores(shadow["tp"], shadow["fp"], shadow["fn"], shadow["tn"])}}
