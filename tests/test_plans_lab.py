"""The closed control loop on a real lab: `ndt run --optimize propose` on the diamond with one
overloaded phase (the short path carries 1.4 times its capacity, the detour idles). The SLA
monitor predicts violations, the optimizer proposes a plan, an operator approves it with
`ndt plan approve`, the loop applies it through the controller's northbound API, the flows move
(their snapshots carry the new routing version and paths), and the test matrix's windows decide:
kept when the measured violations and p95 delay did not get worse, else rolled back to the
plan's routing version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import ndt, query_db, start_run, stop_run, take_lab_down, wait_for

pytestmark = pytest.mark.lab

CONGESTED = {"flows": 6, "seed": 2, "phases": [{"profile": "deterministic", "protocol": "udp", "load": 1.4,
                                                "duration_s": 75}]}


@pytest.fixture(scope="module")
def optimized_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("plans-lab") / "data"
    sched = data.parent / "congested.json"
    sched.write_text(json.dumps(CONGESTED))
    # utilization first: computed, not predicted, so a plan is proposed whatever the model's
    # overload error (bench/optimize.py measures the twin's own choice); the lab decides its fate
    objective = data.parent / "objective.yaml"
    objective.write_text("minimize: [max_utilization, slo_violations, mean_delay]\n")
    proc = start_run("diamond", sched, data, "--train-budget", "10", "--optimize", "propose", "--optimize-budget", "2",
                     "--objective", str(objective))
    db = data / "traffic.db"
    try:
        proposed = wait_for(lambda: query_db(db, "SELECT id FROM plans WHERE state = 'proposed'"), timeout=150,
                            what="a proposed plan")
        plan_id = proposed[0][0]
        approved = json.loads(ndt("plan", "approve", plan_id, "--data", str(data), "--reason", "test", "--json").stdout)
        assert approved["state"] == "approved"
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    finally:
        stop_run(proc)
        take_lab_down()
    plan = json.loads(ndt("plan", "show", plan_id, "--data", str(data), "--json").stdout)
    return {"data": data, "db": db, "out": json.loads(out), "plan": plan, "stderr": err}


def test_the_plan_goes_proposed_approved_applied_and_is_kept_or_rolled_back(optimized_run):
    plan = optimized_run["plan"]
    steps = [(t["to_state"], t["by"]) for t in plan["transitions"]]
    assert steps[:3] == [("proposed", "optimizer"), ("approved", steps[1][1]), ("applied", "loop")], steps
    assert steps[1][1].startswith("operator:")
    assert len(steps) == 4 and steps[3][0] in ("verified", "rolled_back") and steps[3][1] == "loop", steps
    res = plan["result"]
    before, after = res["measured"]["before"], res["measured"]["after"]
    assert before["labeled"] > 0 and after["labeled"] > 0 and len(after["windows"]) == res["gate"]["windows"]
    assert min(after["windows"]) > plan["applied_window"] + res["gate"]["settle_windows"] - 1
    worse = after["violation_rate"] > before["violation_rate"] * 1.1 + 0.02 or \
        after["p95_delay_ms"] > before["p95_delay_ms"] * 1.1
    if steps[3][0] == "rolled_back":
        assert res["rollback_version"] == plan["applied_version"] + 1
    else:
        assert not worse
    assert optimized_run["out"]["plans"][steps[3][0]] == 1
    report = json.loads(Path(optimized_run["out"]["report"]["json"]).read_text())
    assert report["plans"]["plans"] == 1 and report["plans"][steps[3][0]] == 1 and report["plans"]["optimizations"] >= 1


def test_the_applied_plan_moved_flows_and_the_snapshots_carry_its_routing_version(optimized_run):
    plan, db = optimized_run["plan"], optimized_run["db"]
    assert plan["applied_version"] == plan["base_version"] + 1
    rows = query_db(db, "SELECT s.window, s.routing_version, f.flow_key, f.links FROM snapshots s "
                        "JOIN snapshot_flows f ON f.snapshot_id = s.id WHERE f.flow_no IS NOT NULL ORDER BY s.window")
    before = {k: links for w, v, k, links in rows if v == plan["base_version"] and w <= plan["window"]}
    after = {k: links for w, v, k, links in rows if v == plan["applied_version"]}
    assert after, "no snapshot under the plan's routing version"
    moved = [k for k in after if k in before and after[k] != before[k]]
    assert moved, "the plan moved no flow"
