"""The loop's optimization stage (`ndt run --optimize propose|auto`): when the SLA monitor predicts
violations for `trigger_windows` windows in a row and no plan of the run is open, the optimizer
searches the newest snapshot's routing with the serving model (the SLA policy's per-flow budgets
as the SLO, the controller's routing in force as the start) and, when the twin finds a routing
better than today's in the objective's order, the plan is proposed with the what-if engine's
verdict. When it finds none, the wait before the next search doubles, from `cooldown_windows` up
to `max_cooldown_windows`: a twin that keeps predicting violations no routing removes, or that
the lab no longer measures, is not asked every few windows. In `auto` mode a plan the what-if
engine APPROVEs with a risk under `auto_risk` is approved by policy; every other plan waits for
an operator (`ndt plan approve`, POST /plans/{id}/approve, the console). An approved plan is
applied at the next window; an applied one is measured on its test matrix and kept or rolled
back. Each window: `update(window)`, like the loop's other stages.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apps.optimize import Objective, optimize, parse_objective
from apps.optimize import network_of as optimize_network
from apps.whatif.engine import Explain, Predict
from sync.sla import SlaPolicy, SlaStore
from topologies import Topology
from traffic.store import Stores
from traffic.window import Window

from . import actions
from .propose import Gate, propose, what_if
from .store import OPEN, PlanStore

MODES = ("propose", "auto")


@dataclass
class OptimizeConfig:
    mode: str = "propose"
    trigger_windows: int = 2     # windows in a row with predicted violations before the optimizer runs
    cooldown_windows: int = 5    # windows after a plan closes before another is looked for
    max_cooldown_windows: int = 80  # each search in a row that finds nothing doubles the wait, up to this
    auto_risk: float = 0.3       # auto mode approves APPROVE decisions with a risk under this
    budget_s: float = 3.0        # the search's time budget (the loop's windows wait for it)
    objective: dict[str, Any] = field(default_factory=dict)  # minimize, policies, search (the SLO is the SLA's)
    gate: Gate = field(default_factory=Gate)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "trigger_windows": self.trigger_windows, "cooldown_windows": self.cooldown_windows,
                "max_cooldown_windows": self.max_cooldown_windows,
                "auto_risk": self.auto_risk, "budget_s": self.budget_s, "objective": self.objective,
                "gate": self.gate.to_dict()}


class PlanStage:
    def __init__(self, stores: Stores, run_id: str, topo: Topology, controller: actions.Controller,
                 predict: Callable[[], Predict | None], explain: Callable[[], Explain | None], sla: SlaPolicy,
                 config: OptimizeConfig, label_lag_windows: int, say: Callable[[str], None] = lambda m: None) -> None:
        """`predict`/`explain`: the serving model's, when one serves (else None); `label_lag_windows`:
        how many windows a window's labels may take to be complete."""
        self.stores, self.run_id, self.topo, self.controller = stores, run_id, topo, controller
        self.predict, self.explain, self.sla, self.config = predict, explain, sla, config
        self.lag = label_lag_windows
        self.say = say
        self.plans = PlanStore(stores)
        self.sla_store = SlaStore(stores)
        self.link_delay = {lk.id: float(lk.delay_ms) for lk in topo.links}
        self.streak = 0
        self.closed_at = -math.inf
        self.cooldown = config.cooldown_windows
        self.last_window = -1
        self.errors: list[str] = []

    # -- the stage --------------------------------------------------------------------------------
    def update(self, window: Window) -> None:
        self.last_window = window.window
        for plan in self.plans.list(self.run_id, ("approved",)):
            p = actions.apply(self.stores, plan["id"], self.controller, "loop", window.window)
            self.say(f"plan {plan['id']} {p['state']}: {self.plans.transitions(plan['id'])[-1]['reason']}")
        for plan in self.plans.list(self.run_id, ("applied",)):
            self._verify(plan["id"], window.window - self.lag)
        row = self.sla_store.latest(self.run_id)  # the SLA stage, just before this one, wrote this window's
        row = row if row and row["window"] == window.window else None
        self.streak = self.streak + 1 if row and (row.get("predicted_violations") or 0) > 0 else 0
        if self.streak >= self.config.trigger_windows and not self.plans.list(self.run_id, OPEN) \
                and window.window - self.closed_at >= self.cooldown:
            self.streak = 0
            self._optimize(window, row)

    def finish(self) -> None:
        """The run ended: measure applied plans on what the run has."""
        for plan in self.plans.list(self.run_id, ("applied",)):
            self._verify(plan["id"], self.last_window, final=True)

    def _verify(self, plan_id: str, complete_upto: int, final: bool = False) -> None:
        p = actions.verify(self.stores, plan_id, self.controller, "loop", complete_upto, final=final)
        if p is not None:
            self.closed_at = self.last_window
            self.say(f"plan {plan_id} {p['state']}: {self.plans.transitions(plan_id)[-1]['reason']}")

    # -- optimizing -------------------------------------------------------------------------------
    def objective(self, window: Window) -> tuple[Objective, int, dict[str, Any]]:
        return loop_objective(window, self.sla, self.controller, self.config.objective, self.config.budget_s)

    def _optimize(self, window: Window, row: dict[str, Any] | None) -> None:
        predict = self.predict()
        if predict is None or window.snapshot_id is None:
            return
        try:
            obj, version, base = self.objective(window)
            result = optimize(predict, self.stores, obj, optimize_network(self.stores, obj))
        except Exception as exc:  # noqa: BLE001 - the loop goes on; recorded as an event
            self._error(window, f"optimizer: {exc}")
            return
        cur, best = result["current"]["metrics"], result["twin"]["metrics"]
        self.stores.event(self.run_id, window.t_end or 0.0, "optimize",
                          {"window": window.window, "snapshot_id": window.snapshot_id, "current": cur, "twin": best,
                           "lp": result["lp"]["metrics"], "search": result["search"]})
        if not result["better_than_current"]:  # better by the objective's own order
            self.closed_at = window.window
            # predicted violations the routing cannot remove (or the twin's error): look again later
            self.cooldown = min(2 * self.cooldown, self.config.max_cooldown_windows)
            self.say(f"optimizer at window {window.window}: nothing better than today's routing "
                     f"({cur['slo_violations']:g} predicted violations); next look in {self.cooldown} windows")
            return
        self.cooldown = self.config.cooldown_windows
        try:
            ans = what_if(predict, self.stores, result, self.explain())
            plan = propose(self.stores, result, ans, version, base, self.config.gate, "optimizer",
                           f"{row.get('predicted_violations') if row else '?'} predicted violations at window "
                           f"{window.window}; the twin's plan: {cur['slo_violations']:g} -> {best['slo_violations']:g}")
        except Exception as exc:  # noqa: BLE001
            self._error(window, f"plan: {exc}")
            return
        w = plan["whatif"]
        self.say(f"plan {plan['id']} proposed: predicted violations {cur['slo_violations']:g} -> "
                 f"{best['slo_violations']:g}; what-if {w['decision']} (risk {w['risk_score']:.2f}); {plan['dir']}")
        if self.config.mode == "auto":
            if w["decision"] == "APPROVE" and w["risk_score"] < self.config.auto_risk:
                actions.approve(self.stores, plan["id"], "policy:auto",
                                f"what-if APPROVE with risk {w['risk_score']:.2f} < {self.config.auto_risk:g}",
                                self.controller)
                self.say(f"plan {plan['id']} approved by policy (risk {w['risk_score']:.2f})")
            else:
                self.say(f"plan {plan['id']} waits for an operator: what-if {w['decision']}, risk "
                         f"{w['risk_score']:.2f} (auto approves APPROVE under {self.config.auto_risk:g})")

    def _error(self, window: Window, msg: str) -> None:
        self.errors.append(msg)
        self.stores.event(self.run_id, window.t_end or 0.0, "optimize_error", {"window": window.window, "error": msg})
        self.say(msg)
        self.closed_at = window.window


