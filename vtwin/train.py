"""Training the GNN: mini-batches of windows (disjoint unions), MAPE loss on delay plus jitter,
early stopping on a validation slice, a time budget, warm start from given weights, progress."""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .dataset import Sample, batch, split
from .features import Normalization, graph_tensors
from .model import INPUT_SPEC, RouteNet, build_model, make_predict_fn, pad_to_buckets, to_tensors
from .tfload import tf

#: Jitter targets below this count as this much in the relative loss (ms).
JITTER_FLOOR_MS = 0.1
#: Loss weights (delay, jitter) per training objective; early stopping watches the objective's MAPE.
OBJECTIVES = {"delay": (1.0, 0.5), "jitter": (0.5, 1.0)}

TARGET_SPEC = [tf.TensorSpec([None], tf.float32)] * 3


@dataclass
class TrainResult:
    model: RouteNet
    norm: Normalization
    epochs: int
    best_epoch: int
    best_val_mape: float
    seconds: float
    stopped: str
    history: list[dict[str, float]] = field(default_factory=list)


class TwinModel:
    """A model with its normalization and a compiled predictor: what serving and evaluation use."""

    def __init__(self, model: RouteNet, norm: Normalization, xla: bool = True) -> None:
        self.model, self.norm = model, norm
        self._predict = make_predict_fn(model, xla=xla)

    def predict_tensors(self, g: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self._predict(self.norm.apply(g))

    def predict_snapshots(self, snaps: list) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_tensors(graph_tensors(snaps))

    def predict(self, samples: list[Sample]) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_snapshots([s.snapshot for s in samples])


def _batches(samples: list[Sample], norm: Normalization, windows_per_batch: int, rng: random.Random,
             pad: bool) -> list:
    """Shuffled mini-batches as tensors; with `pad`, padded to bucket sizes (padded flows unlabeled)."""
    order = samples[:]
    rng.shuffle(order)
    out = []
    for i in range(0, len(order), windows_per_batch):
        g, yd, yj = batch(order[i:i + windows_per_batch])
        lab = np.isfinite(yd).astype(np.float32)
        x = norm.apply(g)
        yd, yj = np.nan_to_num(yd), np.nan_to_num(yj)
        if pad:
            x = pad_to_buckets(x)
            extra = x["path"].shape[0] - len(yd)
            yd, yj, lab = (np.pad(a, (0, extra)) for a in (yd, yj, lab))
        out.append((to_tensors(x), tf.constant(yd, tf.float32), tf.constant(yj, tf.float32), tf.constant(lab)))
    return out


def train(samples: list[Sample], *, model: RouteNet | None = None, norm: Normalization | None = None,
          state: int = 32, iterations: int = 6, epochs: int = 300, budget_s: float = 300.0, patience: int = 20,
          windows_per_batch: int = 8, lr: float = 1e-3, seed: int = 0, progress: bool = True,
          xla: bool = False, eager: bool = False, objective: str = "delay") -> TrainResult:
    """Train on `samples` (a validation slice is held back for early stopping). With `xla` the
    training step is compiled by XLA once per bucketed batch shape; measured on the Abilene dataset
    that compiling cost more than it saved (6 epochs: 80 s with, 26 s without), so it is off."""
    if not samples:
        raise ValueError("no labeled windows to train on")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; use {' or '.join(OBJECTIVES)}")
    w_delay, w_jitter = OBJECTIVES[objective]
    tf.keras.utils.set_random_seed(seed)
    rng = random.Random(seed)
    fit, val = split(samples, held_out=0.15)
    if not val:
        fit, val = samples, samples
    norm = norm or Normalization.fit([graph_tensors([s.snapshot for s in fit])])
    model = model or build_model(state, iterations)
    opt = tf.keras.optimizers.Adam(lr)
    val_batches = [(norm.apply(g), yd if objective == "delay" else yj)
                   for g, yd, yj in (batch(val[i:i + 32]) for i in range(0, len(val), 32))]

    def step(x, yd, yj, lab):
        with tf.GradientTape() as tape:
            d, j = model(x, training=True)
            n = tf.maximum(tf.reduce_sum(lab), 1.0)
            loss_d = tf.reduce_sum(lab * tf.abs(d - yd) / tf.maximum(yd, 1e-3)) / n
            loss_j = tf.reduce_sum(lab * tf.abs(j - yj) / tf.maximum(yj, JITTER_FLOOR_MS)) / n
            loss = w_delay * loss_d + w_jitter * loss_j
        grads = tape.gradient(loss, model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, 5.0)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss_d

    if not eager:
        step = tf.function(step, input_signature=[INPUT_SPEC, *TARGET_SPEC], jit_compile=xla)
    predict = make_predict_fn(model, xla=False)  # validation shapes vary: one trace, no XLA compiles

    floor = 1e-3 if objective == "delay" else JITTER_FLOOR_MS

    def val_mape() -> float:
        """The objective's MAPE on the validation slice."""
        errs, n = 0.0, 0
        for x, y in val_batches:
            p = predict(x)[0 if objective == "delay" else 1]
            m = np.isfinite(y)
            errs += float(np.sum(np.abs(p[m] - y[m]) / np.maximum(y[m], floor)))
            n += int(m.sum())
        return 100.0 * errs / max(n, 1)

    start = time.monotonic()
    best, best_epoch, best_weights, stopped = math.inf, 0, model.get_weights() if model.built else None, "epochs"
    history = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs, desc="training", unit="epoch", file=sys.stderr, disable=not sys.stderr.isatty())
    epoch = 0
    for epoch in range(1, epochs + 1):
        losses = [float(step(*b)) for b in _batches(fit, norm, windows_per_batch, rng, xla)]
        v = val_mape()
        history.append({"epoch": epoch, "train_mape": round(100 * float(np.mean(losses)), 3), "val_mape": round(v, 3)})
        if v < best:
            best, best_epoch, best_weights = v, epoch, model.get_weights()
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"train {history[-1]['train_mape']:.1f}% val {v:.1f}% best {best:.1f}%")
        if epoch - best_epoch >= patience:
            stopped = "early stopping"
            break
        if time.monotonic() - start > budget_s:
            stopped = "time budget"
            break
    if bar is not None:
        bar.close()
    if best_weights is not None:
        model.set_weights(best_weights)
    return TrainResult(model, norm, epoch, best_epoch, round(best, 3), round(time.monotonic() - start, 2), stopped,
                       history)


def data_range(samples: list[Sample]) -> dict[str, Any]:
    runs: dict[str, list[int]] = {}
    for s in samples:
        runs.setdefault(s.run, []).append(s.window)
    return {r: [min(w), max(w)] for r, w in runs.items()}
