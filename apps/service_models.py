"""The twin service's request and response models (pydantic): they are its OpenAPI document.
Requests reject unknown fields, so a misspelt key is a 422, not a silently ignored option, and their
booleans are strict (a 0 or "yes" is a 422: schemathesis found `promote: 0` accepted)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from .whatif import SCENARIOS

ScenarioType = Literal[SCENARIOS]  # type: ignore[valid-type]
MODEL_REF = r"^(registry://)?(delay:)?v[0-9]+$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong, in one line")


# -- what-if -------------------------------------------------------------------------------------
class Scenario(Strict):
    type: ScenarioType
    targets: list[str | int] = Field(default_factory=list, description="link ids, node ids or names, flow keys")
    changes: list[dict[str, Any]] = Field(default_factory=list, description=(
        "capacity_change: {link, capacity_mbps}; traffic_growth: {factor}; add_link: {a, b, capacity_mbps, "
        "delay_ms}; routing_weight: {link, weight}"))


class Slo(Strict):
    latency_ms: float | None = Field(None, gt=0, allow_inf_nan=False)
    jitter_ms: float | None = Field(None, gt=0, allow_inf_nan=False)
    loss_pct: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)


class WhatIfRequest(Strict):
    snapshot_id: int = Field(ge=0, le=2 ** 53 - 1, description="a snapshot id from GET /twin/snapshots")
    scenario: Scenario
    slo: Slo = Field(default_factory=Slo)
    policies: list[str] = Field(default_factory=lambda: ["intent:reachability"], description=(
        "intent:reachability, intent:routing-redundancy, intent:max-utilization[:X]"))


class NetState(BaseModel):
    flows: int
    lost: int | None = None
    violations: int
    max_utilization: float
    mean_delay_ms: float


class FlowResult(BaseModel):
    flow: str
    src: int
    dst: int
    pre_delay_ms: float | None
    post_delay_ms: float | None
    pre_jitter_ms: float | None
    post_jitter_ms: float | None
    pre_loss_pct: float | None
    post_loss_pct: float | None
    pre_violation: bool
    post_violation: bool
    affected: bool
    lost: bool


class IntentResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    policy: str
    passed: bool = Field(alias="pass")
    detail: str
    cut_pairs: list[list[str]] | None = None
    pairs: list[list[str]] | None = None


class BlastRadius(BaseModel):
    devices: int
    links: int
    flows: int


class WhatIfResponse(BaseModel):
    id: str
    snapshot_id: int
    run: str
    window: int
    model_version: str
    scenario: dict[str, Any]
    slo: dict[str, Any]
    policies: list[str]
    pre_state: NetState
    post_state: NetState
    flows: list[FlowResult]
    intent_results: list[IntentResult]
    blast_radius: BlastRadius
    risk_score: float = Field(ge=0, le=1)
    decision: Literal["APPROVE", "REVIEW", "REJECT"]
    reasons: list[str]
    evidence_pack_url: str
    seconds: float


# -- twin state ----------------------------------------------------------------------------------
class SnapshotSummary(BaseModel):
    id: int
    run: str
    window: int
    t_start: float | None
    t_end: float | None
    phase: int | None
    flows: int | None
    links: int | None


class SnapshotList(BaseModel):
    total: int
    snapshots: list[SnapshotSummary]


class SnapshotDetail(SnapshotSummary):
    topology: str | None
    routing_version: int | None
    flow_rows: list[dict[str, Any]]
    link_rows: list[dict[str, Any]]


class TwinStatus(BaseModel):
    lab: dict[str, Any]
    model: dict[str, Any]
    loop: dict[str, Any] | None
    latest_window: dict[str, Any] | None


# -- model operations ----------------------------------------------------------------------------
class DatasetRange(Strict):
    runs: list[str] | None = Field(None, description="run ids (default: every run)")
    from_window: int | None = None
    to_window: int | None = None


class TrainBody(Strict):
    dataset: DatasetRange = Field(default_factory=DatasetRange)
    objective: Literal["delay", "jitter"] = "delay"
    metrics: list[Literal["mape", "nmse_db", "mae_ms"]] = Field(default_factory=lambda: ["mape", "nmse_db"])
    budget_s: float = Field(60.0, ge=1, le=3600, allow_inf_nan=False, description="training time budget (s)")
    warm_start: str | None = Field(None, pattern=MODEL_REF, description="registry://delay:vN to start from")
    held_out: float = Field(0.2, gt=0, lt=0.9, allow_inf_nan=False)
    promote: StrictBool = False


class Thresholds(Strict):
    max_delay_mape: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_mape_regression: float | None = Field(5.0, ge=0, allow_inf_nan=False)
    max_latency_ms: float | None = Field(100.0, gt=0, allow_inf_nan=False)
    max_drift_score: float | None = Field(0.5, ge=0, le=1, allow_inf_nan=False)


class DeployBody(Strict):
    model_uri: str = Field(pattern=MODEL_REF, description="registry://delay:vN (or vN)")
    strategy: Literal["canary", "shadow"]
    weight: float | None = Field(None, gt=0, le=1, allow_inf_nan=False,
                                 description="canary: share of requests the candidate answers (default 0.1)")
    rollback_thresholds: Thresholds = Field(default_factory=Thresholds)


class MonitorBody(Strict):
    deployment_id: str | None = Field(None, description="default: the running deployment")
    windows: int = Field(20, ge=2, le=10000, description="newest labeled windows to judge on")
    promote: StrictBool = Field(False, description="promote the candidate if the check is healthy")


class RollbackBody(Strict):
    deployment_id: str | None = Field(None, description="default: the running deployment, else the active model")
    reason: str | None = None
