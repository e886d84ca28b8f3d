"""What is done to a plan, each one recorded transition (`store.PlanStore`) with who or what did it:
approve and reject (an operator, or autonomous policy), apply through the controller's northbound
API (PUT /routing), verify on the measured windows and keep, or roll back to the routing version
in its rollback.yaml.

A plan is stale when the controller's `routing_version` is no longer the one the plan was made on
(a link went down or up, someone changed the routing): approving or applying it is refused and the
routing is left exactly as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from traffic.store import Stores

from .measure import improvement, judged, measured, windows_after, windows_before
from .propose import Gate
from .store import PlanError, PlanStore


class Controller(Protocol):
    """The northbound calls a plan needs (`controller_app.client.ControllerClient`)."""

    def routing(self, history: int = 20) -> dict[str, Any]: ...

    def set_policy(self, weights: dict[str, float], pins: list[dict[str, Any]], reason: str = "") -> dict[str, Any]: ...

    def revert(self, version: int, reason: str = "") -> dict[str, Any]: ...


class StalePlan(PlanError):
    pass


def check_fresh(plan: dict[str, Any], controller: Controller | None) -> None:
    """StalePlan when the network's routing changed since the plan's snapshot."""
    if controller is None:
        return
    now = controller.routing(history=1)["version"]
    if now != plan["base_version"]:
        raise StalePlan(f"plan {plan['id']} is stale: it was made on routing version {plan['base_version']}, "
                        f"the controller is at {now} (the network changed since); optimize again")


def check_running(stores: Stores, plan: dict[str, Any]) -> None:
    """StalePlan when the run that proposed the plan no longer runs (nothing would apply it)."""
    from sync.store import LoopStore

    st = LoopStore(stores).status(plan["run_id"]) or {}
    if st.get("state") not in ("running", "starting"):
        raise StalePlan(f"plan {plan['id']} is stale: its run {plan['run_id']} is {st.get('state', 'unknown')}, "
                        "so nothing would apply it; optimize a running network again")


def decide(stores: Stores, plan_id: str, verdict: str, by: str, reason: str,
           controller: Callable[[], Controller]) -> dict[str, Any]:
    """An operator's decision (`approve` or `reject`): a proposed plan is approved only while its
    run runs and the network is as the plan found it (`controller()` is asked then)."""
    if verdict == "reject":
        return reject(stores, plan_id, by, reason)
    plan = PlanStore(stores).get(plan_id)
    if plan["state"] != "proposed":
        return approve(stores, plan_id, by, reason)  # the state machine's own error
    check_running(stores, plan)
    return approve(stores, plan_id, by, reason, controller())


def approve(stores: Stores, plan_id: str, by: str, reason: str = "", controller: Controller | None = None
            ) -> dict[str, Any]:
    """Approve a proposed plan (checked fresh against the controller when one is given)."""
    store = PlanStore(stores)
    plan = store.get(plan_id)
    if plan["state"] == "proposed":
        check_fresh(plan, controller)
    return store.transition(plan_id, "approved", by, reason or "approved")


def reject(stores: Stores, plan_id: str, by: str, reason: str = "") -> dict[str, Any]:
    return PlanStore(stores).transition(plan_id, "rejected", by, reason or "rejected")


def apply(stores: Stores, plan_id: str, controller: Controller, by: str, window: int) -> dict[str, Any]:
    """Put an approved plan's policy in force; a stale plan, or one the controller refuses, is
    rejected instead (the routing unchanged)."""
    store = PlanStore(stores)
    plan = store.get(plan_id)
    if plan["state"] != "approved":
        raise PlanError(f"plan {plan_id} is {plan['state']}: only an approved plan is applied")
    try:
        check_fresh(plan, controller)
        answer = controller.set_policy(plan["policy"]["weights"], plan["policy"]["pins"], reason=f"plan {plan_id}")
    except StalePlan as exc:
        return store.transition(plan_id, "rejected", by, str(exc))
    except Exception as exc:  # noqa: BLE001 - the controller's refusal, recorded on the plan
        return store.transition(plan_id, "rejected", by, f"the controller refused it: {exc}")
    return store.transition(plan_id, "applied", by,
                            f"routing version {answer['version']}, {len(answer.get('moved', []))} flow(s) moved",
                            applied_version=answer["version"], applied_at=time.time(), applied_window=window)


def verify(stores: Stores, plan_id: str, controller: Controller, by: str, complete_upto: int,
           final: bool = False) -> dict[str, Any] | None:
    """Measure an applied plan once its test matrix has its windows (or, `final`, whatever the run
    has), then keep it (verified) or roll it back; None while it is still being measured."""
    store = PlanStore(stores)
    plan = store.get(plan_id)
    gate = Gate(**plan["result"]["gate"])
    after_w = windows_after(stores, plan["run_id"], plan["applied_window"], gate, complete_upto, final)
    if len(after_w) < gate.windows and not (final and after_w):
        return None
    before = measured(stores, plan["run_id"], windows_before(stores, plan["run_id"], plan["window"], gate.windows))
    after = measured(stores, plan["run_id"], after_w)
    if after is None:
        return None
    judgement = judged(stores, plan["run_id"], before, after_w, plan["predicted"]["after"], gate, complete_upto, final)
    if judgement is None:
        return None
    keep, reasons, again = judgement
    outcome = {**plan["result"], "measured": {"before": before, "after": after, "again": again},
               "improvement": improvement(before, again or after, plan["predicted"]), "reasons": reasons}
    if keep:
        return store.transition(plan_id, "verified", by, "; ".join(reasons), result=outcome)
    try:
        back = controller.revert(plan["base_version"], reason=f"plan {plan_id} rolled back")
        outcome["rollback_version"] = back["version"]
    except Exception as exc:  # noqa: BLE001 - recorded: the operator must act
        outcome["rollback_error"] = str(exc)
        reasons = [*reasons, f"the revert failed: {exc}"]
    return store.transition(plan_id, "rolled_back", by, "; ".join(reasons), result=outcome)
