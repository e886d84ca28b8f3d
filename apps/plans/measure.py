"""What the lab measured around a change: SLO violations (the SLA monitor's, per-flow budgets,
lost flows counted) and delays of the labeled windows before a plan's snapshot and after it was
applied, and the verdict of its test matrix: keep or roll back, and why.

After a change the lab is not at once what it will be: a full drop-tail buffer on a link the change
relieves drains at the link's spare capacity, seconds at the corpus's rates (measured on germany_50:
the mean delay fell from 372 to 28 ms over 12 one-second windows after a plan moved flows off its
full links). Measured then, a good plan looks bad. So the windows measured after a change start once
the lab has settled (`settled_after`): the mean delay of the last `STEADY_SPAN` labeled windows
moves less than the gate's `steady_share` from the span before.

A steady lab still has stalls of its machine, not of the network it emulates: windows in which
most flows, wherever their paths run, measure far above their own typical delay at once (the
emulator falling behind on two busy cores; a per-process CPU sample every 0.1 s showed no process
standing out in them; on germany_50 with 40 flows and no change made, 6 of 192 and 13
of 183 windows in two `ndt run`s, each lifting every flow by 10-35 ms; the change gate had
counted such windows as changes that broke the SLO). Among steady windows (before a change, or
after it settled) those are skipped (`stalled_windows`) and the next ones measured instead; a
change that makes the network worse for good moves the flows' own typical delays with it, so it
is never skipped. `measured` names the windows skipped.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

import numpy as np

from sync.sla import SlaStore
from traffic.store import Stores

from .propose import Gate


def labeled_windows(stores: Stores, run_id: str, from_window: int = 0) -> list[dict[str, Any]]:
    """The run's SLA rows with measurements, by window, from `from_window` on."""
    return [r for r in SlaStore(stores).windows(run_id, from_window) if (r.get("labeled") or 0) > 0]


def delays_by_window(stores: Stores, run_id: str, windows: list[int]) -> dict[int, dict[str, float]]:
    """The measured delays (ms) of these windows' labeled flows: window -> flow key -> delay."""
    by: dict[int, dict[str, float]] = defaultdict(dict)
    if not windows:
        return by
    keep = set(windows)
    for (w, key), lab in stores.labels_of(run_id, min(windows)).items():
        if w in keep and lab.delay_ms is not None:
            by[w][key] = lab.delay_ms
    return by


#: A window is a stall of the machine when at least this share of its labeled flows (and at least
#: STALL_MIN_FLOWS of them) measure more than STALL_FACTOR times their own median delay over the
#: windows compared plus STALL_FLOOR_MS. On the two germany_50 runs above, stalled windows had
#: 50-100 % of their flows that high (most 80-100 %), the others at most a third.
STALL_SHARE = 0.5
STALL_FACTOR = 1.5
STALL_FLOOR_MS = 3.0
STALL_MIN_FLOWS = 4


def stalled_windows(stores: Stores, run_id: str, windows: list[int]) -> set[int]:
    """The windows among `windows` (steady ones, three or more) in which the machine stalled."""
    if len(windows) < 3:
        return set()
    by = delays_by_window(stores, run_id, windows)
    per_flow: dict[str, list[float]] = defaultdict(list)
    for delays in by.values():
        for key, d in delays.items():
            per_flow[key].append(d)
    typical = {key: statistics.median(ds) for key, ds in per_flow.items()}
    stalled = set()
    for w, delays in by.items():
        high = sum(d > STALL_FACTOR * typical[key] + STALL_FLOOR_MS for key, d in delays.items())
        if len(delays) >= STALL_MIN_FLOWS and high >= STALL_SHARE * len(delays):
            stalled.add(w)
    return stalled


def steady(stores: Stores, run_id: str, windows: list[int], n: int, newest: bool = False) -> list[int]:
    """The first (`newest`: the last) n of these steady windows, stalled ones skipped."""
    stalled = stalled_windows(stores, run_id, windows)
    kept = [w for w in windows if w not in stalled]
    return kept[-n:] if newest else kept[:n]


def measured(stores: Stores, run_id: str, windows: list[int]) -> dict[str, Any] | None:
    """Violation rate and delays over the windows' labeled flows (None without any), and the
    labeled windows among them that were skipped (`skipped_windows`: stalls of the machine)."""
    if not windows:
        return None
    rows = {r["window"]: r for r in labeled_windows(stores, run_id, min(windows))}
    labeled = sum(rows[w]["labeled"] for w in windows if w in rows)
    if not labeled:
        return None
    violations = sum(rows[w].get("measured_violations") or 0 for w in windows if w in rows)
    delays = [d for flows in delays_by_window(stores, run_id, windows).values() for d in flows.values()]
    keep = set(windows)
    skipped = sorted(w for w in rows if min(windows) < w < max(windows) and w not in keep)
    return {"windows": sorted(windows), "skipped_windows": skipped, "labeled": labeled, "violations": int(violations),
            "violation_rate": round(violations / labeled, 4),
            "p95_delay_ms": round(float(np.percentile(delays, 95)), 3) if delays else None,
            "mean_delay_ms": round(float(np.mean(delays)), 3) if delays else None}


