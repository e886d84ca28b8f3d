"""How sure a what-if answer is: the answering model's calibration on the snapshot's run.

Calibration (`vtwin.intervals`): the run's `CALIBRATION_WINDOWS` labeled windows nearest the
snapshot's (before it first), predicted by the model that answers the what-if; cached per run,
windows and model version, so repeated questions on one snapshot pay for it once. A run without
a labeled window, or without enough labels for the level, gives no calibration: the engine then
decides on point estimates and says why.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from traffic.store import Stores
from vtwin.errors import IntervalError
from vtwin.features import Snapshot

CALIBRATION_WINDOWS = 30
#: How far from the snapshot's window labeled windows are looked for.
SEARCH_WINDOWS = 120
_CACHE_SIZE = 16
_cache: OrderedDict[tuple, Any] = OrderedDict()
_cache_lock = threading.Lock()

#: predict(snapshots) -> (delay, jitter, model version)
Predict = Callable[[list[Snapshot]], tuple[np.ndarray, np.ndarray, str]]


def _labeled_samples(stores: Stores, run_id: str, window: int) -> list[Any]:
    from vtwin.dataset import sample

    topo = stores.topology(run_id)
    chosen = stores.windows(run_id, after=window - SEARCH_WINDOWS, upto=window, labeled_only=True)
    chosen = chosen[-CALIBRATION_WINDOWS:]
    if len(chosen) < CALIBRATION_WINDOWS:
        after = stores.windows(run_id, after=window, upto=window + SEARCH_WINDOWS, labeled_only=True)
        chosen += after[: CALIBRATION_WINDOWS - len(chosen)]
    return [s for s in (sample(w, topo) for w in chosen) if s is not None]


def calibration(predict: Predict, version: str, stores: Stores, run_id: str, window: int) -> Any:
    """The answering model's calibration (`vtwin.intervals.Calibration`) on the run's labeled
    windows nearest `window`; IntervalError when the run has no labeled window."""
    from vtwin.dataset import batch
    from vtwin.intervals import Calibration, categories

    samples = _labeled_samples(stores, run_id, window)
    if not samples:
        raise IntervalError(f"run {run_id} has no labeled window to calibrate the twin on")
    windows = tuple(s.window for s in samples)
    with _cache_lock:
        cached = _cache.get((str(stores.root), run_id, version, windows))
        if cached is not None:
            return cached
    g, delay, jitter = batch(samples)
    d, j, answered = predict([s.snapshot for s in samples])
    cal = Calibration.fit({"delay": d, "jitter": j}, {"delay": delay, "jitter": jitter}, categories(g),
                          f"{int(np.isfinite(delay).sum())} labeled flow-windows of run {run_id}, windows "
                          f"{windows[0]}-{windows[-1]}, predicted by {answered}")
    with _cache_lock:
        _cache[(str(stores.root), run_id, answered, windows)] = cal
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return cal
