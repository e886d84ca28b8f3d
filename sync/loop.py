"""The twinning loop on a running lab: traffic (with live labels) in a worker thread; every new
window read back from the traffic store is predicted by the serving model and by the frozen
shadow (the run's initial model), fed to the drift detector, and the model manager is advanced.
Everything is persisted: predictions in traffic.db, detections, retrainings and swaps as events.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from controller_app.client import ControllerClient
from topologies import Topology
from traffic.runner import TrafficRun
from traffic.schedule import Schedule
from traffic.store import Stores
from vtwin.dataset import window_snapshot
from vtwin.errors import SnapshotError
from vtwin.features import graph_tensors
from vtwin.predictor import Predictor
from vtwin.registry import Registry
from vtwin.train import TwinModel

from .drift import DriftConfig, DriftDetector, window_features
from .manager import ManagerConfig, ModelManager, Trainer, default_trainer

POLL_S = 0.25


@dataclass
class LoopConfig:
    window_s: float = 1.0
    live_labels_s: float = 4.0
    trainer_start_s: float = 120.0  # the longest the traffic waits for the training worker's trace
    drift: DriftConfig = field(default_factory=DriftConfig)
    manager: ManagerConfig = field(default_factory=ManagerConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"window_s": self.window_s, "live_labels_s": self.live_labels_s,
                "trainer_start_s": self.trainer_start_s, "drift": self.drift.to_dict(),
                "manager": self.manager.to_dict()}


class TwinLoop:
    def __init__(self, schedule: Schedule, stores: Stores, hosts: dict[str, dict[str, Any]], topo: Topology,
                 controller: ControllerClient, config: LoopConfig | None = None, trainer: Trainer = default_trainer,
                 status: Callable[[dict[str, Any]], None] = lambda s: None) -> None:
        self.config = config or LoopConfig()
        self.stores = stores
        self.topo = topo
        self.traffic = TrafficRun(schedule, stores, hosts, topo, controller, window_s=self.config.window_s,
                                  progress=False, live_labels_s=self.config.live_labels_s)
        self.run_id = self.traffic.run_id
        self.registry = Registry(stores)
        self.detector = DriftDetector(self.config.drift)
        self.manager = ModelManager(stores, self.run_id, self._serve, self.config.manager, trainer)
        self.predictor: Predictor | None = None
        self.shadow: TwinModel | None = None
        self.shadow_version: str | None = None
        self._shadow_builder: threading.Thread | None = None
        self.status = status
        self.last_window = -1
        self.windows = 0
        self.predicted = 0
        self.last_graph: dict[str, np.ndarray] | None = None
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.phase: int | None = None
        self.predict_ms: list[float] = []
        self._published = 0.0
        if self.manager.serving:
            self._serve(self.manager.serving)

    # -- models -----------------------------------------------------------------------------------
    def _serve(self, version: str) -> dict[str, Any]:
        if self.predictor is None:
            # lab-sized snapshots: one trace serves every shape; XLA would compile per shape and stall
            self.predictor = Predictor(self.registry, version=version, xla=False, standby_ahead=True)
            rec = {"from": None, "to": version, "load_ms": None, "flip_ms": None}
        else:
            rec = self.predictor.swap(version, warmup=self.last_graph)
        if self.shadow_version is None:  # the first model of the run stays frozen as the shadow
            self.shadow_version = version
            model, norm, _ = self.registry.load("delay", version)
            # traced off the main thread (Ctrl-C lands there): until the next swap the serving model
            # is the same version and answers for it
            shadow = TwinModel(model, norm, xla=False)
            # not a daemon: an exit waits for the trace rather than abort TensorFlow in it
            self._shadow_builder = threading.Thread(target=self._build_shadow, args=(shadow,), name="shadow-trace")
            self._shadow_builder.start()
            self.stores.event(self.run_id, time.time(), "shadow", {"version": version})
        return rec

    def _build_shadow(self, shadow: TwinModel) -> None:
        shadow.trace()
        self.shadow = shadow

    def _shadow_predict(self, g: dict[str, np.ndarray], d: np.ndarray, j: np.ndarray,
                        version: str) -> tuple[np.ndarray, np.ndarray]:
        if self.shadow is None and version == self.shadow_version:
            return d, j
        if self.shadow is None and self._shadow_builder is not None:
            self._shadow_builder.join()  # interruptible
        return self.shadow.predict_tensors(g) if self.shadow else (d, j)

    # -- windows ----------------------------------------------------------------------------------
    def _new_windows(self) -> list[tuple[int, int | None, list[dict[str, Any]]]]:
        rows = self.stores.traffic.query(
            "SELECT s.window, s.phase_idx, f.* FROM snapshots s JOIN snapshot_flows f ON f.snapshot_id = s.id "
            "WHERE s.run_id = ? AND s.window > ? ORDER BY s.window", [self.run_id, self.last_window])
        by: dict[int, list[dict[str, Any]]] = defaultdict(list)
        phase: dict[int, int | None] = {}
        for r in rows:
            by[r["window"]].append(r)
            phase[r["window"]] = r["phase_idx"]
        return [(w, phase[w], by[w]) for w in sorted(by)]

    def _predict(self, window: int, flows: list[dict[str, Any]]) -> None:
        if self.predictor is None:
            return
        snap = window_snapshot(self.topo, flows)
        if snap is None:
            return
        try:
            g = graph_tensors([snap])
        except SnapshotError as exc:
            self.stores.event(self.run_id, time.time(), "snapshot_error", {"window": window, "error": str(exc)})
            return
        t0 = time.perf_counter()
        d, j, version = self.predictor.predict_tensors(g)
        self.predict_ms.append(1000 * (time.perf_counter() - t0))
        sd, sj = self._shadow_predict(g, d, j, version)
        self.last_graph = g
        run_flows = {f["flow_key"] for f in flows if f.get("flow_no") is not None}
        now = time.time()
        rows = [{"run_id": self.run_id, "window": window, "flow_key": spec.key, "version": version,
                 "delay_ms": float(d[i]), "jitter_ms": float(j[i]), "shadow_version": self.shadow_version,
                 "shadow_delay_ms": float(sd[i]), "shadow_jitter_ms": float(sj[i]), "predicted_at": now}
                for i, spec in enumerate(snap.flows) if spec.key in run_flows]
        with self.stores.traffic.conn:
            self.stores.traffic["predictions"].insert_all(rows, ignore=True)
        self.predicted += 1

    def _window(self, window: int, phase: int | None, flows: list[dict[str, Any]]) -> None:
        self.windows += 1
        self.phase = phase
        self._predict(window, flows)
        feats = window_features([f for f in flows if f.get("flow_no") is not None])
        if feats is not None and self.detector.update(feats, window).drift_detected:
            d = self.detector.detections[-1]
            self.manager.on_drift(window, {"features": d.features, "p_values": d.p_values,
                                           "before": d.before, "after": d.after, "phase": phase})

    # -- the run ----------------------------------------------------------------------------------
    def _traffic_thread(self) -> None:
        self.traffic.stores = Stores(self.stores.root)  # SQLite connections belong to their thread
        try:
            self.result = self.traffic.run()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc

    def snapshot_status(self, state: str = "running") -> dict[str, Any]:
        last = self.detector.detections[-1] if self.detector.detections else None
        recent = self.predict_ms[-50:]
        return {"run": self.run_id, "state": state, "window": self.last_window, "phase": self.phase,
                "phases": len(self.traffic.schedule.phases), "predicted": self.predicted,
                "detections": len(self.detector.detections), "manager": self.manager.status(),
                "shadow": self.shadow_version,
                "detector": {"features": list(self.config.drift.features), "filled": self.detector.filled,
                             "window": self.config.drift.window, "seen": self.detector.seen,
                             "last_detection": None if last is None else last.window},
                "predict_ms": round(float(np.median(recent)), 2) if recent else None}

    def _publish(self, force: bool = False, state: str = "running") -> None:
        """Hand the status to the caller every tick and persist it at most once a second."""
        s = self.snapshot_status(state)
        self.status(s)
        now = time.monotonic()
        if force or now - self._published >= 1.0:
            self._published = now
            self.stores.write_status(self.run_id, s)

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
                for w, phase, flows in self._new_windows():
                    self._window(w, phase, flows)
                    self.last_window = w
                self.manager.tick()
                self._publish()
                time.sleep(POLL_S)
            for w, phase, flows in self._new_windows():
                self._window(w, phase, flows)
                self.last_window = w
        except BaseException:
            self.traffic.stop.set()
            if worker.ident is not None:  # started
                worker.join()
            self._publish(force=True, state="stopped")
            raise
        finally:
            self.manager.stop()
        if self.error is not None:
            self._publish(force=True, state="failed")
            raise self.error
        self._publish(force=True, state=(self.result or {}).get("status", "finished"))
        return self.summary()

    def stop(self) -> None:
        self.traffic.stop.set()

    def summary(self) -> dict[str, Any]:
        ms = np.asarray(self.predict_ms) if self.predict_ms else None
        return {**(self.result or {}), "run": self.run_id, "predicted_windows": self.predicted,
                "detections": [d.window for d in self.detector.detections], "swaps": self.manager.swaps,
                "serving": self.manager.serving, "shadow": self.shadow_version,
                "training_s": round(self.manager.training_s, 1),
                "events": [{k: v for k, v in e.items() if k != "swap"} for e in self.manager.history],
                "predict_ms": None if ms is None else {"median": round(float(np.median(ms)), 2),
                                                       "p95": round(float(np.percentile(ms, 95)), 2)}}
