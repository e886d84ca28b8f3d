"""What the lab measured around a change: SLO violations (the SLA monitor's, per-flow budgets,
lost flows counted) and delays of the labeled windows before a plan's snapshot and after it was
applied, and the verdict of its test matrix: keep or roll back, and why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sync.sla import SlaStore
from traffic.store import Stores

from .propose import Gate


def labeled_windows(stores: Stores, run_id: str) -> list[dict[str, Any]]:
    """The run's SLA rows with measurements, by window."""
    return [r for r in SlaStore(stores).windows(run_id) if (r.get("labeled") or 0) > 0]


def measured(stores: Stores, run_id: str, windows: list[int]) -> dict[str, Any] | None:
    """Violation rate and delays over the windows' labeled flows (None without any)."""
    if not windows:
        return None
    rows = {r["window"]: r for r in labeled_windows(stores, run_id)}
    labeled = sum(rows[w]["labeled"] for w in windows if w in rows)
    if not labeled:
        return None
    violations = sum(rows[w].get("measured_violations") or 0 for w in windows if w in rows)
    labels = stores.labels_of(run_id, min(windows))
    keep = set(windows)
    delays = [lab.delay_ms for (w, _), lab in labels.items() if w in keep and lab.delay_ms is not None]
    return {"windows": sorted(windows), "labeled": labeled, "violations": int(violations),
            "violation_rate": round(violations / labeled, 4),
            "p95_delay_ms": round(float(np.percentile(delays, 95)), 3) if delays else None,
            "mean_delay_ms": round(float(np.mean(delays)), 3) if delays else None}


def windows_before(stores: Stores, run_id: str, upto: int, n: int) -> list[int]:
    """The n newest labeled windows up to `upto` (the plan's snapshot window)."""
    return [r["window"] for r in labeled_windows(stores, run_id) if r["window"] <= upto][-n:]


def windows_after(stores: Stores, run_id: str, applied_window: int, gate: Gate, complete_upto: int) -> list[int]:
    """The first `gate.windows` labeled windows after the change has settled, among those whose
    labels are complete (up to `complete_upto`)."""
    start = applied_window + gate.settle_windows
    return [r["window"] for r in labeled_windows(stores, run_id)
            if start < r["window"] <= complete_upto][:gate.windows]


def verdict(before: dict[str, Any] | None, after: dict[str, Any], predicted_after: dict[str, Any],
            gate: Gate) -> tuple[bool, list[str]]:
    """(keep the change?, the reasons): rolled back when the measured violation rate or p95 delay
    is worse than before by more than the gate's margin, or the p95 delay is worse than the
    twin predicted by more than `predicted_margin`."""
    bad, good = [], []
    if before is not None:
        limit = before["violation_rate"] * (1 + gate.margin) + gate.violation_slack
        line = (f"measured SLO violation rate {after['violation_rate']:.3f} against {before['violation_rate']:.3f} "
                f"before (limit {limit:.3f})")
        (bad if after["violation_rate"] > limit else good).append(line)
        if after["p95_delay_ms"] is not None and before["p95_delay_ms"] is not None:
            limit = before["p95_delay_ms"] * (1 + gate.margin)
            line = (f"measured p95 delay {after['p95_delay_ms']:.1f} ms against {before['p95_delay_ms']:.1f} ms "
                    f"before (limit {limit:.1f})")
            (bad if after["p95_delay_ms"] > limit else good).append(line)
    else:
        good.append("nothing measured before the change to compare with")
    p = predicted_after.get("p95_delay_ms")
    if p is not None and after["p95_delay_ms"] is not None:
        limit = p * (1 + gate.predicted_margin)
        line = f"measured p95 delay {after['p95_delay_ms']:.1f} ms against {p:.1f} ms predicted (limit {limit:.1f})"
        (bad if after["p95_delay_ms"] > limit else good).append(line)
    return (not bad), (bad or good)


def improvement(before: dict[str, Any] | None, after: dict[str, Any], predicted: dict[str, Any]) -> dict[str, Any]:
    """Measured against predicted improvement of the p95 delay and the violations (per window)."""
    out: dict[str, Any] = {}
    if before is None:
        return out
    pb, pa = predicted["before"], predicted["after"]
    if None not in (before["p95_delay_ms"], after["p95_delay_ms"], pb["p95_delay_ms"], pa["p95_delay_ms"]):
        m = before["p95_delay_ms"] - after["p95_delay_ms"]
        p = pb["p95_delay_ms"] - pa["p95_delay_ms"]
        out["p95_delay_ms"] = {"measured": round(m, 3), "predicted": round(p, 3),
                               "error": None if abs(p) < 1e-9 else round(abs(m - p) / abs(p), 3)}
    out["violation_rate"] = {"measured": round(before["violation_rate"] - after["violation_rate"], 4)}
    return out
