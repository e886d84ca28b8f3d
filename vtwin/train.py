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
from .model import INPUT_SPEC, RouteNet, build_model, pad_to_buckets, tiny_graph, to_tensors
from .tfload import tf
from .twin import Twin

#: Jitter targets below this count as this much in the relative loss (ms).
JITTER_FLOOR_MS = 0.1
#: Loss weights (delay, jitter) per training objective; early stopping watches the objective's MAPE.
OBJECTIVES = {"delay": (1.0, 0.5), "jitter": (0.5, 1.0)}
#: Per-flow losses: "mape", |pred - y| / y (the default); "log", |log(pred / y)|, symmetric in the
#: ratio. Under doubt whether a flow sees a full buffer, MAPE pays at most 1 for predicting none
#: and y_full / y for predicting it where it is not (200 for a 600 ms buffer and a 3 ms flow), so
#: it learns to predict none; the log loss pays log(y_full / y) either way.
LOSSES = ("mape", "log")
#: Without a terminal (a log file, a service), training prints a line of progress this often (s).
LOG_EVERY_S = 60.0

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


class Fitter:
    """A model with its optimizer and its traced training and prediction steps, kept across fits.

    Tracing the training step costs about 10 s on one thread; a traced epoch of 30 lab windows
    then takes about 0.1 s, against 1.5 s eagerly. The retraining worker (`sync.retrain`) keeps
    one Fitter, traces it once at start (`warm_up`), and fits each warm-started candidate in
    seconds. `fit` resets the optimizer, so fits do not leak into each other."""

    def __init__(self, model: RouteNet, *, objective: str = "delay", xla: bool = False, eager: bool = False,
                 loss: str = "mape") -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; use {' or '.join(OBJECTIVES)}")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; use {' or '.join(LOSSES)}")
        relative = loss == "mape"

        def err(pred, y, floor):
            if relative:
                return tf.abs(pred - y) / tf.maximum(y, floor)
            y = tf.maximum(y, floor)
            # below the floor (an untrained model may predict zero or less) a linear term, continuous
            # with the log and with a gradient that pushes up, where log(max(pred, floor)) has none
            above = tf.maximum(pred, floor)
            return tf.abs(tf.math.log(above / y)) + tf.maximum(floor - pred, 0.0) / floor

        self.model, self.objective, self.xla = model, objective, xla
        w_delay, w_jitter = OBJECTIVES[objective]
        self.opt = tf.keras.optimizers.Adam(1e-3)
        opt = self.opt

        def step(x, yd, yj, lab):
            with tf.GradientTape() as tape:
                d, j = model(x, training=True)
                n = tf.maximum(tf.reduce_sum(lab), 1.0)
                loss_d = tf.reduce_sum(lab * err(d, yd, 1e-3)) / n
                loss_j = tf.reduce_sum(lab * err(j, yj, JITTER_FLOOR_MS)) / n
                loss = w_delay * loss_d + w_jitter * loss_j
            grads = tape.gradient(loss, model.trainable_variables)
            grads, _ = tf.clip_by_global_norm(grads, 5.0)
            opt.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss_d

        self.step = step if eager else tf.function(step, input_signature=[INPUT_SPEC, *TARGET_SPEC], jit_compile=xla)
        self.twin = Twin(model, xla=False)  # validation shapes vary: one trace, no XLA compiles

    def warm_up(self) -> None:
        """Trace the training and prediction steps (and create the optimizer's slots) on a one-flow
        graph with no label: the gradients are zero, so the weights do not move."""
        g = tiny_graph()
        self._build_variables()
        zero = tf.zeros([1], tf.float32)
        self.step(to_tensors(g), zero, zero, zero)
        self.twin.trace()

    def _build_variables(self) -> None:
        """Create the model's weights and the optimizer's slots outside the trace (a trace that
        creates variables is run twice)."""
        if not self.model.built:
            self.model(to_tensors(tiny_graph()))
        if not self.opt.built:
            self.opt.build(self.model.trainable_variables)

    def _reset_optimizer(self, lr: float) -> None:
        for v in self.opt.variables:
            v.assign(lr if v.path.endswith("learning_rate") else tf.zeros_like(v))

    def fit(self, samples: list[Sample], norm: Normalization | None = None, *, epochs: int = 300,
            budget_s: float = 300.0, patience: int = 20, windows_per_batch: int = 8, lr: float = 1e-3, seed: int = 0,
            progress: bool = True, min_delta: float = 0.0, halve_after: int | None = None) -> TrainResult:
        """Train on `samples` (a validation slice is held back for early stopping) from the model's
        current weights. Training stops after `patience` epochs without progress: a validation MAPE
        `min_delta` (relative) below the one of the last progress. The best weights are kept.
        `halve_after`: halve the learning rate after that many epochs without a new best (down to
        1/32 of `lr`), for long trainings such as the base model's."""
        if not samples:
            raise ValueError("no labeled windows to train on")
        model, objective = self.model, self.objective
        rng = random.Random(seed)
        fit, val = split(samples, held_out=0.15)
        if not val:
            fit, val = samples, samples
        norm = norm or Normalization.fit([graph_tensors([s.snapshot for s in fit])])
        self._build_variables()
        self._reset_optimizer(lr)
        self.twin.norm = norm
        val_batches = [(g, yd if objective == "delay" else yj)
                       for g, yd, yj in (batch(val[i:i + 32]) for i in range(0, len(val), 32))]
        floor = 1e-3 if objective == "delay" else JITTER_FLOOR_MS

        def val_mape() -> float:
            """The objective's MAPE on the validation slice."""
            errs, n = 0.0, 0
            for x, y in val_batches:
                p = self.twin.predict_graph(x)[0 if objective == "delay" else 1]
                m = np.isfinite(y)
                errs += float(np.sum(np.abs(p[m] - y[m]) / np.maximum(y[m], floor)))
                n += int(m.sum())
            return 100.0 * errs / max(n, 1)

        start = time.monotonic()
        best, best_epoch, best_weights, stopped = math.inf, 0, model.get_weights() if model.built else None, "epochs"
        # early stopping as Keras does it: progress is beating the MAPE of the last progress by
        # min_delta, so slow steady gains (0.3 % an epoch) add up instead of resetting the bar
        progress_epoch, progress_ref = 0, math.inf
        rate, halved_at = lr, 0
        history = []
        bar, logged = None, start
        if progress and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=epochs, desc="training", unit="epoch", file=sys.stderr)
        epoch = 0
        for epoch in range(1, epochs + 1):
            losses = [float(self.step(*b)) for b in _batches(fit, norm, windows_per_batch, rng, self.xla)]
            v = val_mape()
            history.append({"epoch": epoch, "train_mape": round(100 * float(np.mean(losses)), 3),
                            "val_mape": round(v, 3)})
            if v < progress_ref * (1.0 - min_delta) or not math.isfinite(progress_ref):
                progress_epoch, progress_ref = epoch, v
            if v < best:
                best, best_epoch, best_weights = v, epoch, model.get_weights()
            elif halve_after and epoch - max(best_epoch, halved_at) >= halve_after and rate > lr / 32:
                rate, halved_at = rate / 2, epoch
                self.opt.learning_rate.assign(rate)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"train {history[-1]['train_mape']:.1f}% val {v:.1f}% best {best:.1f}%")
            elif progress and time.monotonic() - logged >= LOG_EVERY_S:  # a log, not a terminal: a line now and then
                logged = time.monotonic()
                print(f"training: epoch {epoch}, train {history[-1]['train_mape']:.1f} %, val {v:.1f} %, "
                      f"best {best:.1f} % (epoch {best_epoch}), {logged - start:.0f} of {budget_s:.0f} s",
                      file=sys.stderr, flush=True)
            if epoch - progress_epoch >= patience:
                stopped = "early stopping"
                break
            if time.monotonic() - start > budget_s:
                stopped = "time budget"
                break
        if bar is not None:
            bar.close()
        if best_weights is not None:
            model.set_weights(best_weights)
        return TrainResult(model, norm, epoch, best_epoch, round(best, 3), round(time.monotonic() - start, 2),
                           stopped, history)


