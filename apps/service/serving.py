"""Which model answers the twin service's predictions.

The serving twin follows the registry: before a prediction it checks which version is active
(another process, such as `ndt run`, may have promoted one) and hot-swaps its predictor to it
(vtwin.predictor: two instances, flip under a lock, no torn prediction). A deployment under
way adds a candidate beside it:

- canary with weight w: that share of requests is answered by the candidate, spread evenly
  (request n goes to the candidate when floor((n+1)w) > floor(nw)); all predictions of one
  request (a what-if makes two) come from the same model;
- shadow: the candidate predicts every request too, its answer is recorded, never returned.

Prediction latency of each version is kept for monitoring.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from traffic.store import Stores
from vtwin.predictor import Predictor
from vtwin.registry import Registry, RegistryError

OBJECTIVE = "delay"


@dataclass
class RequestModel:
    """The model that answers one request: call it to predict, `explain` to break a prediction down."""

    predict: Callable[[list], tuple[np.ndarray, np.ndarray, str]]
    explain: Callable[..., tuple[dict[str, Any], str]]

    def __call__(self, snapshots: list) -> tuple[np.ndarray, np.ndarray, str]:
        return self.predict(snapshots)


@dataclass
class Candidate:
    deployment_id: str
    version: str
    strategy: str  # canary | shadow
    weight: float
    predictor: Predictor
    requests: int = 0
    answered: int = 0
    shadow_diff_ms: deque = field(default_factory=lambda: deque(maxlen=500))


class ServingTwin:
    def __init__(self, stores_root: Any) -> None:
        self.root = stores_root
        self._local = threading.local()
        self._lock = threading.Lock()
        self.predictor: Predictor | None = None
        self.candidate: Candidate | None = None
        self.latency_ms: dict[str, deque] = {}

    def stores(self) -> Stores:
        """This thread's stores (SQLite connections belong to the thread that opened them)."""
        s = getattr(self._local, "stores", None)
        if s is None:
            s = self._local.stores = Stores(self.root)
        return s

    def registry(self) -> Registry:
        return Registry(self.stores())

    def active_version(self) -> str | None:
        return self.registry().active(OBJECTIVE)

    def active_predictor(self) -> Predictor:
        """The predictor of the active version, loaded or swapped to it if the registry changed."""
        active = self.active_version()
        if active is None:
            raise RegistryError("no active model; train one ('ndt train' or POST /ml/train)")
        with self._lock:
            if self.predictor is None:
                self.predictor = Predictor(self.registry(), OBJECTIVE, active, xla=False)
            elif self.predictor.version != active:
                self.predictor.registry = self.registry()
                self.predictor.swap(active)
            return self.predictor

    def for_request(self) -> RequestModel:
        """A predict function for one request: every prediction of the request (a what-if makes
        two, before and after) comes from the same model, the candidate for a canary's share; its
        `explain` breaks predictions down with that model."""
        serving = self.active_predictor()
        cand = self.candidate
        use_candidate = False
        if cand is not None and cand.strategy == "canary":
            with self._lock:
                n = cand.requests
                cand.requests += 1
                use_candidate = math.floor((n + 1) * cand.weight) > math.floor(n * cand.weight)
                cand.answered += use_candidate
        chosen = cand.predictor if use_candidate and cand else serving
        shadow = cand if cand is not None and cand.strategy == "shadow" else None
        if shadow is not None:
            with self._lock:
                shadow.requests += 1

        def predict(snapshots: list) -> tuple[np.ndarray, np.ndarray, str]:
            t0 = time.perf_counter()
            d, j, version = chosen.predict(snapshots)
            self.record_latency(version, t0)
            if shadow is not None:
                t1 = time.perf_counter()
                sd, _, sv = shadow.predictor.predict(snapshots)
                self.record_latency(sv, t1)
                with self._lock:
                    shadow.shadow_diff_ms.append(float(np.mean(np.abs(sd - d))) if len(d) else 0.0)
            return d, j, version

        return RequestModel(predict, chosen.explain)

    def predict(self, snapshots: list) -> tuple[np.ndarray, np.ndarray, str]:
        """Per-flow delay and jitter for the snapshots, and the version that answered (one request)."""
        return self.for_request()(snapshots)

    def record_latency(self, version: str, t0: float) -> None:
        ms = 1000 * (time.perf_counter() - t0)
        with self._lock:
            self.latency_ms.setdefault(version, deque(maxlen=1000)).append(ms)

    def latency(self, version: str) -> dict[str, float] | None:
        with self._lock:
            xs = list(self.latency_ms.get(version, ()))
        if not xs:
            return None
        return {"median_ms": round(float(np.median(xs)), 3), "p95_ms": round(float(np.percentile(xs, 95)), 3),
                "count": len(xs)}

    # -- deployments ------------------------------------------------------------------------------
    def start_candidate(self, deployment_id: str, version: str, strategy: str, weight: float) -> None:
        predictor = Predictor(self.registry(), OBJECTIVE, version, xla=False)
        with self._lock:
            self.candidate = Candidate(deployment_id, version, strategy, weight, predictor)

    def end_candidate(self, deployment_id: str | None = None) -> None:
        with self._lock:
            if self.candidate is not None and (deployment_id is None or self.candidate.deployment_id == deployment_id):
                self.candidate = None

    def candidate_status(self) -> dict[str, Any] | None:
        c = self.candidate
        if c is None:
            return None
        diffs = list(c.shadow_diff_ms)
        return {"deployment_id": c.deployment_id, "version": c.version, "strategy": c.strategy, "weight": c.weight,
                "requests": c.requests, "answered_by_candidate": c.answered,
                "shadow_mean_abs_diff_ms": round(float(np.mean(diffs)), 3) if diffs else None}
