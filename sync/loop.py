"""The twinning loop on a running lab: traffic (with live labels) in a worker thread; every new
window read back from the traffic store, as a `Window`, goes to the loop's stages in order, each
with one verb, `update(window)`: the prediction stage (serving model and frozen shadow,
`sync.stages.Prediction`, with each prediction's interval), the interval monitor (coverage and
anomalies once labels arrive, `sync.intervals`), drift detection (`sync.stages.DriftStage`, which tells the model
manager) and SLA monitoring (`sync.sla.SlaMonitor`, on the predictions in memory). The model
manager is advanced every tick. Everything is persisted: predictions and status through
`sync.store.LoopStore`, SLA windows through `sync.sla.SlaStore`, detections, retrainings and
swaps as events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from controller_app.client import ControllerClient
from topologies import Topology
from traffic.runner import TrafficRun
from traffic.schedule import Schedule
from traffic.store import Stores
from traffic.window import Window
from vtwin.intervals import ANOMALY_LEVEL, DEFAULT_LEVEL

from .drift import DriftConfig, DriftDetector
from .intervals import IntervalMonitor
from .manager import ManagerConfig, ModelManager, Trainer, default_trainer
from .sla import SlaMonitor, SlaPolicy
from .stages import DriftStage, Prediction
from .store import LoopStore

POLL_S = 0.25


@dataclass
class LoopConfig:
    window_s: float = 1.0
    live_labels_s: float = 4.0
    trainer_start_s: float = 120.0  # the longest the traffic waits for the training worker's trace
    drift: DriftConfig = field(default_factory=DriftConfig)
    manager: ManagerConfig = field(default_factory=ManagerConfig)
    sla: SlaPolicy = field(default_factory=SlaPolicy)
    interval_level: float = DEFAULT_LEVEL
    anomaly_level: float = ANOMALY_LEVEL
    calibration_windows: int = 30

    def to_dict(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "live_labels_s": self.live_labels_s,
                "trainer_start_s": self.trainer_start_s, "drift": self.drift.to_dict(),
                "manager": self.manager.to_dict(), "sla": self.sla.to_dict(),
                "intervals": {"level": self.interval_level, "anomaly_level": self.anomaly_level,
                              "calibration_windows": self.calibration_windows}}


class Stage(Protocol):
    """One observer of the loop's windows."""

    def update(self, window: Window) -> None: ...


