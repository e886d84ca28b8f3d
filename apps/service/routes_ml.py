"""Model operations: the registry's models, training, deployments (canary, shadow), monitoring and
rollback with their decisions (the ones that change what serves need the token), and the
Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from .deps import Twin, require_token, twin
from .metrics import CONTENT_TYPE
from .modelops import TrainRequest
from .models import (
    ERRORS,
    Decision,
    DeployBody,
    Deployment,
    DeploymentDetail,
    ModelRecord,
    MonitorBody,
    MonitorResponse,
    RollbackBody,
    RollbackResponse,
    TrainBody,
    TrainResponse,
)
from .serving import OBJECTIVE

router = APIRouter()
guarded = APIRouter(dependencies=[Depends(require_token)], responses=ERRORS)


@router.get("/ml/models", response_model=list[ModelRecord])
def models(t: Twin = Depends(twin)) -> list[dict[str, Any]]:
    return t.serving.registry().list(OBJECTIVE)


@router.get("/ml/deployments", response_model=list[Deployment])
def deployments(t: Twin = Depends(twin)) -> list[dict[str, Any]]:
    return t.ops.deployments()


@router.get("/ml/deployments/{deployment_id}", response_model=DeploymentDetail, responses=ERRORS)
def deployment(deployment_id: str, t: Twin = Depends(twin)) -> dict[str, Any]:
    return {**t.ops.deployment(deployment_id), "decisions": t.ops.decisions(deployment_id)}


@router.get("/ml/decisions", response_model=list[Decision])
def decisions(limit: int = Query(100, ge=1, le=1000), t: Twin = Depends(twin)) -> list[dict[str, Any]]:
    return t.ops.decisions(limit=limit)


@guarded.post("/ml/train", response_model=TrainResponse)
def ml_train(body: TrainBody, t: Twin = Depends(twin)) -> dict[str, Any]:
    d = body.dataset
    return t.ops.train(TrainRequest(runs=d.runs, from_window=d.from_window, to_window=d.to_window,
                                    objective=body.objective, metrics=tuple(body.metrics), budget_s=body.budget_s,
                                    warm_start=body.warm_start, held_out=body.held_out, promote=body.promote))


@guarded.post("/ml/deploy", response_model=Deployment)
def ml_deploy(body: DeployBody, t: Twin = Depends(twin)) -> dict[str, Any]:
    return t.ops.deploy(body.model_uri, body.strategy, body.weight, body.rollback_thresholds.model_dump())


@guarded.post("/ml/monitor", response_model=MonitorResponse)
def ml_monitor(body: MonitorBody, t: Twin = Depends(twin)) -> dict[str, Any]:
    return t.ops.monitor(body.deployment_id, body.windows, body.promote)


@guarded.post("/ml/rollback", response_model=RollbackResponse)
def ml_rollback(body: RollbackBody, t: Twin = Depends(twin)) -> dict[str, Any]:
    return t.ops.rollback(body.deployment_id, body.reason)


@router.get("/metrics", response_class=Response)
def metrics(t: Twin = Depends(twin)) -> Response:
    return Response(t.metrics.render(), media_type=CONTENT_TYPE)