def windows_before(stores: Stores, run_id: str, upto: int, n: int) -> list[int]:
    """The n newest labeled windows up to `upto` (the plan's snapshot window), stalls skipped
    (among the 3n newest)."""
    upto_now = [r["window"] for r in labeled_windows(stores, run_id) if r["window"] <= upto]
    return steady(stores, run_id, upto_now[-3 * n:], n, newest=True)


#: Labeled windows per span compared by the steadiness test.
STEADY_SPAN = 3
#: Mean delays closer than this (ms) count as steady whatever their share (light load, noise).
STEADY_FLOOR_MS = 1.0


def window_means(stores: Stores, run_id: str, windows: list[int]) -> list[float]:
    """Each window's mean measured delay over its labeled flows (NaN where none)."""
    by = delays_by_window(stores, run_id, windows)
    return [float(np.mean(list(by[w].values()))) if by.get(w) else float("nan") for w in windows]


def settled_after(stores: Stores, run_id: str, start: int, complete_upto: int, share: float,
                  max_windows: int) -> int | None:
    """The window after which the lab has settled since `start` (exclusive): the last window of the
    first span of `STEADY_SPAN` labeled windows whose mean delay is within `share` (or
    `STEADY_FLOOR_MS`) of the span before it; `start + max_windows` once that many windows are
    complete without it; None while still settling."""
    ws = [r["window"] for r in labeled_windows(stores, run_id, start + 1) if r["window"] <= complete_upto]
    means = window_means(stores, run_id, ws)
    for i in range(2 * STEADY_SPAN, len(ws) + 1):
        now = np.nanmean(means[i - STEADY_SPAN:i])
        prev = np.nanmean(means[i - 2 * STEADY_SPAN:i - STEADY_SPAN])
        if abs(now - prev) <= max(share * prev, STEADY_FLOOR_MS):
            return ws[i - 1]
    return start + max_windows if complete_upto >= start + max_windows else None


def windows_after(stores: Stores, run_id: str, applied_window: int, gate: Gate, complete_upto: int,
                  final: bool = False) -> list[int]:
    """The first `gate.windows` labeled windows after the change has settled (`settled_after`), among
    those whose labels are complete (up to `complete_upto`), stalls skipped; `final` (the run
    ends): if it has not settled, the windows after the skipped ones, what there is."""
    skipped = applied_window + gate.settle_windows
    start = settled_after(stores, run_id, skipped, complete_upto, gate.steady_share, gate.max_settle_windows)
    if start is None and not final:
        return []
    first = (start or skipped) + 1
    after = [r["window"] for r in labeled_windows(stores, run_id, first) if r["window"] <= complete_upto]
    if start is None:  # not settled: nothing is steady to tell a stall from
        return after[:gate.windows]
    return steady(stores, run_id, after, gate.windows)


def judged(stores: Stores, run_id: str, before: dict[str, Any] | None, after_w: list[int],
           predicted_after: dict[str, Any], gate: Gate, complete_upto: int,
           final: bool = False) -> tuple[bool, list[str], dict[str, Any] | None] | None:
    """The test matrix's verdict on the windows measured after the change, `after_w`: (keep?, the
    reasons, the second measurement or None). With `gate.confirm`, a worse verdict is measured again
    on the next `gate.windows` steady windows and the change rolled back only if those are worse
    too: a burst of a few windows does not last (the germany_50 change gate: of three changes one
    measurement found breaking, two measured as before on the next windows). None while the second
    measurement still waits for its windows (`final`: the run ends, what there is decides)."""
    after = measured(stores, run_id, after_w)
    keep, reasons = verdict(before, after, predicted_after, gate)
    if keep or not gate.confirm:
        return keep, reasons, None
    later = [r["window"] for r in labeled_windows(stores, run_id, max(after_w) + 1) if r["window"] <= complete_upto]
    again_w = steady(stores, run_id, later, gate.windows)
    if len(again_w) < gate.windows and not final:
        return None
    if not again_w:  # the run ended before the second measurement: the first decides
        return keep, reasons, None
    again = measured(stores, run_id, again_w)
    keep_again, reasons_again = verdict(before, again, predicted_after, gate)
    if keep_again:
        return True, [f"the first {len(after_w)} windows measured worse ({'; '.join(reasons)}), the next "
                      f"{len(again_w)} did not"] + reasons_again, again
    return False, reasons + [f"measured again on the next {len(again_w)} windows: {'; '.join(reasons_again)}"], again


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
