"""The weights store as a model registry: every version of every objective with its weights
(bit-exact), configuration, normalization, training data range, metrics, parent and status
(candidate, active, archived, rejected, rolled_back). URIs look like `registry://delay:v3`.
"""

from __future__ import annotations

import io
import json
import re
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from traffic.store import Stores

from .errors import RegistryError
from .features import FLOW_FEATURES, LINK_FEATURES, PAST_READOUT, READOUT, Normalization

if TYPE_CHECKING:  # TensorFlow loads only for a model's weights: listing and promoting need none
    from .model import RouteNet
    from .twin import Twin

STATUSES = ("candidate", "active", "archived", "rejected", "rolled_back")
_URI = re.compile(r"^(?:registry://)?(?:(?P<objective>[a-z_]+):)?(?P<version>v\d+)$")


def parse_uri(uri: str, default_objective: str = "delay") -> tuple[str, str]:
    m = _URI.match(uri.strip())
    if not m:
        raise RegistryError(f"not a model reference: {uri!r}; use registry://delay:v3 or v3")
    return m.group("objective") or default_objective, m.group("version")


def uri(objective: str, version: str) -> str:
    return f"registry://{objective}:{version}"


def weights_blob(model: RouteNet) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, *model.get_weights())
    return buf.getvalue()


def weights_from_blob(blob: bytes) -> list[np.ndarray]:
    with np.load(io.BytesIO(blob)) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


