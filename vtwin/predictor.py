"""Serving: the active model answers predictions while another version can be swapped in.

Two twins (`vtwin.twin.Twin`), each with its compiled function: one serves, the other is the
standby. A swap loads the new weights into the standby (once no prediction is still running on
it), compiles it with one warm-up call, then flips which twin serves under a lock. Predictions
never see half-loaded weights, and a prediction that started on the old twin finishes on it.
Without XLA the standby is traced once, ahead of the first swap: with `standby_ahead`, in a
background thread from the start (the caller gets the serving twin after one trace, not two,
and its main thread, where Ctrl-C lands, is not held in TensorFlow for the second), else by the
first swap itself. The thread is not a daemon: an interpreter that exits waits for its trace
rather than abort TensorFlow in it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .features import Snapshot, graph_tensors
from .registry import Registry, RegistryError, uri
from .twin import Twin


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
        self._in_flight: dict[int, int] = {}  # id(twin) -> predictions running on it
        self._serving = self._load_into(None, version)
        # without XLA the standby is traced ahead (in the background), so a swap only loads weights
        self._standby: Twin | None = None
        self._standby_builder: threading.Thread | None = None
        if not xla and standby_ahead:
            self._standby_builder = threading.Thread(target=self._build_standby, args=(self._serving.architecture,),
                                                     name="standby-trace")
            self._standby_builder.start()
        self.swaps: list[dict[str, Any]] = []

    def _build_standby(self, architecture: tuple[int, int]) -> None:
        try:
            self._standby = Twin.empty(*architecture, xla=False, trace=True)
        except Exception:  # noqa: BLE001 - the swap builds one itself
            self._standby = None

    @property
    def version(self) -> str:
        return self._serving.version or ""

    def _load_into(self, twin: Twin | None, version: str) -> Twin:
        loaded = self.registry.twin(self.objective, version, xla=self.xla, trace=False)
        if twin is None or twin.architecture != loaded.architecture:
            if not self.xla:  # one trace serves every shape: take it now, not on the first prediction
                loaded.trace()
            return loaded
        return twin.load(loaded.model.get_weights(), loaded.norm, version)

    @contextmanager
    def _serving_twin(self) -> Iterator[Twin]:
        """The serving twin, marked in use until the block ends (a swap waits for it)."""
        with self._lock:
            twin = self._serving
            self._in_flight[id(twin)] = self._in_flight.get(id(twin), 0) + 1
        try:
            yield twin
        finally:
            with self._lock:
                self._in_flight[id(twin)] -= 1
                self._lock.notify_all()

    def predict_graph(self, g: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, str]:
        """As `predict`, on graph tensors already made from the snapshots."""
        with self._serving_twin() as twin:
            d, j = twin.predict_graph(g)
            return d, j, twin.version or ""

    def explain(self, snapshot: Snapshot, keys: list[str] | None = None) -> tuple[dict[str, dict[str, Any]], str]:
        """The serving model's per-hop breakdown of the snapshot's flows (`vtwin.explain`), and its version."""
        from .explain import explain

        with self._serving_twin() as twin:
            return explain(twin, snapshot, keys), twin.version or ""

    def predict(self, snapshots: list[Snapshot]) -> tuple[np.ndarray, np.ndarray, str]:
        """Per-flow delay and jitter (ms) for the snapshots' flows, and the version that answered."""
        return self.predict_graph(graph_tensors(snapshots))

    def swap(self, version: str, warmup: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
        """Serve `version` from now on; returns the swap's timing."""
        with self._swap_lock:
            t0 = time.perf_counter()
            if self._standby_builder is not None:
                self._standby_builder.join()  # interruptible: Ctrl-C is not held up by it
                self._standby_builder = None
            standby = self._standby
            with self._lock:
                while standby is not None and self._in_flight.get(id(standby)):
                    self._lock.wait()
            standby = self._load_into(standby, version)
            if warmup is not None:
                standby.predict_graph(warmup)
            t_load = time.perf_counter()
            with self._lock:
                old = self._serving
                self._serving, self._standby = standby, old
            t_flip = time.perf_counter()
            rec = {"from": old.version, "to": version, "uri": uri(self.objective, version),
                   "load_ms": round(1000 * (t_load - t0), 2), "flip_ms": round(1000 * (t_flip - t_load), 3)}
            self.swaps.append(rec)
            return rec
