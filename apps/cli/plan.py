"""`ndt plan list|show|approve|reject`: the optimizer's change plans and the operator's decision
on them (`apps.plans`). An approved plan is applied by the `ndt run --optimize` that proposed it."""

from __future__ import annotations

import argparse
import getpass
import time
from pathlib import Path
from typing import Any

from apps.common.table import emit, print_table
from traffic.store import Stores

from .base import CliError


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%H:%M:%S", time.localtime(t))


def row(p: dict[str, Any]) -> dict[str, Any]:
    w, pred = p.get("whatif") or {}, p.get("predicted") or {}
    ch = p.get("changes") or {}
    measured = ((p.get("result") or {}).get("measured") or {}).get("after") or {}
    return {"id": p["id"], "state": p["state"], "run": p["run_id"], "window": p["window"],
            "changes": len(ch.get("weights", {})) + len(ch.get("pins", [])),
            "violations": f"{(pred.get('before') or {}).get('violations')} -> "
                          f"{(pred.get('after') or {}).get('violations')}",
            "whatif": f"{w.get('decision')} {w.get('risk_score', 0):.2f}", "measured_p95": measured.get("p95_delay_ms"),
            "created": _when(p["created_at"])}


def _controller():
    from controller_app.client import ControllerClient, ControllerError

    c = ControllerClient(actor=f"operator:{getpass.getuser()}")
    try:
        c.routing(history=1)
    except ControllerError as exc:
        raise CliError(f"cannot check the plan against the network: {exc}") from None
    return c


def cmd_plan(args: argparse.Namespace) -> None:
    from apps.plans import PlanError, PlanStore
    from apps.plans.actions import decide

    stores = Stores(args.data)
    store = PlanStore(stores)
    by = args.by or f"operator:{getpass.getuser()}"
    try:
        if args.op == "list":
            plans = store.list(args.run, tuple(args.state) if args.state else None, args.limit)
            emit([row(p) for p in plans] if not args.json else plans, args.json,
                 lambda rows: print_table(rows, list(rows[0])) if rows else print("no plans"))
            return
        if not args.id:
            raise CliError(f"usage: ndt plan {args.op} ID")
        plan = store.get(args.id)
        if args.op == "show":
            plan["transitions"] = store.transitions(args.id)
            plan_md = Path(plan["dir"]) / "plan.md"

            def render(p: dict[str, Any]) -> None:
                print(plan_md.read_text() if plan_md.exists() else f"(no {plan_md})")
                print("## Transitions\n")
                print_table([{**t, "at": _when(t["at"])} for t in p["transitions"]],
                            ["at", "from_state", "to_state", "by", "reason"])
                res = (p.get("result") or {}).get("measured")
                if res:
                    print(f"\nmeasured before: {res['before']}\nmeasured after:  {res['after']}")
            emit(plan, args.json, render)
            return
        p = decide(stores, args.id, args.op, by, args.reason, _controller)
    except PlanError as exc:
        raise CliError(str(exc)) from None
    emit(row(p), args.json, lambda r: print(f"plan {r['id']} {r['state']}"))


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("plan", help="the optimizer's change plans: list, show, approve, reject")
    t.add_argument("op", choices=("list", "show", "approve", "reject"))
    t.add_argument("id", nargs="?", default=None, metavar="ID")
    t.add_argument("--run", default=None, help="list: only this run's plans")
    t.add_argument("--state", action="append", default=None,
                   choices=("proposed", "approved", "rejected", "applied", "verified", "rolled_back"))
    t.add_argument("--limit", type=int, default=50)
    t.add_argument("--by", default=None, help="who decides (default operator:<user>)")
    t.add_argument("--reason", default="", help="why (recorded with the transition)")
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_plan)
