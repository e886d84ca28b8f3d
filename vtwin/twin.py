"""The virtual twin as one object: a trained GNN, the normalization of its inputs and its compiled
prediction function. `Twin.predict(snapshots)` is the one prediction call (per-flow delay and
jitter in ms); `predict_graph` takes graph tensors already made from snapshots (the loop builds a
window's once for the serving model and the shadow). The hot-swap predictor holds two of them,
training keeps one for validation, the registry makes one from a stored version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .features import Normalization, Snapshot, graph_tensors
from .model import RouteNet, build_model, make_predict_fn, tiny_graph


class Twin:
    def __init__(self, model: RouteNet, norm: Normalization | None = None, *, version: str | None = None,
                 xla: bool = True, trace: bool = False) -> None:
        """`xla`: compile with XLA per bucketed shape (pays off for large snapshots), else one
        shape-agnostic trace; `trace`: take that trace now rather than on the first prediction."""
        if not model.built:
            model.build()
        self.model, self.norm, self.version, self.xla = model, norm, version, xla
        self.meta: dict[str, Any] = {}
        self._fn = make_predict_fn(model, xla=xla)
        if trace:
            self.trace()

    @classmethod
    def empty(cls, state: int, iterations: int, xla: bool = True, trace: bool = False) -> Twin:
        """A twin of that architecture with fresh weights and no normalization yet (`load` fills them)."""
        return cls(build_model(state, iterations), xla=xla, trace=trace)

    @property
    def architecture(self) -> tuple[int, int]:
        return self.model.state, self.model.iterations

    def load(self, weights: list[np.ndarray], norm: Normalization, version: str | None = None) -> Twin:
        """Put another version's weights and normalization into this twin (same architecture):
        its compiled function is kept."""
        self.model.set_weights(weights)
        self.norm, self.version = norm, version
        return self

    def trace(self) -> None:
        """Take the compiled function's trace now (on a one-flow graph)."""
        self._fn(tiny_graph())

    def predict_graph(self, g: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if self.norm is None:
            raise ValueError("this twin has no normalization: train it or load a version first")
        return self._fn(self.norm.apply(g))

    def predict(self, snapshots: list[Snapshot]) -> tuple[np.ndarray, np.ndarray]:
        """Per-flow delay and jitter (ms) of the snapshots' flows, in order."""
        return self.predict_graph(graph_tensors(snapshots))