class Registry:
    """The `models` table of weights.db."""

    def __init__(self, stores: Stores) -> None:
        self.db = stores.weights
        stores.create_once("vtwin.registry", lambda: self.db.execute("""CREATE TABLE IF NOT EXISTS models (
            version TEXT PRIMARY KEY, objective TEXT, objective_version TEXT, created_at REAL, parent TEXT, status TEXT,
            weights BLOB, normalization TEXT, data_range TEXT, metrics TEXT, config TEXT)"""))

    def _key(self, objective: str, version: str) -> str:
        return f"{objective}:{version}"

    def register(self, objective: str, model: RouteNet, norm: Normalization, *, data_range: Any = None,
                 metrics: Any = None, parent: str | None = None, status: str = "candidate") -> str:
        with self.db.conn:
            n = self.db.execute("SELECT count(*) FROM models WHERE objective = ?", [objective]).fetchone()[0]
            version = f"v{n + 1}"
            self.db["models"].insert({
                "version": self._key(objective, version), "objective": objective, "objective_version": version,
                "created_at": time.time(), "parent": parent, "status": status, "weights": weights_blob(model),
                "normalization": json.dumps(norm.to_dict()), "data_range": json.dumps(data_range),
                "metrics": json.dumps(metrics), "config": json.dumps({
                    "state": model.state, "iterations": model.iterations, "readout": READOUT,
                    "flow_features": list(FLOW_FEATURES), "link_features": list(LINK_FEATURES)})})
        return version

    def _row(self, objective: str, version: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM models WHERE version = ?", [self._key(objective, version)]))
        if not rows:
            raise RegistryError(f"no model {uri(objective, version)}")
        return rows[0]

    def show(self, objective: str, version: str) -> dict[str, Any]:
        r = self._row(objective, version)
        return {"uri": uri(objective, version), "version": version, "objective": objective, "status": r["status"],
                "created_at": r["created_at"], "parent": r["parent"], "config": json.loads(r["config"]),
                "data_range": json.loads(r["data_range"] or "null"), "metrics": json.loads(r["metrics"] or "null"),
                "weights_bytes": len(r["weights"])}

    def list(self, objective: str | None = None) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT objective, objective_version FROM models" +
                             (" WHERE objective = ?" if objective else "") + " ORDER BY created_at",
                             [objective] if objective else [])
        return [self.show(r["objective"], r["objective_version"]) for r in rows]

    def twin(self, objective: str, version: str, *, xla: bool = True, trace: bool = False) -> Twin:
        """The stored version as a twin (its `meta` is `show`'s record)."""
        from .twin import Twin

        r = self._row(objective, version)
        cfg = json.loads(r["config"])
        norm = json.loads(r["normalization"])
        # models from before a feature was added have no list: their normalization's length tells
        links = cfg.get("link_features") or [f"{len(norm['link_mean'])} features"]
        flows = cfg.get("flow_features") or [f"{len(norm['flow_mean'])} features"]
        if list(links) != list(LINK_FEATURES) or list(flows) != list(FLOW_FEATURES):
            raise RegistryError(f"{uri(objective, version)} was trained on link features {', '.join(links)} and "
                                f"flow features {', '.join(flows)}; this version reads {', '.join(LINK_FEATURES)} and "
                                f"{', '.join(FLOW_FEATURES)}: train a new model")
        if cfg.get("readout", PAST_READOUT) != READOUT:
            raise RegistryError(f"{uri(objective, version)} reads its delays out {cfg.get('readout', PAST_READOUT)}; "
                                f"this version of ndt reads them {READOUT}: train a new model")
        twin = Twin.empty(cfg["state"], cfg["iterations"], xla=xla, trace=trace)
        twin.load(weights_from_blob(r["weights"]), Normalization.from_dict(norm), version)
        twin.meta = self.show(objective, version)
        return twin

    def active(self, objective: str = "delay") -> str | None:
        rows = list(self.db.query("SELECT objective_version FROM models WHERE objective = ? AND status = 'active'",
                                  [objective]))
        return rows[0]["objective_version"] if rows else None

    def set_status(self, objective: str, version: str, status: str) -> None:
        if status not in STATUSES:
            raise RegistryError(f"unknown status {status!r}")
        self._row(objective, version)
        with self.db.conn:
            self._set(objective, version, status)

    def _set(self, objective: str, version: str, status: str) -> None:
        self.db.execute("UPDATE models SET status = ? WHERE version = ?", [status, self._key(objective, version)])

    def promote(self, objective: str, version: str) -> dict[str, Any]:
        """Make `version` the active one; the previously active one is archived."""
        self._row(objective, version)
        before = self.active(objective)
        with self.db.conn:
            if before and before != version:
                self._set(objective, before, "archived")
            self._set(objective, version, "active")
        return {"active": version, "archived": before if before != version else None}

    def rollback(self, objective: str = "delay") -> dict[str, Any]:
        """Mark the active version rolled back and reactivate the one before it (its parent when
        that was archived, else the newest archived version)."""
        cur = self.active(objective)
        if cur is None:
            raise RegistryError(f"no active {objective} model to roll back")
        row = self._row(objective, cur)
        candidates = [r["objective_version"] for r in self.db.query(
            "SELECT objective_version FROM models WHERE objective = ? AND status = 'archived' "
            "ORDER BY created_at DESC", [objective])]
        parent = (row["parent"] or "").rsplit(":", 1)[-1] or None
        target = parent if parent in candidates else (candidates[0] if candidates else None)
        if target is None:
            raise RegistryError(f"no archived {objective} model to roll back to")
        with self.db.conn:
            self._set(objective, cur, "rolled_back")
            self._set(objective, target, "active")
        return {"rolled_back": cur, "active": target}


def held_out_mape(metrics: dict[str, Any] | None, kpi: str = "delay") -> float | None:
    """A registered model's held-out MAPE of `kpi`, from its metrics record (also the records of
    models registered before there was one schema)."""
    m = metrics or {}
    for path in (("held_out", "overall"), ("gnn", "overall"), ("validation", "candidate")):
        node: Any = m
        for key in path:
            node = (node or {}).get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get(f"{kpi}_mape") is not None:
            return node[f"{kpi}_mape"]
    old = (m.get("ml_train") or {}).get(kpi) or {}
    return old.get("mape")