def train(samples: list[Sample], *, model: RouteNet | None = None, norm: Normalization | None = None,
          state: int = 32, iterations: int = 6, epochs: int = 300, budget_s: float = 300.0, patience: int = 20,
          windows_per_batch: int = 8, lr: float = 1e-3, seed: int = 0, progress: bool = True,
          xla: bool = False, eager: bool = False, objective: str = "delay", min_delta: float = 0.0,
          halve_after: int | None = None, loss: str = "mape") -> TrainResult:
    """Train on `samples` from `model` (warm start) or a new model, once (see `Fitter` to train
    several times with one trace). With `xla` the training step is compiled by XLA once per
    bucketed batch shape; measured on the Abilene dataset that compiling cost more than it saved
    (6 epochs: 80 s with, 26 s without), so it is off. `eager` skips the trace (about 10 s on
    one thread), which pays only for a few epochs."""
    if not samples:
        raise ValueError("no labeled windows to train on")
    tf.keras.utils.set_random_seed(seed)
    fitter = Fitter(model or build_model(state, iterations), objective=objective, xla=xla, eager=eager, loss=loss)
    return fitter.fit(samples, norm, epochs=epochs, budget_s=budget_s, patience=patience,
                      windows_per_batch=windows_per_batch, lr=lr, seed=seed, progress=progress, min_delta=min_delta,
                      halve_after=halve_after)


def data_range(samples: list[Sample]) -> dict[str, Any]:
    runs: dict[str, list[int]] = {}
    for s in samples:
        runs.setdefault(s.run, []).append(s.window)
    return {r: [min(w), max(w)] for r, w in runs.items()}
