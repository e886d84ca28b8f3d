"""An optimization objective, written declaratively (YAML or JSON) and validated once: what to
minimize, in order (lexicographic: a later metric only breaks ties of the earlier ones), the SLO a
flow is held to, the intents every candidate must keep, and the search's budget.

    minimize: [slo_violations, max_utilization, mean_delay]
    slo: {latency_ms: 40}
    policies: [intent:reachability, intent:max-utilization:0.95]
    search: {budget_s: 10, patience: 8, batch: 16, k_paths: 3, seed: 0, moves: [weights, paths]}

Metrics (every one is to be minimized): slo_violations (flows over the SLO, lost flows included),
max_utilization (the highest link direction's offered load over its capacity), mean_delay and
p95_delay (predicted, ms), lost_flows, changes (weights and pins the configuration sets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apps.whatif.request import MAX_SNAPSHOT_ID, Slo, WithPolicies, one_line
from apps.whatif.scenarios import RoutingPolicy

Metric = Literal["slo_violations", "max_utilization", "mean_delay", "p95_delay", "lost_flows", "changes"]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]


class OptimizeError(ValueError):
    """An objective or a request that cannot be optimized (one clear message)."""


class Search(BaseModel):
    model_config = ConfigDict(extra="forbid")
    budget_s: float = Field(10.0, gt=0, le=3600, allow_inf_nan=False, description="stop after this many seconds")
    patience: int = Field(8, ge=1, description="stop after this many rounds without a better candidate")
    batch: int = Field(16, ge=1, le=256, description="candidates the twin evaluates per round, in one batch")
    k_paths: int = Field(3, ge=1, le=10, description="a pair's path moves choose among its k shortest paths")
    seed: int = 0
    moves: list[Literal["weights", "paths"]] = Field(["weights", "paths"], min_length=1)


class Objective(WithPolicies):
    snapshot_id: int | None = Field(None, ge=0, le=MAX_SNAPSHOT_ID, description="the snapshot to optimize")
    minimize: list[Metric] = Field(["slo_violations", "max_utilization", "mean_delay"], min_length=1)
    slo: Slo = Field(default_factory=Slo)
    search: Search = Field(default_factory=Search)
    routing: RoutingPolicy | None = Field(None, description=(
        "the routing in force at the snapshot (weights, pins) the search starts from; default: delay-shortest"))


def parse_objective(data: Any) -> Objective:
    """An objective from parsed YAML or JSON; OptimizeError with one line for a bad one."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise OptimizeError("an objective is a mapping (minimize, slo, policies, search)")
    try:
        return Objective.model_validate(data)
    except ValidationError as exc:
        raise OptimizeError(f"objective: {one_line(exc.errors())}") from None


def read_objective(path: str | Path) -> Objective:
    """An objective file (YAML or JSON, `-` for stdin is the caller's)."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise OptimizeError(f"no objective file {p}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OptimizeError(f"{p}: not valid YAML or JSON ({str(exc).splitlines()[0]})") from None
    return parse_objective(data)
