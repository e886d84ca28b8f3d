"""A what-if request and its answer as typed models (pydantic): the service's OpenAPI document
shows them, the command line reads its JSON file through the same model, so a request is
validated once, wherever it comes from. Requests reject unknown fields; a bad one is one line
naming the field (`one_line`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .intents import Intent, parse_intent
from .scenarios import SCENARIOS, RoutingPolicy, Scenario

MAX_SNAPSHOT_ID = 2 ** 53 - 1  # exact in JSON Schema (a float); SQLite takes up to 2 ** 63 - 1


class Slo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    latency_ms: float | None = Field(None, gt=0, allow_inf_nan=False)
    jitter_ms: float | None = Field(None, gt=0, allow_inf_nan=False)
    loss_pct: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    flow_latency_ms: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="per-flow latency budgets (flow key -> ms), over latency_ms for those flows")
    propagation_margin_ms: float | None = Field(None, ge=0, allow_inf_nan=False, description=(
        "a flow with no other budget may take its path's propagation delay plus this (the SLA policy's default)"))

    def budget(self, flow_key: str, propagation_ms: float | None = None) -> float:
        """The flow's latency budget in ms on a path with this propagation delay (infinite when
        no SLO applies to it)."""
        b = self.flow_latency_ms.get(flow_key, self.latency_ms)
        if b is None and self.propagation_margin_ms is not None and propagation_ms is not None:
            return propagation_ms + self.propagation_margin_ms
        return float("inf") if b is None else float(b)


class WithPolicies(BaseModel):
    """A request checked against intents (`intents.parse_intent` strings), validated on arrival."""

    model_config = ConfigDict(extra="forbid")
    policies: list[str] = Field(default_factory=lambda: ["intent:reachability"], description=(
        "intent:reachability, intent:routing-redundancy, intent:max-utilization[:X]"))

    @field_validator("policies")
    @classmethod
    def _known(cls, policies: list[str]) -> list[str]:
        for p in policies:
            parse_intent(p)
        return policies

    def intents(self) -> list[Intent]:
        return [parse_intent(p) for p in self.policies]


class WhatIfRequest(WithPolicies):
    snapshot_id: int = Field(ge=0, le=MAX_SNAPSHOT_ID, description="a snapshot id from GET /twin/snapshots")
    scenario: Scenario
    slo: Slo = Field(default_factory=Slo)
    routing: RoutingPolicy | None = Field(None, description=(
        "the routing in force at the snapshot (weights, pins), when not the delay-shortest paths"))
    interval_level: float = Field(0.9, gt=0, lt=1, allow_inf_nan=False, description=(
        "level of the predictions' intervals; the decision reads their upper ends"))


def one_line(errors: list[dict[str, Any]]) -> str:
    """pydantic's (or FastAPI's) validation errors as one line: where, what, how many more."""
    if not errors:
        return "malformed request"
    # an unknown key says most about what went wrong (a misspelt option makes others look missing)
    errors = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")
    e = errors[0]
    if e.get("type") == "json_invalid":
        return f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'decode error')})"
    loc = [str(x) for x in e.get("loc", ()) if x != "body"]
    if e.get("type") == "union_tag_invalid":
        loc, msg = [*loc, "type"], (f"unknown scenario type {e.get('ctx', {}).get('tag')!r}; use one of "
                                    f"{', '.join(SCENARIOS)}")
    elif e.get("type") == "union_tag_not_found":
        loc, msg = [*loc, "type"], f"a 'type' is needed, one of {', '.join(SCENARIOS)}"
    else:
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if len(loc) > 1 and loc[0] == "scenario" and loc[1] in SCENARIOS:
            loc = ["scenario", *loc[2:]]  # the tag pydantic puts in the path says nothing new
    where = ".".join(loc) or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {msg}{more}"


def parse_request(data: Any) -> WhatIfRequest:
    """A request from parsed JSON; ValueError with one line for a bad one."""
    try:
        return WhatIfRequest.model_validate(data)
    except ValidationError as exc:
        raise ValueError(one_line(exc.errors())) from None


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
    pre_delay_interval_ms: list[float] | None = None
    post_delay_interval_ms: list[float] | None = None
    post_jitter_interval_ms: list[float] | None = None
    pre_violation: bool
    post_violation: bool
    affected: bool
    lost: bool


class HopPart(BaseModel):
    link: str
    from_node: int = Field(alias="from")
    propagation_ms: float
    queueing_ms: float
    jitter_ms: float
    utilization: float
    flows: int
    attention: float


class Bottleneck(BaseModel):
    link: str
    from_node: int = Field(alias="from")
    queueing_ms: float
    utilization: float
    flows: int
    share: float
    weighing_most: list[dict[str, Any]]


class Explanation(BaseModel):
    """A flow's predicted delay along its path after the scenario: the parts sum to delay_ms."""

    model_config = ConfigDict(populate_by_name=True)
    flow: str
    name: str | None
    summary: str
    delay_ms: float
    jitter_ms: float
    propagation_ms: float
    queueing_ms: float
    hops: list[HopPart]
    bottleneck: Bottleneck


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
    flows: int  # moved or predicted more than 5 % slower or faster
    harmed_flows: int = 0  # of those, lost or more than 5 % closer to their budget: the risk's term


class WhatIfResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
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
    interval_level: float | None = None
    decided_on: str = "point estimates"
    explanations: list[Explanation] = Field(default_factory=list)
    evidence_pack_url: str
    seconds: float
