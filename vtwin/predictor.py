"""Serving: the active model answers predictions while another version can be swapped in.

Two compiled instances: one serves, the other is the standby. A swap loads the new weights into
the standby (once no prediction is still running on it), compiles it with one warm-up call, then
flips which instance serves under a lock. Predictions never see half-loaded weights, and a
prediction that started on the old instance finishes on it. Without XLA the standby is traced
once, ahead of the first swap: with `standby_ahead`, in a background thread from the start (the
caller gets the serving instance after one trace, not two, and its main thread, where Ctrl-C
lands, is not held in TensorFlow for the second), else by the first swap itself. The thread is
not a daemon: an interpreter that exits waits for its trace rather than abort TensorFlow in it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from .features import Normalization, graph_tensors
from .model import RouteNet, build_model, make_predict_fn, tiny_graph
from .registry import Registry, RegistryError, _build, uri


class _Instance:
    def __init__(self, state: int, iterations: int, xla: bool = True) -> None:
        self.model = build_model(state, iterations)
        _build(self.model)
        self.fn = make_predict_fn(self.model, xla=xla)
        if not xla:  # one trace serves every shape: take it now, not on the first prediction
            self.fn(tiny_graph())
        self.norm: Normalization | None = None
        self.version: str | None = None
        self.in_flight = 0
        self.config = (state, iterations)


class Predictor:
    def __init__(self, registry: Registry, objective: str = "delay", version: str | None = None,
                 xla: bool = True, standby_ahead: bool = False) -> None:
        """`xla`: compile with XLA (per bucketed shape; pays off for large snapshots) or trace once.
        `standby_ahead` (without XLA): trace the standby now, in the background, for swaps to come."""
        self.registry = registry
        self.objective = objective
        self.xla = xla
        version = version or registry.active(objective)
        if version is None:
            raise RegistryError(f"no active {objective} model; train one with 'ndt train'")
        self._lock = threading.Condition()
        self._swap_lock = threading.Lock()
        self._serving = self._load_into(None, version)
        # without XLA the standby is traced ahead (in the background), so a swap only loads weights
        self._standby: _Instance | None = None
        self._standby_builder: threading.Thread | None = None
        if not xla and standby_ahead:
            self._standby_builder = threading.Thread(target=self._build_standby, args=(self._serving.config,),
                                                     name="standby-trace")
            self._standby_builder.start()
        self.swaps: list[dict[str, Any]] = []

    def _build_standby(self, config: tuple[int, int]) -> None:
        try:
            self._standby = _Instance(*config, xla=False)
        except Exception:  # noqa: BLE001 - the swap builds one itself
            self._standby = None

    @property
    def version(self) -> str:
        return self._serving.version or ""

    def _load_into(self, inst: _Instance | None, version: str) -> _Instance:
        model, norm, meta = self.registry.load(self.objective, version)
        cfg = (meta["config"]["state"], meta["config"]["iterations"])
        if inst is None or inst.config != cfg:
            inst = _Instance(*cfg, xla=self.xla)
        inst.model.set_weights(model.get_weights())
        inst.norm, inst.version = norm, version
        return inst

    def predict_tensors(self, g: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, str]:
        with self._lock:
            inst = self._serving
            inst.in_flight += 1
        try:
            d, j = inst.fn(inst.norm.apply(g))
            return d, j, inst.version or ""
        finally:
            with self._lock:
                inst.in_flight -= 1
                self._lock.notify_all()

    def predict(self, snapshots: list) -> tuple[np.ndarray, np.ndarray, str]:
        """Per-flow delay and jitter (ms) for the snapshots' flows, and the version that answered."""
        return self.predict_tensors(graph_tensors(snapshots))

    def swap(self, version: str, warmup: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """Serve `version` from now on; returns the swap's timing."""
        with self._swap_lock:
            t0 = time.perf_counter()
            if self._standby_builder is not None:
                self._standby_builder.join()  # interruptible: Ctrl-C is not held up by it
                self._standby_builder = None
            standby = self._standby
            with self._lock:
                while standby is not None and standby.in_flight:
                    self._lock.wait()
            standby = self._load_into(standby, version)
            if warmup is not None:
                standby.fn(standby.norm.apply(warmup))
            t_load = time.perf_counter()
            with self._lock:
                old = self._serving
                self._serving, self._standby = standby, old
            t_flip = time.perf_counter()
            rec = {"from": old.version, "to": version, "uri": uri(self.objective, version),
                   "load_ms": round(1000 * (t_load - t0), 2), "flip_ms": round(1000 * (t_flip - t_load), 3)}
            self.swaps.append(rec)
            return rec

    @staticmethod
    def from_model(model: RouteNet, norm: Normalization) -> _Instance:
        inst = _Instance(model.state, model.iterations)
        inst.model.set_weights(model.get_weights())
        inst.norm = norm
        return inst
