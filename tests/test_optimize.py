"""The optimizer without a lab: a seeded, overloaded mesh6 run (`tests/seeded.py`), the shipped
base model as the twin, `ndt optimize` and `apps.optimize` in this process. The twin's plan must
score no worse than today's routing or the LP's, the LP must lower the highest utilization, and every
change must be one the controller's routing API accepts and routes the same way."""

from __future__ import annotations

import json

import pytest

from apps.optimize import OptimizeError, network_of, optimize, parse_objective
from apps.optimize.lp import min_max_utilization
from apps.whatif.network import route, utilization
from controller_app.routing import Routing
from topologies.addressing import Plan
from traffic.store import Stores

from .conftest import ndt
from .seeded import base_predict, seed_overloaded_mesh


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    data = tmp_path_factory.mktemp("optimize") / "data"
    return data, seed_overloaded_mesh(data)


@pytest.fixture(scope="module")
def result(store):
    data, snap = store
    out = ndt("optimize", "--data", str(data), "--snapshot", str(snap), "--budget", "5", "--json")
    return json.loads(out.stdout)


def test_the_twins_plan_is_no_worse_than_todays_and_the_lp_relieves_the_hottest_link(result):
    cur, lp, twin = (result[k]["metrics"] for k in ("current", "lp", "twin"))
    assert cur["max_utilization"] > 1.0  # the seeded run overloads a link
    assert lp["max_utilization"] < cur["max_utilization"]
    assert result["lp"]["fractional_max_utilization"] <= lp["max_utilization"] + 1e-6
    order = result["objective"]["minimize"]
    assert [twin[k] for k in order] <= [cur[k] for k in order] and result["better_than_current"]
    # the search starts from the better of today's routing and the LP's: never worse than the LP
    assert [twin[k] for k in order] <= [lp[k] for k in order]
    assert result["search"]["started_from"] in ("lp", "current")
    assert result["twin"]["feasible"] and result["search"]["candidates"] > 10
    assert result["search"]["candidates_per_s"] > 0 and result["search"]["stopped"] in ("budget", "no improvement")
    assert any(f["moved"] for f in result["flows"])


def test_every_change_is_one_the_controller_accepts_and_routes_the_same_way(store, result):
    data, snap = store
    stores = Stores(data)
    _, _, net = network_of(stores, parse_objective({"snapshot_id": snap}))
    routing = Routing(net.topo)
    ch = result["twin"]["changes"]
    policy = routing.with_weights(routing.check_weights(ch["weights"]))
    for p in ch["pins"]:
        policy.pins[f"{p['src']}>{p['dst']}"] = routing.check_pin(p["src"], p["dst"], p["links"], set())
    routing.commit(policy, "test", "the twin's plan")
    moved = {f["flow"]: f for f in result["flows"]}
    for d in net.demands:
        nodes = routing.route(d.src, d.dst, set())
        links = [net.topo.link_between(u, v).id for u, v in zip(nodes, nodes[1:], strict=False)]
        if d.key in moved and moved[d.key]["post_links"] is not None:
            assert links == moved[d.key]["post_links"], (d.key, Plan.host_name(d.src))


def test_the_lp_alone_matches_the_computed_utilization_of_its_rounding(store):
    data, snap = store
    _, _, net = network_of(Stores(data), parse_objective({"snapshot_id": snap}))
    lp = min_max_utilization(net, 3)
    snapshot, _, lost = route(lp.candidate.network(net))
    assert not lost and max(utilization(snapshot).values()) >= lp.fractional_max_utilization - 1e-6


def test_optimize_in_process_counts_candidates_per_second(store):
    data, snap = store
    res = optimize(base_predict(), Stores(data), parse_objective({"snapshot_id": snap, "search": {"budget_s": 2}}))
    assert res["model_version"] == "base" and res["search"]["seconds"] <= 3.0


@pytest.mark.parametrize(("objective", "message"), [
    ({"minimize": ["happiness"]}, "minimize.0: Input should be"),
    ({"policies": ["intent:world-peace"]}, "unknown policy 'intent:world-peace'"),
    ({"search": {"budget_s": 0}}, "search.budget_s"),
    ({"maximize": ["mean_delay"]}, "maximize: Extra inputs are not permitted"),
    ({"slo": {"latency_ms": -3}}, "slo.latency_ms"),
])
def test_a_bad_objective_is_one_clear_line(objective, message):
    with pytest.raises(OptimizeError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_objective(objective)


def test_the_cli_refuses_bad_input_in_one_line(store, tmp_path):
    data, _ = store
    bad = tmp_path / "bad.yaml"
    bad.write_text("minimize: [happiness]\n")
    for args, message in (([str(bad)], "objective: minimize.0"),
                          (["--snapshot", "99999"], "no snapshot 99999"),
                          ([str(tmp_path / "missing.yaml")], "no objective file"),
                          (["--budget", "0"], "--budget must be above 0")):
        r = ndt("optimize", *args, "--data", str(data), check=False)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and message in r.stderr, (args, r.stderr)
