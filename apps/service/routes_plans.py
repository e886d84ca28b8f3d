"""The optimizer's change plans over HTTP: read them, and approve or reject one (token). A plan is
approved only while the run that proposed it runs and the network's routing is the version the
plan was made on (the controller is asked); the run applies it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from apps.plans import STATES, PlanStore
from apps.plans.actions import decide
from controller_app.client import ControllerClient

from .deps import Twin, require_token, twin
from .models import ERRORS, Plan, PlanDecisionBody, PlanDetail

router = APIRouter()
guarded = APIRouter(dependencies=[Depends(require_token)], responses=ERRORS)
PLAN_ID = Path(pattern=r"^[0-9a-f]{1,32}$", description="a plan id from GET /plans")


@router.get("/plans", response_model=list[Plan], responses=ERRORS)
def plans(run: str | None = None, state: str | None = Query(None, pattern="^(" + "|".join(STATES) + ")$"),
          limit: int = Query(50, ge=1, le=1000), t: Twin = Depends(twin)) -> list[dict[str, Any]]:
    return PlanStore(t.serving.stores()).list(run, (state,) if state else None, limit)


@router.get("/plans/{plan_id}", response_model=PlanDetail, responses=ERRORS)
def plan(plan_id: str = PLAN_ID, t: Twin = Depends(twin)) -> dict[str, Any]:
    store = PlanStore(t.serving.stores())
    return {**store.get(plan_id), "transitions": store.transitions(plan_id)}


def _decide(t: Twin, plan_id: str, verdict: str, body: PlanDecisionBody) -> dict[str, Any]:
    return decide(t.serving.stores(), plan_id, verdict, body.by or "operator:service", body.reason or verdict,
                  lambda: ControllerClient(actor=body.by or "operator:service"))


@guarded.post("/plans/{plan_id}/approve", response_model=Plan)
def approve(body: PlanDecisionBody, plan_id: str = PLAN_ID, t: Twin = Depends(twin)) -> dict[str, Any]:
    """Approve a proposed plan; the run that proposed it applies it at its next window."""
    return _decide(t, plan_id, "approve", body)


@guarded.post("/plans/{plan_id}/reject", response_model=Plan)
def reject(body: PlanDecisionBody, plan_id: str = PLAN_ID, t: Twin = Depends(twin)) -> dict[str, Any]:
    return _decide(t, plan_id, "reject", body)
