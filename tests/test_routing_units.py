"""The controller's routing policy without a lab (`controller_app.routing` over `NetworkState`):
weights move flows, pins are validated whole before anything changes, every change is a version
and any version can be restored; a pinned path with a link down is set aside."""

from __future__ import annotations

import pytest

from controller_app.netstate import FlowKey, NetworkState
from controller_app.routing import Routing, RoutingError
from topologies.resolve import load

# diamond: h1 (w) to h4 (e) over L0,L1 (north, 4 ms) or L2,L3 (south, 10 ms)
NORTH, SOUTH = ["L0", "L1"], ["L2", "L3"]


@pytest.fixture
def net() -> NetworkState:
    state = NetworkState(load("diamond"))
    for sport in (5001, 5002):
        assert state.flow_for(FlowKey("10.0.0.1", "10.0.0.4", 17, sport, 9000)) is not None
    return state


def links_of(net: NetworkState) -> dict[int, list[str]]:
    return {f.id: f.links for f in net.flows.values()}


def test_a_weight_change_moves_the_flows_and_is_a_new_version(net):
    assert set(map(tuple, links_of(net).values())) == {tuple(NORTH)}
    policy = net.routing.with_weights(net.routing.check_weights({"L0": 20.0}))
    planned = net.planned_moves(policy)
    assert [(old, new) for _, old, new in planned] == [([0, 1, 3], [0, 2, 3])] * 2
    assert net.routing_version == 0 and links_of(net)[1] == NORTH  # planning moves nothing
    moved = net.reroute_all("test", "L0 heavier", policy)
    assert len(moved) == 2 and all(f.links == SOUTH for f in net.flows.values())
    assert net.routing_version == 1 and net.path_info("h1", "h4")["links"] == SOUTH
    assert net.routing.versions[-1].reason == "L0 heavier" and net.routing.versions[-1].by == "test"


def test_revert_restores_an_earlier_policy_as_a_new_version(net):
    net.reroute_all("test", "weights", net.routing.with_weights({"L0": 20.0}))
    net.reroute_all("test", "more", net.routing.with_weights({"L1": 30.0}))
    back = net.routing.at_version(0).policy.copy()
    net.reroute_all("test", "revert to 0", back)
    assert net.routing_version == 3 and net.routing.policy.weights == {}
    assert all(f.links == NORTH for f in net.flows.values())
    with pytest.raises(RoutingError, match="no routing version 9"):
        net.routing.at_version(9)


def test_a_pin_moves_its_pair_or_its_flow_only(net):
    pin = net.routing.check_pin("h1", "h4", SOUTH, set())
    net.reroute_all("test", "pin", net.routing.with_pin(pin))
    assert all(f.links == SOUTH for f in net.flows.values())
    net.reroute_all("test", "unpin", net.routing.without_pin("h1>h4"))
    one = net.routing.check_pin("h1", "h4", SOUTH, set(), flow=2)
    net.reroute_all("test", "pin flow 2", net.routing.with_pin(one))
    assert links_of(net) == {1: NORTH, 2: SOUTH}


@pytest.mark.parametrize(("src", "dst", "links", "message"), [
    ("h1", "h4", ["L0", "L3"], "not connected: L3 does not touch s2"),
    ("h1", "h4", ["L0"], "ends at s2, not at s4"),
    ("h1", "h4", ["L0", "L9"], "unknown link 'L9'"),
    ("h1", "h4", ["L0", "L0"], "visits s1 twice"),
    ("h1", "h9", NORTH, "unknown host 'h9'"),
    ("h1", "h4", [], "at least one link"),
])
def test_a_bad_pin_is_refused_with_a_reason(net, src, dst, links, message):
    with pytest.raises(RoutingError, match=message):
        net.routing.check_pin(src, dst, links, set())


def test_a_pin_over_a_down_link_is_refused_and_a_pinned_link_going_down_sets_it_aside(net):
    with pytest.raises(RoutingError, match="uses L3, which is down"):
        net.routing.check_pin("h1", "h4", SOUTH, {"L3"})
    net.reroute_all("test", "pin", net.routing.with_pin(net.routing.check_pin("h1", "h4", SOUTH, set())))
    assert net.set_link("L3", up=False)
    net.reroute_all(reason="L3 down")
    assert all(f.links == NORTH for f in net.flows.values())
    assert net.routing.view({"L3"})["pins"][0]["active"] is False
    assert net.set_link("L3", up=True)
    net.reroute_all(reason="L3 up")
    assert all(f.links == SOUTH for f in net.flows.values())


@pytest.mark.parametrize("weight", [0, -1.0, float("inf"), float("nan"), "5", True])
def test_a_bad_weight_is_refused(weight):
    with pytest.raises(RoutingError, match="above 0"):
        Routing(load("diamond")).check_weights({"L0": weight})


def test_an_unknown_link_weight_is_refused_and_none_drops_a_weight():
    r = Routing(load("diamond"))
    with pytest.raises(RoutingError, match="unknown link 'L7'"):
        r.check_weights({"L7": 1.0})
    r.commit(r.with_weights({"L0": 3.0, "L1": 4.0}), "test", "two")
    assert r.with_weights(r.check_weights({"L0": None})).weights == {"L1": 4.0}
    assert r.with_weights({"L2": 1.0}, replace=True).weights == {"L2": 1.0}
