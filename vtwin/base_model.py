"""The base model shipped with ndt: a twin trained on a corpus of many networks
(`ndt dataset build base`), so that a loop, a service or a what-if on a network it has never seen
starts from a model rather than from nothing (the paper's planning phase).

It lives in `vtwin/base/` ($NDT_BASE_MODEL names another folder) as two files: `model.npz` (the
weights) and `card.json` (the model card: architecture, feature lists, normalization, the weights'
SHA-256, the corpus it was trained on, training time and held-out scores). `load` checks the card
against the code (feature lists, architecture, weight shapes) and the weights against the card (SHA-256) and raises one
`BaseModelError` line for any mismatch. `save` writes both under temporary names, reads them
back through `load`, and only then renames them into place (weights first, the card last), so a
failed or corrupt build never replaces a good base model. `ensure_active` registers it in a data
directory's registry as the active model when there is none (its record's source is "base").
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RegistryError
from .features import FLOW_FEATURES, LINK_FEATURES, PAST_READOUT, READOUT, Normalization
from .registry import Registry

#: The shipped base model; $NDT_BASE_MODEL names another folder (a base model of one's own).
SHIPPED_DIR = Path(__file__).resolve().parent / "base"
WEIGHTS_FILE = "model.npz"
CARD_FILE = "card.json"
OBJECTIVE = "delay"


def base_dir() -> Path:
    env = os.environ.get("NDT_BASE_MODEL")
    return Path(env) if env else SHIPPED_DIR


class BaseModelError(RegistryError):
    """A base model that cannot be used (one clear message)."""


@dataclass
class BaseModel:
    card: dict[str, Any]
    weights: list[np.ndarray]
    norm: Normalization

    @property
    def sha256(self) -> str:
        return self.card["weights"]["sha256"]

    def twin(self, xla: bool = True):
        from .twin import Twin

        arch = self.card["architecture"]
        twin = Twin.empty(arch["state"], arch["iterations"], xla=xla)
        try:
            twin.load(self.weights, self.norm, f"base:{self.sha256[:12]}")
        except ValueError as exc:
            raise BaseModelError(f"base model weights do not fit a model of state {arch['state']}, "
                                 f"{arch['iterations']} iterations: {str(exc).splitlines()[0]}") from None
        twin.meta = {"card": self.card}
        return twin


def available(folder: Path | None = None) -> bool:
    folder = folder or base_dir()
    return (folder / CARD_FILE).exists() and (folder / WEIGHTS_FILE).exists()


def _weights_bytes(weights: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, *weights)
    return buf.getvalue()


def load(folder: Path | None = None) -> BaseModel:
    """The base model in `folder` (default `base_dir()`), checked against its card and the code's features."""
    folder = folder or base_dir()
    card_path, weights_path = folder / CARD_FILE, folder / WEIGHTS_FILE
    if not card_path.exists() or not weights_path.exists():
        raise BaseModelError(f"no base model in {folder} (needs {CARD_FILE} and {WEIGHTS_FILE}); "
                             "build one with 'ndt model base build --data CORPUS'")
    try:
        card = json.loads(card_path.read_text())
        arch, feats, norm = card["architecture"], card["features"], card["normalization"]
        expected = card["weights"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BaseModelError(f"{card_path}: not a base model card ({type(exc).__name__}: {exc})") from None
    if list(feats.get("flow", [])) != list(FLOW_FEATURES) or list(feats.get("link", [])) != list(LINK_FEATURES):
        raise BaseModelError(f"{card_path}: the base model reads flow features {', '.join(feats.get('flow', []))} "
                             f"and link features {', '.join(feats.get('link', []))}; this version of ndt computes "
                             f"{', '.join(FLOW_FEATURES)} and {', '.join(LINK_FEATURES)}: rebuild it "
                             "('ndt model base build')")
    blob = weights_path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise BaseModelError(f"{weights_path}: its SHA-256 {actual[:12]}... is not the card's {expected[:12]}...: "
                             "the weights file is corrupt or not this card's")
    try:
        with np.load(io.BytesIO(blob)) as z:
            weights = [z[f"arr_{i}"] for i in range(len(z.files))]
        normalization = Normalization.from_dict(norm)
    except (OSError, ValueError, KeyError) as exc:
        raise BaseModelError(f"{weights_path}: unreadable ({exc})") from None
    if not isinstance(arch.get("state"), int) or not isinstance(arch.get("iterations"), int):
        raise BaseModelError(f"{card_path}: architecture needs whole 'state' and 'iterations'")
    if arch.get("readout", PAST_READOUT) != READOUT:
        raise BaseModelError(f"{card_path}: the base model reads its delays out {arch.get('readout', PAST_READOUT)}; "
                             f"this version of ndt reads them {READOUT}: rebuild it ('ndt model base build')")
    return BaseModel(card, weights, normalization)


def save(twin, card: dict[str, Any], folder: Path | None = None) -> dict[str, Any]:
    """Write `twin` with `card` (the corpus, training and scores; architecture, features,
    normalization and checksum are filled in here) as the base model in `folder`; return the card."""
    folder = folder or base_dir()
    folder.mkdir(parents=True, exist_ok=True)
    blob = _weights_bytes(twin.model.get_weights())
    card = {**card, "architecture": {"state": twin.model.state, "iterations": twin.model.iterations,
                                      "readout": READOUT},
            "features": {"flow": list(FLOW_FEATURES), "link": list(LINK_FEATURES)},
            "normalization": twin.norm.to_dict(),
            "weights": {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob),
                        "arrays": len(twin.model.get_weights())}}
    staging = folder / ".staging"
    staging.mkdir(exist_ok=True)
    (staging / WEIGHTS_FILE).write_bytes(blob)
    (staging / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")
    check = load(staging)  # what was written reads back and fits the code
    check.twin(xla=False)
    os.replace(staging / WEIGHTS_FILE, folder / WEIGHTS_FILE)
    os.replace(staging / CARD_FILE, folder / CARD_FILE)
    staging.rmdir()
    return card


def ensure_active(registry: Registry, folder: Path | None = None) -> str | None:
    """Make the base model the active one if the registry has no active model: the version it
    already holds from an earlier install, else a new one. Returns the version made active,
    None when the registry already had one."""
    folder = folder or base_dir()
    if registry.active(OBJECTIVE) is not None:
        return None
    base = load(folder)
    for rec in reversed(registry.list(OBJECTIVE)):
        training = (rec.get("metrics") or {}).get("training") or {}
        if training.get("source") == "base" and training.get("base_sha256") == base.sha256:
            registry.promote(OBJECTIVE, rec["version"])
            return rec["version"]
    twin = base.twin(xla=False)
    card = base.card
    metrics = {"held_out": card.get("held_out"), "unseen": card.get("unseen"),
               "training": {"source": "base", "base_sha256": base.sha256, "installed_at": time.time(),
                            "card": str(folder / CARD_FILE), "corpus": (card.get("corpus") or {}).get("spec"),
                            "seconds": (card.get("training") or {}).get("seconds")}}
    version = registry.register(OBJECTIVE, twin.model, twin.norm, metrics=metrics, status="candidate",
                                data_range={"corpus": card.get("corpus")})
    registry.promote(OBJECTIVE, version)
    return version


def build(train: list, held: list, *, corpus: dict[str, Any], unseen: list | None = None, state: int = 32,
          iterations: int = 6, epochs: int = 1000, budget_s: float = 1800.0, patience: int = 40,
          halve_after: int | None = 10, loss: str = "mape",
          seed: int = 0, progress: bool = True, folder: Path | None = None, command: str = "") -> dict[str, Any]:
    """Train the base model on `train` (samples of the corpus), score it on `held` (the corpus'
    windows held out by time) and `unseen` (networks not in the corpus), and save it with its card
    in `folder` (default `base_dir()`); returns the card."""
    from .baselines import mm1_predict
    from .dataset import steady
    from .evaluate import evaluate, evaluate_by_load, label_floor
    from .train import train as fit
    from .twin import Twin

    if not train or not held:
        raise BaseModelError("the corpus has no labeled windows to train on and hold out; build it first "
                             "('ndt dataset build base')")
    res = fit(train, state=state, iterations=iterations, epochs=epochs, budget_s=budget_s, patience=patience,
              seed=seed, progress=progress, halve_after=halve_after, loss=loss)
    twin = Twin(res.model, res.norm, xla=False)
    scores = evaluate(twin.predict, held)
    card: dict[str, Any] = {
        "name": "ndt-base", "objective": OBJECTIVE, "created_at": time.time(),
        "corpus": {**corpus, "topologies": sorted({s.topology for s in train}), "train_windows": len(train),
                   "train_labeled_flows": sum(s.labeled for s in train), "held_out_windows": len(held),
                   "held_out_labeled_flows": sum(s.labeled for s in held)},
        "training": {"seconds": res.seconds, "epochs": res.epochs, "best_epoch": res.best_epoch,
                     "stopped": res.stopped, "val_mape": res.best_val_mape, "budget_s": budget_s,
                     "patience": patience, "halve_lr_after": halve_after, "loss": loss, "seed": seed,
                     "command": command},
        "held_out": {"overall": scores["overall"], "by_load": evaluate_by_load(twin.predict, held),
                     "label_floor": label_floor(held, train),
                     "phase_means": evaluate(twin.predict, steady(held, skip_first=False))["overall"],
                     "mm1": evaluate(mm1_predict, held)["overall"]},
    }
    if unseen:
        card["unseen"] = {}
        for topo in sorted({s.topology for s in unseen}):
            part = [s for s in unseen if s.topology == topo]
            card["unseen"][topo] = {"windows": len(part), **evaluate(twin.predict, part)["overall"],
                                    "label_floor": label_floor(part),
                                    "phase_means": evaluate(twin.predict, steady(part))["overall"]}
    return save(twin, card, folder)
