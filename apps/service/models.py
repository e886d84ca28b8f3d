"""The twin service's request and response models (pydantic), with the what-if engine's own
(`apps.whatif.request`): they are its OpenAPI document.
Requests reject unknown fields, so a misspelt key is a 422, not a silently ignored option, and their
booleans are strict (a 0 or "yes" is a 422: schemathesis found `promote: 0` accepted)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

MODEL_REF = r"^(registry://)?(delay:)?v[0-9]+$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong, in one line")


ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)}


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


# -- model operations' answers -------------------------------------------------------------------
class Open(BaseModel):
    """An answer whose known fields are typed and documented; fields added later pass through."""

    model_config = ConfigDict(extra="allow")


class ModelRecord(Open):
    uri: str
    version: str
    objective: str
    status: str
    created_at: float
    parent: str | None
    config: dict[str, Any]
    data_range: Any = None
    metrics: dict[str, Any] | None = Field(None, description="vtwin.lifecycle's record: held_out, parent, mm1, "
                                                            "training")
    weights_bytes: int


class Decision(Open):
    id: str
    at: float
    at_iso: str
    kind: str
    subject: str
    decision: str
    evidence: dict[str, Any]
    pack: str | None = None


class Deployment(Open):
    id: str
    uri: str
    baseline: str | None
    strategy: str
    weight: float | None
    thresholds: dict[str, Any]
    status: str
    created_at: float
    ended_at: float | None
    evidence_pack_url: str


class DeploymentDetail(Deployment):
    decisions: list[Decision]


class TrainResponse(Open):
    run_id: str
    model_uri: str
    status: str
    metrics: dict[str, Any]
    training: dict[str, Any]
    dataset: dict[str, Any]


class MonitorResponse(Open):
    deployment: Deployment
    decision: str
    rolled_back: bool
    evidence: dict[str, Any]
    decision_id: str


class RollbackResponse(Open):
    rolled_back: str
    active: str | None
    deployment: Deployment | None
    decision_id: str


class OptimizedConfiguration(BaseModel):
    metrics: dict[str, float]
    intents: list[dict[str, Any]]
    feasible: bool
    changes: dict[str, Any] = Field(description="weights by link id and pins by host pair: what PUT /routing takes")


class OptimizeResponse(BaseModel):
    id: str
    snapshot_id: int
    run: str
    window: int
    model_version: str
    objective: dict[str, Any]
    current: OptimizedConfiguration
    lp: dict[str, Any] = Field(description="the min-max-utilization LP's configuration (HiGHS), rounded to one "
                                           "path per pair, and its fractional optimum")
    twin: OptimizedConfiguration
    better_than_current: bool
    improvement: dict[str, float]
    flows: list[dict[str, Any]]
    search: dict[str, Any]
    seconds: float


# -- change plans ----------------------------------------------------------------------------------
class Plan(Open):
    id: str
    run_id: str
    snapshot_id: int
    window: int
    state: str = Field(description="proposed, approved, rejected, applied, verified or rolled_back")
    created_at: float
    base_version: int = Field(description="the routing version the plan was made on (and returns to)")
    applied_version: int | None = None
    dir: str = Field(description="plan.md, rollback.yaml, test_matrix.json")
    changes: dict[str, Any]
    policy: dict[str, Any]
    predicted: dict[str, Any]
    whatif: dict[str, Any]
    result: dict[str, Any] | None = None


class PlanTransition(BaseModel):
    at: float
    from_state: str | None
    to_state: str
    by: str
    reason: str | None


class PlanDetail(Plan):
    transitions: list[PlanTransition]


class PlanDecisionBody(Strict):
    reason: str = ""
    by: str | None = Field(None, description="who decides (default: operator:service)")
