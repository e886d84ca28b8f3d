"""Change plans and their transitions in traffic.db, behind `PlanStore`: one row per plan (its
state, the snapshot and routing version it was made on, the policy it would put in force, the
twin's and the what-if's verdict, the measured result) and one row per transition (from, to,
when, who or what made it, why). A transition is checked against the plan's state inside one
write transaction, so two deciders (an operator and the loop) cannot both move the same plan.

    proposed -> approved | rejected
    approved -> applied | rejected      (rejected: stale, or the controller refused it)
    applied  -> verified | rolled_back
"""

from __future__ import annotations

import json
import time
from typing import Any

from traffic.store import Stores

STATES = ("proposed", "approved", "rejected", "applied", "verified", "rolled_back")
TRANSITIONS: dict[str, tuple[str, ...]] = {"proposed": ("approved", "rejected"),
                                           "approved": ("applied", "rejected"),
                                           "applied": ("verified", "rolled_back")}
#: States a plan is still open in: the loop proposes no other plan while one is.
OPEN = ("proposed", "approved", "applied")
_JSON = ("policy", "changes", "predicted", "whatif", "result", "objective")


class PlanError(ValueError):
    """A plan that cannot make the asked transition (its state, or the network changed since)."""


class UnknownPlan(PlanError):
    pass


class PlanStore:
    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.db = stores.traffic
        stores.create_once("apps.plans.store", self._create)

    def _create(self) -> None:
        self.db.execute("""CREATE TABLE IF NOT EXISTS plans (
            id TEXT PRIMARY KEY, run_id TEXT, snapshot_id INTEGER, window INTEGER, created_at REAL,
            state TEXT, base_version INTEGER, applied_version INTEGER, applied_at REAL, applied_window INTEGER,
            dir TEXT, objective TEXT, policy TEXT, changes TEXT, predicted TEXT, whatif TEXT, result TEXT,
            updated_at REAL)""")
        self.db.execute("""CREATE TABLE IF NOT EXISTS plan_transitions (
            plan_id TEXT, at REAL, from_state TEXT, to_state TEXT, by TEXT, reason TEXT)""")

    # -- writes -----------------------------------------------------------------------------------
    def add(self, row: dict[str, Any], by: str, reason: str) -> dict[str, Any]:
        now = time.time()
        rec = {**row, "state": "proposed", "created_at": now, "updated_at": now}
        with self.db.conn:
            self.db["plans"].insert(_dump(rec))
            self.db["plan_transitions"].insert({"plan_id": rec["id"], "at": now, "from_state": None,
                                                "to_state": "proposed", "by": by, "reason": reason})
        self._event(rec["run_id"], now, rec["id"], "proposed", by, reason)
        return self.get(rec["id"])

    def _event(self, run_id: str, at: float, plan_id: str, state: str, by: str, reason: str) -> None:
        """Each transition is also one of the run's events (`plan`): the run report counts them."""
        self.stores.event(run_id, at, "plan", {"id": plan_id, "state": state, "by": by, "reason": reason})

    def transition(self, plan_id: str, to: str, by: str, reason: str, **fields: Any) -> dict[str, Any]:
        """Move the plan to `to` (PlanError when its state does not allow it), setting `fields`."""
        now = time.time()
        conn = self.db.conn
        if conn.in_transaction:
            conn.commit()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute("SELECT state FROM plans WHERE id = ?", [plan_id]).fetchall()
            if not rows:
                raise UnknownPlan(f"no plan {plan_id}")
            state = rows[0][0]
            if to not in TRANSITIONS.get(state, ()):
                allowed = TRANSITIONS.get(state)
                raise PlanError(f"plan {plan_id} is {state}: it cannot become {to}"
                                + (f" (only {' or '.join(allowed)})" if allowed else " (that is final)"))
            sets = _dump({**fields, "state": to, "updated_at": now})
            conn.execute(f"UPDATE plans SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                         [*sets.values(), plan_id])
            conn.execute("INSERT INTO plan_transitions (plan_id, at, from_state, to_state, by, reason) "
                         "VALUES (?,?,?,?,?,?)", [plan_id, now, state, to, by, reason])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        plan = self.get(plan_id)
        self._event(plan["run_id"], now, plan_id, to, by, reason)
        return plan

    def update(self, plan_id: str, **fields: Any) -> None:
        """Fields that are not a transition (the measured result so far)."""
        with self.db.conn:
            self.db["plans"].update(plan_id, _dump({**fields, "updated_at": time.time()}))

    # -- reads ------------------------------------------------------------------------------------
    def get(self, plan_id: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM plans WHERE id = ?", [plan_id]))
        if not rows:
            raise UnknownPlan(f"no plan {plan_id}")
        return _load(rows[0])

    def list(self, run_id: str | None = None, states: tuple[str, ...] | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
        where, args = [], []
        if run_id:
            where.append("run_id = ?")
            args.append(run_id)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        sql = "SELECT * FROM plans" + (f" WHERE {' AND '.join(where)}" if where else "")
        return [_load(r) for r in self.db.query(sql + " ORDER BY created_at DESC LIMIT ?", [*args, limit])]

    def transitions(self, plan_id: str) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT at, from_state, to_state, by, reason FROM plan_transitions "
                                  "WHERE plan_id = ? ORDER BY at, rowid", [plan_id]))

    def counts(self, run_id: str | None = None) -> dict[str, int]:
        sql = "SELECT state, COUNT(*) AS n FROM plans" + (" WHERE run_id = ?" if run_id else "") + " GROUP BY state"
        got = {r["state"]: r["n"] for r in self.db.query(sql, [run_id] if run_id else [])}
        return {s: got.get(s, 0) for s in STATES}


def _dump(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v, default=str) if k in _JSON and v is not None else v for k, v in row.items()}


def _load(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in _JSON and isinstance(v, str) else v for k, v in row.items()}
