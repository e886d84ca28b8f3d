"""The closed loop's stages other than SLA monitoring (`sync.sla`): each sees every new window,
in order, through one verb, `update(window)`.

- `Prediction`: the serving model (a hot-swap `vtwin.predictor.Predictor`) and the frozen shadow
  (the run's first model, never swapped: what the twin would say without synchronization)
  predict every flow of the window; the interval monitor (`sync.intervals`) adds each
  prediction's interval; the predictions are stored and kept in memory for the stages after it.
- `DriftStage`: the window's traffic features go to the drift detector; a detection goes to the
  model manager, which starts a retraining when it is serving.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from topologies import Topology
from traffic.store import Stores
from traffic.window import Window
from vtwin.dataset import window_snapshot
from vtwin.errors import SnapshotError
from vtwin.features import graph_tensors
from vtwin.intervals import categories
from vtwin.predictor import Predictor
from vtwin.registry import Registry

from .drift import DriftDetector, window_features
from .intervals import IntervalMonitor
from .manager import ModelManager
from .sla import Predicted
from .store import LoopStore


class Prediction:
    """Predicts each window with the serving model and the frozen shadow."""

    def __init__(self, stores: Stores, loop_store: LoopStore, run_id: str, topo: Topology,
                 intervals: IntervalMonitor | None = None) -> None:
        """`intervals`: gives every window's predictions their intervals before they are stored."""
        self.stores, self.loop_store, self.run_id, self.topo = stores, loop_store, run_id, topo
        self.intervals = intervals
        self.registry = Registry(stores)
        self.predictor: Predictor | None = None
        self.shadow: Any = None
        self.shadow_version: str | None = None
        self._shadow_builder: threading.Thread | None = None
        self.last_graph: dict[str, np.ndarray] | None = None
        self.predicted_windows = 0
        self.predict_ms: list[float] = []
        self._latest: tuple[int, Predicted] = (-1, {})

    # -- models -----------------------------------------------------------------------------------
    def serve(self, version: str) -> dict[str, Any]:
        """Serve `version` from the next window on (the first one served also becomes the shadow)."""
        if self.predictor is None:
            # lab-sized snapshots: one trace serves every shape; XLA would compile per shape and stall
            self.predictor = Predictor(self.registry, version=version, xla=False, standby_ahead=True)
            rec = {"from": None, "to": version, "load_ms": None, "flip_ms": None}
        else:
            rec = self.predictor.swap(version, warmup=self.last_graph)
        if self.shadow_version is None:  # the first model of the run stays frozen as the shadow
            self.shadow_version = version
            twin = self.registry.twin("delay", version, xla=False)
            # traced off the main thread (Ctrl-C lands there): until the next swap the serving model
            # is the same version and answers for it; not a daemon: an exit waits for the trace
            # rather than abort TensorFlow in it
            self._shadow_builder = threading.Thread(target=self._build_shadow, args=(twin,), name="shadow-trace")
            self._shadow_builder.start()
            self.stores.event(self.run_id, time.time(), "shadow", {"version": version})
        return rec

    def _build_shadow(self, twin: Any) -> None:
        twin.trace()
        self.shadow = twin

    def _shadow_predict(self, g: dict[str, np.ndarray], d: np.ndarray, j: np.ndarray,
                        version: str) -> tuple[np.ndarray, np.ndarray]:
        if self.shadow is None and version == self.shadow_version:
            return d, j
        if self.shadow is None and self._shadow_builder is not None:
            self._shadow_builder.join()  # interruptible
        return self.shadow.predict_graph(g) if self.shadow else (d, j)

    # -- the stage --------------------------------------------------------------------------------
    def predicted(self, window: int) -> Predicted:
        """The newest window's predictions: flow key -> (serving, shadow, interval low, interval
        high) delay in ms."""
        return self._latest[1] if self._latest[0] == window else {}

    def update(self, window: Window) -> None:
        if self.predictor is None:
            return
        snap = window_snapshot(self.topo, window)
        if snap is None:
            return
        try:
            g = graph_tensors([snap])
        except SnapshotError as exc:
            self.stores.event(self.run_id, time.time(), "snapshot_error", {"window": window.window, "error": str(exc)})
            return
        t0 = time.perf_counter()
        d, j, version = self.predictor.predict_graph(g)
        self.predict_ms.append(1000 * (time.perf_counter() - t0))
        sd, sj = self._shadow_predict(g, d, j, version)
        self.last_graph = g
        run_flows = {f.flow_key for f in window.run_flows}
        now = time.time()
        rows = [{"run_id": self.run_id, "window": window.window, "flow_key": spec.key, "version": version,
                 "delay_ms": float(d[i]), "jitter_ms": float(j[i]), "shadow_version": self.shadow_version,
                 "shadow_delay_ms": float(sd[i]), "shadow_jitter_ms": float(sj[i]), "predicted_at": now}
                for i, spec in enumerate(snap.flows) if spec.key in run_flows]
        if self.intervals is not None:
            cats = categories(g)
            self.intervals.attach(window, rows, {spec.key: int(cats[i]) for i, spec in enumerate(snap.flows)})
        self.loop_store.write_predictions(rows)
        self._latest = (window.window, {r["flow_key"]: (r["delay_ms"], r["shadow_delay_ms"], r.get("delay_lo"),
                                                        r.get("delay_hi")) for r in rows})
        self.predicted_windows += 1

    def close(self) -> None:
        """Wait for the shadow's trace (an exit must not abort TensorFlow in it)."""
        if self._shadow_builder is not None:
            self._shadow_builder.join()


class DriftStage:
    """Feeds each window's run-flow features to the detector; a detection goes to the manager."""

    def __init__(self, detector: DriftDetector, manager: ModelManager) -> None:
        self.detector, self.manager = detector, manager

    def update(self, window: Window) -> None:
        feats = window_features(window.run_flows)
        if feats is not None and self.detector.update(feats, window.window).drift_detected:
            d = self.detector.detections[-1]
            self.manager.on_drift(window.window, {"features": d.features, "p_values": d.p_values,
                                                  "before": d.before, "after": d.after, "phase": window.phase})