class TwinLoop:
    def __init__(self, schedule: Schedule, stores: Stores, hosts: dict[str, dict[str, Any]], topo: Topology,
                 controller: ControllerClient, config: LoopConfig | None = None, trainer: Trainer = default_trainer,
                 status: Callable[[dict[str, Any]], None] = lambda s: None) -> None:
        self.config = config or LoopConfig()
        self.stores = stores
        self.loop_store = LoopStore(stores)
        self.topo = topo
        self.traffic = TrafficRun(schedule, stores, hosts, topo, controller, window_s=self.config.window_s,
                                  progress=False, live_labels_s=self.config.live_labels_s)
        self.run_id = self.traffic.run_id
        self.manager = ModelManager(stores, self.run_id, self._serve, self.config.manager, trainer)
        self.intervals = IntervalMonitor(stores, self.run_id, self.config.interval_level, self.config.anomaly_level,
                                         self.config.calibration_windows)
        self.prediction = Prediction(stores, self.loop_store, self.run_id, topo, self.intervals)
        self.drift = DriftStage(DriftDetector(self.config.drift), self.manager)
        self.sla = SlaMonitor(stores, self.run_id, self.config.sla, topo=topo, predicted=self.prediction.predicted)
        self.stages: list[Stage] = [self.prediction, self.intervals, self.drift, self.sla]
        self.status = status
        self.last_window = -1
        self.windows = 0
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.phase: int | None = None
        self._published = 0.0
        if self.manager.serving:
            self._serve(self.manager.serving)

    def _serve(self, version: str) -> dict[str, Any]:
        return self.prediction.serve(version)

    @property
    def detector(self) -> DriftDetector:
        return self.drift.detector

    # -- windows ----------------------------------------------------------------------------------
    def _new_windows(self) -> list[Window]:
        return self.stores.windows(self.run_id, after=self.last_window)

    def _window(self, window: Window) -> None:
        self.windows += 1
        self.phase = window.phase
        for stage in self.stages:
            stage.update(window)
        self.last_window = window.window

    # -- the run ----------------------------------------------------------------------------------
    def _traffic_thread(self) -> None:
        self.traffic.stores = Stores(self.stores.root)  # SQLite connections belong to their thread
        try:
            self.result = self.traffic.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def snapshot_status(self, state: str = "running") -> dict[str, Any]:
        last = self.detector.detections[-1] if self.detector.detections else None
        recent = self.prediction.predict_ms[-50:]
        return {"run": self.run_id, "state": state, "window": self.last_window, "phase": self.phase,
                "phases": len(self.traffic.schedule.phases), "predicted": self.prediction.predicted_windows,
                "detections": len(self.detector.detections), "manager": self.manager.status(),
                "shadow": self.prediction.shadow_version,
                "detector": {"features": list(self.config.drift.features), "filled": self.detector.filled,
                             "window": self.config.drift.window, "seen": self.detector.seen,
                             "last_detection": None if last is None else last.window},
                "predict_ms": round(float(np.median(recent)), 2) if recent else None,
                "intervals": {"level": self.intervals.level, "anomaly_level": self.intervals.anomaly_level,
                              "calibration": self.intervals.calibration.size() if self.intervals.calibration else 0,
                              "anomalies": self.intervals.anomaly_count}}

    def _publish(self, force: bool = False, state: str = "running") -> None:
        """Hand the status to the caller every tick and persist it at most once a second."""
        s = self.snapshot_status(state)
        self.status(s)
        now = time.monotonic()
        if force or now - self._published >= 1.0:
            self._published = now
            self.loop_store.write_status(self.run_id, s)

    def _await_trainer(self) -> None:
        """Wait for the training worker's trace before the traffic starts: its TensorFlow import and
        trace distort what the lab measures as much as a job does, and before the traffic they
        cost no label. Past `trainer_start_s` the traffic starts anyway, labels paused until it is ready."""
        deadline = time.monotonic() + self.config.trainer_start_s
        while time.monotonic() < deadline:
            ready = self.manager.worker_ready()
            if ready or ready is None:  # ready, or died: the manager starts another when a job needs it
                return
            self._publish(state="starting")
            time.sleep(POLL_S)
        self.manager.warmup_pause()

    def run(self) -> dict[str, Any]:
        self.stores.event(self.run_id, time.time(), "loop", {"config": self.config.to_dict()})
        worker = threading.Thread(target=self._traffic_thread, name="traffic", daemon=True)
        try:
            self.manager.start_worker(pause=False)
            self._await_trainer()
            worker.start()
            while worker.is_alive():
                for w in self._new_windows():
                    self._window(w)
                self.manager.tick()
                self._publish()
                time.sleep(POLL_S)
            for w in self._new_windows():
                self._window(w)
            self.intervals.finish()
            self.sla.finish()
        except BaseException:
            self.traffic.stop.set()
            if worker.ident is not None:  # started
                worker.join()
            self._publish(force=True, state="stopped")
            raise
        finally:
            self.manager.stop()
            self.prediction.close()
        if self.error is not None:
            self._publish(force=True, state="failed")
            raise self.error
        self._publish(force=True, state=(self.result or {}).get("status", "finished"))
        return self.summary()

    def stop(self) -> None:
        self.traffic.stop.set()

    def summary(self) -> dict[str, Any]:
        ms = np.asarray(self.prediction.predict_ms) if self.prediction.predict_ms else None
        return {**(self.result or {}), "run": self.run_id, "predicted_windows": self.prediction.predicted_windows,
                "detections": [d.window for d in self.detector.detections], "swaps": self.manager.swaps,
                "serving": self.manager.serving, "shadow": self.prediction.shadow_version,
                "training_s": round(self.manager.training_s, 1),
                "events": [{k: v for k, v in e.items() if k != "swap"} for e in self.manager.history],
                "predict_ms": None if ms is None else {"median": round(float(np.median(ms)), 2),
                                                       "p95": round(float(np.percentile(ms, 95)), 2)},
                "intervals": self.intervals.store.summary(self.run_id)}
