"""Drift detection: KSWIN (river) on the per-window traffic features of a run.

Every measurement window gives one value per feature: `rate` is the mean measured rate of the
run's own flows (Mbit/s), `spread` their coefficient of variation, `size` their mean packet size
(bytes). The detector sees the mean of the last `smooth` windows (2): the controller reads its
counters every second, so now and then a 1 s window gets a poll's bytes too few and the next one
as many too many (0.55 then 1.67 Mbit/s around 1.11 in one Abilene run: per-window coefficient
of variation 0.13 against 0.01-0.04 in other runs of the same schedule, and a change of phase
went unseen); two windows average such pairs out. One river KSWIN per
feature; a window is a detection when any of them fires and passes two guards that river's
detector lacks:

- an effect-size gate: the mean of the most recent `stat` values differs from the mean of the
  values before them in the window by at least `min_change` (relative). KSWIN's test is run on
  every sample, so on stationary traffic with autocorrelated windows it false-alarms every few
  hundred samples; real changes of traffic are large.
- a fresh start after an accepted detection: the detectors are rebuilt empty, so the next
  detection needs `window` post-detection samples (river keeps the last `stat` samples, and when
  those straddle the change it can fire again for the same change as it refills). A detection
  the gate rejects keeps the window instead: river would empty it and be blind for `window`
  samples (on steady UDP traffic its scale-free test fires on tiny wobbles, and a real change
  a few windows later was missed that way).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from statistics import fmean
from typing import Any

from traffic.window import WindowFlow

FEATURES = ("rate", "spread", "size")


class DriftConfigError(ValueError):
    pass


@dataclass(frozen=True)
class DriftConfig:
    alpha: float = 0.005
    window: int = 20
    stat: int = 8
    min_change: float = 0.2
    warmup: int = 3  # windows skipped at the start of a run (senders still starting)
    features: tuple[str, ...] = ("rate",)
    seed: int = 7
    smooth: int = 2  # windows averaged into each value the detectors see

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise DriftConfigError(f"alpha must be between 0 and 1, got {self.alpha}")
        if not 2 <= self.stat < self.window:
            raise DriftConfigError(f"need 2 <= stat < window, got stat {self.stat} and window {self.window}")
        if self.window - self.stat < self.stat:
            raise DriftConfigError(f"window ({self.window}) must be at least twice stat ({self.stat})")
        if not 1 <= self.smooth <= self.stat:
            raise DriftConfigError(f"smooth must be between 1 and stat ({self.stat}), got {self.smooth}")
        if self.min_change < 0 or self.warmup < 0:
            raise DriftConfigError("min_change and warmup must not be negative")
        unknown = set(self.features) - set(FEATURES)
        if unknown or not self.features:
            raise DriftConfigError(f"features must be some of {', '.join(FEATURES)}, got {', '.join(self.features)}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "features": list(self.features)}


@dataclass
class Detection:
    window: int  # the window the detector fired on (the sample count if no window was given)
    features: list[str]
    p_values: dict[str, float]
    before: dict[str, float]
    after: dict[str, float]


@dataclass
class DriftDetector:
    config: DriftConfig = field(default_factory=DriftConfig)

    def __post_init__(self) -> None:
        self.seen = 0
        self.drift_detected = False
        self.detections: list[Detection] = []
        self._last: dict[str, deque[float]] = {f: deque(maxlen=self.config.smooth) for f in self.config.features}
        self._fresh()

    def _make(self, window: list[float] | None = None):
        from river.drift import KSWIN

        c = self.config
        return KSWIN(alpha=c.alpha, window_size=c.window, stat_size=c.stat, seed=c.seed, window=window)

    def _fresh(self) -> None:
        c = self.config
        self._kswin = {f: self._make() for f in c.features}
        self._recent: dict[str, deque[float]] = {f: deque(maxlen=c.window) for f in c.features}

    @property
    def filled(self) -> int:
        """How many samples the detectors hold (a detection needs `window`)."""
        return len(next(iter(self._recent.values())))

    def update(self, values: dict[str, float], window: int | None = None) -> DriftDetector:
        """Feed one window's feature values, then read `drift_detected` (and `detections[-1]`)."""
        self.seen += 1
        self.drift_detected = False
        if self.seen <= self.config.warmup:
            return self
        fired, pvals, before, after = [], {}, {}, {}
        for f in self.config.features:
            self._last[f].append(float(values[f]))
            x = fmean(self._last[f])
            self._recent[f].append(x)
            det = self._kswin[f]
            det.update(x)
            if not det.drift_detected:
                continue
            recent = list(self._recent[f])
            old, new = fmean(recent[: -self.config.stat]), fmean(recent[-self.config.stat:])
            if abs(new - old) >= self.config.min_change * max(abs(old), 1e-9):
                fired.append(f)
                pvals[f], before[f], after[f] = float(det.p_value), old, new
            else:
                # river empties its window on the next update after any detection, which would
                # blind it for `window` samples; a rejected detection keeps the window it had
                self._kswin[f] = self._make(recent)
        if fired:
            self.drift_detected = True
            self.detections.append(Detection(self.seen - 1 if window is None else window, fired, pvals, before, after))
            self._fresh()
        return self


def window_features(flows: list[WindowFlow]) -> dict[str, float] | None:
    """The features of one window from its run flows (measured rate, window bytes and packets)."""
    rates = [f.measured_bps / 1e6 for f in flows if f.measured_bps is not None]
    if not rates:
        return None
    mean = fmean(rates)
    spread = (fmean((r - mean) ** 2 for r in rates) ** 0.5) / mean if mean > 0 else 0.0
    pkts = sum(f.window_packets or 0 for f in flows)
    size = sum(f.window_bytes or 0 for f in flows) / pkts if pkts else 0.0
    return {"rate": mean, "spread": spread, "size": size}