def loop_objective(window: Window, sla: SlaPolicy, controller: actions.Controller, objective: dict[str, Any],
                   budget_s: float) -> tuple[Objective, int, dict[str, Any]]:
    """`objective` (minimize, policies, search) on the window's snapshot, with the SLA policy's
    budgets as the SLO (a flow without a rule of its own takes its path's propagation + margin,
    as the SLA monitor judges it) and the controller's routing in force as the start; with the
    routing version and policy it starts from."""
    budgets = {}
    for f in window.run_flows:
        if f.links:
            budget, source = sla.budget(f.flow_key, f.proto, f.src, f.dst, 0.0)
            if source != "default":
                budgets[f.flow_key] = round(budget, 3)
    routing = controller.routing(history=1)
    base = {"weights": routing["weights"],
            "pins": [{"src": p["src"], "dst": p["dst"], "links": p["links"]} for p in routing["pins"]
                     if p.get("flow") is None and p.get("active", True)]}
    obj = {**objective, "snapshot_id": window.snapshot_id,
           "slo": {**objective.get("slo", {}), "flow_latency_ms": budgets, "propagation_margin_ms": sla.margin_ms},
           "search": {**objective.get("search", {}), "budget_s": budget_s},
           "routing": base if base["weights"] or base["pins"] else None}
    return parse_objective(obj), routing["version"], base
