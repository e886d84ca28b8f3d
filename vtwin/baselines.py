"""Baselines the GNN is measured against, in the same evaluation:

- `mm1_predict`: an analytic queueing model. Every directed link is an M/M/1 queue at the
  utilization computed from the offered rates on the routing (capped at 0.99); a flow's delay is
  the sum of sojourn times S/(1 - rho) (S: the mean packet's transmission time) plus propagation
  delays; its jitter the sum of the mean waiting times rho S/(1 - rho).
- `MLPBaseline`: a multilayer perceptron on per-flow features only (offered rate, packet size,
  path length, path propagation delay, smallest capacity on the path), blind to the other flows.
"""

from __future__ import annotations

import numpy as np

from .dataset import Sample
from .features import Snapshot, graph_tensors

RHO_CAP = 0.99


def mm1_predict(snapshots: list[Snapshot]) -> tuple[np.ndarray, np.ndarray]:
    g = graph_tensors(snapshots)
    cap, delay, rho = g["link_x"][:, 0], g["link_x"][:, 1], np.minimum(g["link_x"][:, 2], RHO_CAP)
    pkt_bits = (g["flow_x"][:, 1] * 1000.0 + 42.0) * 8.0
    mask = g["mask"]
    n_links = len(cap)
    path = np.where(mask, g["path"], 0)
    service_ms = pkt_bits[:, None] / (cap[path] * 1e6) * 1e3  # each flow's own packet on each hop
    sojourn = service_ms / (1.0 - rho[path])
    wait = rho[path] * service_ms / (1.0 - rho[path])
    d = np.sum(np.where(mask, sojourn + delay[path], 0.0), axis=1)
    j = np.sum(np.where(mask, wait, 0.0), axis=1)
    assert n_links == len(delay)
    return d.astype(np.float32), j.astype(np.float32)


def flow_features(snapshots: list[Snapshot]) -> np.ndarray:
    g = graph_tensors(snapshots)
    mask, path = g["mask"], np.where(g["mask"], g["path"], 0)
    cap, delay = g["link_x"][:, 0], g["link_x"][:, 1]
    prop = np.sum(np.where(mask, delay[path], 0.0), axis=1)
    min_cap = np.min(np.where(mask, cap[path], np.inf), axis=1)
    return np.column_stack([g["flow_x"][:, 0], g["flow_x"][:, 1], g["flow_x"][:, 2], prop, min_cap]).astype(np.float32)


class MLPBaseline:
    def __init__(self, units: int = 64) -> None:
        from .tfload import keras

        self.model = keras.Sequential([keras.layers.Input((5,)), keras.layers.Dense(units, activation="relu"),
                                       keras.layers.Dense(units, activation="relu"), keras.layers.Dense(2)])
        self.mean = self.std = None

    def fit(self, samples: list[Sample], epochs: int = 200, seed: int = 0) -> MLPBaseline:
        from .tfload import keras

        keras.utils.set_random_seed(seed)
        x = flow_features([s.snapshot for s in samples])
        yd = np.concatenate([s.delay_ms for s in samples])
        yj = np.concatenate([s.jitter_ms for s in samples])
        ok = np.isfinite(yd) & np.isfinite(yj)
        x, y = x[ok], np.log1p(np.column_stack([yd[ok], yj[ok]]))
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        self.model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
        stop = keras.callbacks.EarlyStopping(patience=15, restore_best_weights=True)
        self.model.fit((x - self.mean) / self.std, y, epochs=epochs, batch_size=64, verbose=0,
                       validation_split=0.15, callbacks=[stop])
        return self

    def predict(self, snapshots: list[Snapshot]) -> tuple[np.ndarray, np.ndarray]:
        x = (flow_features(snapshots) - self.mean) / self.std
        y = np.expm1(self.model.predict(x, verbose=0))
        return y[:, 0].astype(np.float32), np.maximum(y[:, 1], 0).astype(np.float32)
