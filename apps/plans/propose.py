"""A change plan from an optimizer's answer: the policy it would put in force (today's policy with
the twin's changes over it), the what-if engine's verdict on that change (decision, risk, blast
radius, per-flow delays with intervals, its evidence pack) and three files under
<data>/plans/<id>/:

    plan.md           what changes, why, predicted before and after per flow, intents, blast
                      radius, risk, the evidence pack
    rollback.yaml     the routing version to return to (and its policy)
    test_matrix.json  what is measured after applying, for how many windows, and the thresholds
                      that keep the change or roll it back
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from apps.whatif import Answer, WhatIfRequest, answer, save_answer
from apps.whatif.engine import Explain, Predict
from traffic.store import Stores

from .store import PlanStore


@dataclass
class Gate:
    """What is measured after a plan is applied and when it is rolled back (stated, recorded in
    each plan's test matrix)."""

    windows: int = 5            # labeled windows measured after the change (and before it, to compare)
    settle_windows: int = 1     # windows skipped right after the change (flows move mid-window)
    steady_share: float = 0.10  # then settled once the mean delay of 3 windows moves less than this share
    max_settle_windows: int = 30  # ... or after this many windows, settled or not
    margin: float = 0.10        # worse than before by more than this share: roll back
    violation_slack: float = 0.02  # ... and the violation rate by more than this many points
    predicted_margin: float = 1.0  # measured p95 delay over the predicted one by more than this share: roll back
    confirm: bool = True        # a worse measurement is measured again on the next `windows` before rolling back

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merged_policy(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Today's policy (`{weights, pins}` as GET /routing gives it) with the plan's changes over it."""
    weights = {**base.get("weights", {}), **changes.get("weights", {})}
    pins = {(p["src"], p["dst"]): {"src": p["src"], "dst": p["dst"], "links": list(p["links"])}
            for p in base.get("pins", []) if p.get("flow") is None}
    for p in changes.get("pins", []):
        pins[(p["src"], p["dst"])] = {"src": p["src"], "dst": p["dst"], "links": list(p["links"])}
    return {"weights": dict(sorted(weights.items())), "pins": [pins[k] for k in sorted(pins)]}


def what_if(predict: Predict, stores: Stores, result: dict[str, Any], explain: Explain | None = None) -> Answer:
    """The what-if engine's answer to the twin's change on the same snapshot (upper ends of the
    intervals where the run is calibrated)."""
    obj = result["objective"]
    ch = result["twin"]["changes"]
    req = WhatIfRequest.model_validate({
        "snapshot_id": result["snapshot_id"], "slo": obj.get("slo", {}), "policies": obj.get("policies"),
        "routing": obj.get("routing"),
        "scenario": {"type": "routing_change", "weights": ch["weights"],
                     "pins": [{"src": p["src"], "dst": p["dst"], "links": p["links"]} for p in ch["pins"]]}})
    return answer(predict, stores, req, explain=explain)


def _p95(values: list[float]) -> float | None:
    return round(float(np.percentile(values, 95)), 3) if values else None


def predicted(ans: Answer) -> dict[str, Any]:
    r = ans.response.model_dump(by_alias=True)
    pre = [f["pre_delay_ms"] for f in r["flows"] if f["pre_delay_ms"] is not None]
    post = [f["post_delay_ms"] for f in r["flows"] if f["post_delay_ms"] is not None]
    def state(s: dict[str, Any], delays: list[float]) -> dict[str, Any]:
        return {"violations": s["violations"], "p95_delay_ms": _p95(delays), "mean_delay_ms": s["mean_delay_ms"],
                "max_utilization": s["max_utilization"]}

    return {"before": state(r["pre_state"], pre), "after": state(r["post_state"], post)}


def propose(stores: Stores, result: dict[str, Any], ans: Answer, base_version: int, base_policy: dict[str, Any],
            gate: Gate, by: str, reason: str) -> dict[str, Any]:
    """Store the plan as proposed and write its files; returns the stored plan."""
    plan_id = result["id"]
    root = Path(stores.root) / "plans" / plan_id
    root.mkdir(parents=True, exist_ok=True)
    save_answer(Path(stores.root), ans)
    r = ans.response.model_dump(by_alias=True)
    policy = merged_policy(base_policy, result["twin"]["changes"])
    pred = predicted(ans)
    whatif = {"id": r["id"], "decision": r["decision"], "risk_score": r["risk_score"], "reasons": r["reasons"],
              "blast_radius": r["blast_radius"], "intent_results": r["intent_results"], "decided_on": r["decided_on"],
              "evidence": f"reports/whatif/{r['id']}.json", "evidence_pack_url": r["evidence_pack_url"]}
    matrix = test_matrix(plan_id, ans, gate, pred)
    rollback = {"plan": plan_id, "routing_version": base_version, "policy": base_policy,
                "command": f"ndt ctl routing revert {base_version}"}
    (root / "rollback.yaml").write_text(yaml.safe_dump(rollback, sort_keys=False))
    (root / "test_matrix.json").write_text(json.dumps(matrix, indent=1))
    row = {"id": plan_id, "run_id": result["run"], "snapshot_id": result["snapshot_id"], "window": result["window"],
           "base_version": base_version, "dir": str(root), "objective": result["objective"], "policy": policy,
           "changes": result["twin"]["changes"], "predicted": pred, "whatif": whatif,
           "result": {"gate": gate.to_dict(), "optimizer": {k: result[k] for k in ("current", "lp", "twin", "search")}}}
    (root / "plan.md").write_text(plan_markdown(row, result, ans, matrix))
    return PlanStore(stores).add(row, by, reason)


def test_matrix(plan_id: str, ans: Answer, gate: Gate, pred: dict[str, Any]) -> dict[str, Any]:
    r = ans.response.model_dump(by_alias=True)
    flows = [{"flow": f["flow"], "src": f"h{f['src'] + 1}", "dst": f"h{f['dst'] + 1}",
              "predicted_delay_ms": f["post_delay_ms"], "interval_ms": f["post_delay_interval_ms"],
              "budget_ms": round(ans.post_budget(f["flow"]), 3) if ans.post_budget(f["flow"]) < float("inf") else None}
             for f in r["flows"] if f["affected"]]
    return {"plan": plan_id, "windows": gate.windows, "settle_windows": gate.settle_windows,
            "steady_share": gate.steady_share, "max_settle_windows": gate.max_settle_windows,
            "confirm": "a failed test is measured again on the next windows; rolled back if that fails too"
            if gate.confirm else "rolled back on the first failed test",
            "measure": ["slo_violation_rate", "p95_delay_ms", "mean_delay_ms"],
            "pass": {"slo_violation_rate": f"after <= before * {1 + gate.margin:g} + {gate.violation_slack:g}",
                     "p95_delay_ms": f"after <= before * {1 + gate.margin:g}",
                     "vs_predicted": f"after p95 <= predicted p95 ({pred['after']['p95_delay_ms']} ms) * "
                                     f"{1 + gate.predicted_margin:g}"},
            "predicted": pred, "flows": flows}


def _delay(v: float | None, iv: list[float] | None = None) -> str:
    if v is None:
        return "lost"
    return f"{v:.1f}" + (f" [{iv[0]:.1f}, {iv[1]:.1f}]" if iv else "")


def plan_markdown(row: dict[str, Any], result: dict[str, Any], ans: Answer, matrix: dict[str, Any]) -> str:
    r = ans.response.model_dump(by_alias=True)
    ch = row["changes"]
    pb, pa = row["predicted"]["before"], row["predicted"]["after"]
    lines = [f"# Plan {row['id']}: {len(ch['weights']) + len(ch['pins'])} routing change(s)", "",
             f"Snapshot {row['snapshot_id']} (run {row['run_id']}, window {row['window']}), routing version "
             f"{row['base_version']}, model {r['model_version']}.", "", "## What changes", ""]
    lines += [f"- weight of {lid}: {w:g}" for lid, w in ch["weights"].items()]
    lines += [f"- pin {p['src']}->{p['dst']} on {', '.join(p['links'])} ({p['flows']} flow(s))" for p in ch["pins"]]
    lines += ["", "## Why (predicted by the twin)", "",
              "| | SLO violations | p95 delay (ms) | mean delay (ms) | max utilization |", "|---|---|---|---|---|",
              f"| today | {pb['violations']} | {pb['p95_delay_ms']} | {pb['mean_delay_ms']} | "
              f"{pb['max_utilization']} |",
              f"| after the plan | {pa['violations']} | {pa['p95_delay_ms']} | {pa['mean_delay_ms']} | "
              f"{pa['max_utilization']} |"]
    lp = result["lp"]["metrics"]
    lines += [f"| the LP baseline | {lp['slo_violations']:g} | {lp['p95_delay']} | {lp['mean_delay']} | "
              f"{lp['max_utilization']} |", "",
              f"Search: {result['search']['candidates']} candidates in {result['search']['seconds']} s "
              f"({result['search']['candidates_per_s']}/s), stopped on {result['search']['stopped']}.", "",
              "## Flows it moves or changes", "",
              "| flow | predicted before (ms) | predicted after (ms) [interval] | budget (ms) |", "|---|---|---|---|"]
    budgets = {f["flow"]: f["budget_ms"] for f in matrix["flows"]}
    for f in r["flows"]:
        if f["affected"]:
            b = budgets.get(f["flow"])
            lines.append(f"| h{f['src'] + 1}->h{f['dst'] + 1} `{f['flow']}` | {_delay(f['pre_delay_ms'])} | "
                         f"{_delay(f['post_delay_ms'], f['post_delay_interval_ms'])} | "
                         f"{'-' if b is None else f'{b:.1f}'} |")
    lines += ["", "## Intents", ""]
    lines += [f"- {i['policy']}: {'holds' if i['pass'] else 'FAILS'} ({i['detail']})" for i in r["intent_results"]]
    br = r["blast_radius"]
    lines += ["", "## Blast radius and risk", "",
              f"{br['flows']} flow(s), {br['links']} link(s), {br['devices']} device(s). Risk {r['risk_score']:.2f}; "
              f"the what-if engine says **{r['decision']}**:", ""]
    lines += [f"- {x}" for x in r["reasons"]]
    lines += ["", f"Evidence pack: `reports/whatif/{r['id']}.html` (service: {r['evidence_pack_url']}).", "",
              "## Rollback", "", f"Return to routing version {row['base_version']}: `ndt ctl routing revert "
              f"{row['base_version']}` (`rollback.yaml`).", "", "## Test matrix", "",
              f"After applying, {matrix['settle_windows']} window(s) are skipped, then the queues settle (a full "
              "buffer drains for seconds once its link is relieved): measuring starts once the mean delay of 3 "
              f"labeled windows moves less than {matrix['steady_share']:.0%} from the 3 before (at most "
              f"{matrix['max_settle_windows']} windows after the change); then {matrix['windows']} labeled "
              "windows are measured against as many before the change (`test_matrix.json`):", ""]
    lines += [f"- {k}: {v}" for k, v in matrix["pass"].items()]
    if matrix.get("confirm"):
        lines += ["", f"If a test fails: {matrix['confirm']}."]
    return "\n".join(lines) + "\n"
