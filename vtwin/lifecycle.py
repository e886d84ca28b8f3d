"""A model's life from samples to the registry, one way for every caller: `ndt train`, the
service's `POST /ml/train` and the closed loop's retraining worker all call `train_and_register`.

It trains on the given windows (warm-started from `spec.warm_start`, whose normalization it keeps,
or from new weights), scores the result on the held-out windows (and the parent on the same
windows, and the M/M/1 baseline when asked), registers the version with one metrics record and
promotes it when asked or when nothing is active yet. The metrics record, as `ndt model list`,
`ndt model show` and `/ml/models` show it:

    held_out: {overall: {delay_mape, delay_nmse_db (ours, / variance), delay_nmse_power_db (the
               paper's, / mean y^2), jitter_mape, jitter_nmse_db, jitter_nmse_power_db, flows},
               groups: [the same per topology and phase], windows, first_window, last_window}
    parent:   the warm start's overall scores on the same windows (None without one)
    mm1:      the M/M/1 baseline's overall scores (None unless asked)
    training: {source, objective, epochs, best_epoch, seconds, stopped, val_mape, train_windows}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .dataset import Sample
from .evaluate import evaluate
from .registry import Registry, parse_uri, uri
from .train import OBJECTIVES, Fitter, data_range

SOURCES = ("cli", "service", "loop")
#: The registry's model family: every model predicts delay and jitter; the training objective
#: only weighs their losses (and is recorded in the metrics).
FAMILY = "delay"


@dataclass
class TrainSpec:
    objective: str = "delay"  # the loss: delay or jitter first (`vtwin.train.OBJECTIVES`)
    source: str = "cli"  # who trains: cli, service or loop
    epochs: int = 300
    budget_s: float = 300.0
    patience: int = 20
    min_delta: float = 0.0
    lr: float = 1e-3
    seed: int = 0
    windows_per_batch: int = 8
    state: int = 32  # the architecture of a model trained from new weights
    iterations: int = 6
    eager: bool = False  # skip the training step's trace (pays for a few epochs only)
    warm_start: str | None = None  # a registry reference: start from its weights and normalization
    promote: bool = False  # make the new version active (it is anyway when none is)
    mm1: bool = False  # score the M/M/1 baseline on the held-out windows too
    progress: bool = False

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be {' or '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")


def train_and_register(registry: Registry, train: list[Sample], held: list[Sample], spec: TrainSpec,
                       fitter: Fitter | None = None) -> dict[str, Any]:
    """Train, score, register (and promote); returns {uri, version, status, parent, metrics}.
    `fitter`: a traced one to reuse (the retraining worker's); its architecture must match the
    warm start's, and without a warm start its current weights are the starting point."""
    if not train:
        raise ValueError("no labeled windows to train on")
    held = held or train
    parent = parent_uri = None
    if spec.warm_start:
        objective, version = parse_uri(spec.warm_start)
        parent, parent_uri = registry.twin(objective, version, xla=False), uri(objective, version)
    if fitter is None:
        from .model import build_model
        from .tfload import tf

        tf.keras.utils.set_random_seed(spec.seed)
        model = parent.model if parent else build_model(spec.state, spec.iterations)
        fitter = Fitter(model, objective=spec.objective, eager=spec.eager)
    elif parent is not None:
        if fitter.twin.architecture != parent.architecture:
            raise ValueError(f"the fitter's architecture {fitter.twin.architecture} is not {spec.warm_start}'s")
        fitter.model.set_weights(parent.model.get_weights())
    parent_scores = None
    if parent is not None:  # the parent on the held-out windows, before training moves its weights
        fitter.twin.norm = parent.norm
        parent_scores = evaluate(fitter.twin.predict, held)["overall"]
    res = fitter.fit(train, parent.norm if parent else None, epochs=spec.epochs, budget_s=spec.budget_s,
                     patience=spec.patience, windows_per_batch=spec.windows_per_batch, lr=spec.lr, seed=spec.seed,
                     progress=spec.progress, min_delta=spec.min_delta)
    fitter.twin.norm = res.norm
    scored = evaluate(fitter.twin.predict, held)
    mm1 = None
    if spec.mm1:
        from .baselines import mm1_predict

        mm1 = evaluate(mm1_predict, held)["overall"]
    windows = sorted(s.window for s in held)
    metrics = {
        "held_out": {**scored, "windows": len(held), "first_window": windows[0], "last_window": windows[-1]},
        "parent": parent_scores, "mm1": mm1,
        "training": {"source": spec.source, "objective": spec.objective, "epochs": res.epochs,
                     "best_epoch": res.best_epoch, "seconds": res.seconds, "stopped": res.stopped,
                     "val_mape": res.best_val_mape, "train_windows": len(train)},
        "spec": {k: v for k, v in asdict(spec).items() if k not in ("progress",)},
    }
    version = registry.register(FAMILY, res.model, res.norm, data_range=data_range(train), metrics=metrics,
                                parent=parent_uri)
    status = "candidate"
    if spec.promote or registry.active(FAMILY) is None:
        registry.promote(FAMILY, version)
        status = "active"
    return {"uri": uri(FAMILY, version), "version": version, "status": status, "parent": parent_uri,
            "metrics": metrics}

