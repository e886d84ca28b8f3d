"""Drift scoring: replay a stored run's windows through a detector and score its detections
against the run's recorded phase boundaries: detection delay (windows) per change, missed
changes, false alarms (detections in the first phase, or more than one per phase)."""

from __future__ import annotations

from typing import Any

from traffic.store import Stores

from .drift import DriftConfig, DriftDetector, window_features


def run_stream(stores: Stores, run_id: str) -> list[tuple[int, int | None, dict[str, float]]]:
    """(window, phase, features) of every stored window of the run that has run flows."""
    stores.run(run_id)  # a clear error for an unknown run
    out = []
    for w in stores.windows(run_id, run_flows_only=True):
        feats = window_features(w.flows)
        if feats is not None:
            out.append((w.window, w.phase, feats))
    return out


def boundaries(stream: list[tuple[int, int | None, dict[str, float]]]) -> list[int]:
    """The first window of every phase after the first."""
    out, last = [], None
    for w, ph, _ in stream:
        if ph is not None and last is not None and ph != last:
            out.append(w)
        if ph is not None:
            last = ph
    return out


def score(changes: list[int], detections: list[int], end: int) -> dict[str, Any]:
    """Match detections to changes: the first detection in [change, next change) is the hit."""
    edges = [*changes, end + 1]
    hits, false_alarms = [], [d for d in detections if not changes or d < changes[0]]
    for i, c in enumerate(changes):
        inside = [d for d in detections if c <= d < edges[i + 1]]
        hits.append({"change": c, "detected": inside[0] if inside else None,
                     "delay": inside[0] - c if inside else None})
        false_alarms += inside[1:]
    delays = [h["delay"] for h in hits if h["delay"] is not None]
    return {"changes": len(changes), "detected": len(delays), "missed": len(changes) - len(delays),
            "false_alarms": len(false_alarms), "false_alarm_windows": sorted(false_alarms),
            "mean_delay": round(sum(delays) / len(delays), 2) if delays else None, "per_change": hits}


def replay(stores: Stores, run_id: str, config: DriftConfig | None = None) -> dict[str, Any]:
    stream = run_stream(stores, run_id)
    det = DriftDetector(config or DriftConfig())
    found = [w for w, _, f in stream if det.update(f, w).drift_detected]
    end = stream[-1][0] if stream else 0
    return {"run": run_id, "windows": len(stream), "config": det.config.to_dict(), "detections": found,
            **score(boundaries(stream), found, end)}
