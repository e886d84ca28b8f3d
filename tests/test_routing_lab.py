"""The controller's northbound routing API on a real lab (diamond, relay delays): a weight change
moves a flow off a link, its counters and its measured delay follow it, a revert brings it back;
pins move a pair; changes without the token, or that cannot be applied, leave the routing as it
was."""

from __future__ import annotations

import json

import pytest
import requests

from ptwin.state import token_path

from .conftest import held_lab, ndt, wait_for
from .transfers import ping_rtts

pytestmark = pytest.mark.lab

NORTH, SOUTH = ["L0", "L1"], ["L2", "L3"]  # 4 ms or 10 ms each way from h1 (s1) to h4 (s4)


@pytest.fixture(scope="module")
def diamond(private_run_dir):
    with held_lab("diamond", "--delay-backend", "relay") as lab:
        yield lab


def path(lab) -> list[str]:
    return requests.get(lab.rest + "/path", params={"src": "h1", "dst": "h4"}, timeout=5).json()["links"]


def routing(lab) -> dict:
    return requests.get(lab.rest + "/routing", timeout=5).json()


def ctl(lab, *args: str) -> dict:
    return json.loads(ndt("ctl", "--url", lab.rest, "routing", *args, "--json").stdout)


def ping_flow(lab) -> dict | None:
    """The controller's flow of h1's pings to h4."""
    return next((f for f in requests.get(lab.rest + "/flows", timeout=5).json()
                 if f["src"] == "h1" and f["dst"] == "h4" and f["proto"] == "icmp"), None)


def s1_tx_packets(lab, link: str) -> int:
    return next(p["tx_packets"] for p in requests.get(lab.rest + "/ports", timeout=5).json()
                if p["dpid"] == f"{1:016x}" and p["link"] == link)


def test_a_weight_change_moves_the_flow_its_counters_and_its_delay_and_a_revert_brings_it_back(diamond):
    h4 = diamond.info["hosts"]["h4"]["ip"]
    start = routing(diamond)["version"]
    before = ping_rtts(diamond.host_pid("h1"), h4, count=5)
    assert len(before) == 5 and 8.0 <= min(before) < 20.0, before  # north: 2 x 4 ms
    flow = wait_for(lambda: ping_flow(diamond), what="the ping flow")
    assert flow["links"] == NORTH

    moved = ctl(diamond, "set", "L0=20", "--reason", "test: off L0")
    try:
        assert moved["version"] == start + 1
        assert {"flow": flow["id"], "src": "h1", "dst": "h4", "from": NORTH, "to": SOUTH} in moved["moved"]
        assert path(diamond) == SOUTH and routing(diamond)["weights"] == {"L0": 20.0}
        south_before = s1_tx_packets(diamond, "L2")
        after = ping_rtts(diamond.host_pid("h1"), h4, count=5)
        assert len(after) == 5 and min(after) >= 20.0, after  # south: 2 x 10 ms
        # the same flow, its rules moved: its counter keeps counting, on the south link's port
        wait_for(lambda: (ping_flow(diamond) or {}).get("packets", 0) >= flow["packets"] + 5,
                 what="the moved flow's counter to grow")
        assert ping_flow(diamond)["id"] == flow["id"] and ping_flow(diamond)["links"] == SOUTH
        wait_for(lambda: s1_tx_packets(diamond, "L2") >= south_before + 5, what="L2's port to carry the pings")
    finally:
        back = ctl(diamond, "revert", str(start))
    assert back["version"] == start + 2 and routing(diamond)["weights"] == {}
    assert path(diamond) == NORTH
    rtts = ping_rtts(diamond.host_pid("h1"), h4, count=3)
    assert len(rtts) == 3 and max(rtts) < 20.0, rtts
    history = ctl(diamond, "show")["history"]
    assert [(v["version"], v["reason"]) for v in history[-2:]] == [
        (start + 1, "test: off L0"), (start + 2, f"revert to version {start}")]
    assert history[-1]["by"] == "cli"


def test_a_pin_moves_the_pair_and_unpinning_returns_it(diamond):
    pinned = ctl(diamond, "pin", "h1", "h4", "L2,L3")
    try:
        assert path(diamond) == SOUTH
        assert routing(diamond)["pins"] == [{"src": "h1", "dst": "h4", "links": SOUTH, "flow": None, "active": True}]
        assert ctl(diamond, "show", str(pinned["version"]))["pins"][0]["links"] == SOUTH
    finally:
        ctl(diamond, "unpin", "h1", "h4")
    assert path(diamond) == NORTH and routing(diamond)["pins"] == []


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"Authorization": "Bearer nope"}, 403)])
def test_a_change_without_the_token_is_refused_and_changes_nothing(diamond, headers, status):
    before = routing(diamond)
    r = requests.post(diamond.rest + "/routing/weights", json={"weights": {"L0": 20}}, headers=headers, timeout=5)
    assert r.status_code == status and "token" in r.json()["error"]
    assert routing(diamond) == before and path(diamond) == NORTH


@pytest.mark.parametrize(("url", "body", "message"), [
    ("/routing/pins", {"src": "h1", "dst": "h4", "links": ["L0", "L3"]}, "not connected"),
    ("/routing/pins", {"src": "h1", "dst": "h9", "links": NORTH}, "unknown host 'h9'"),
    ("/routing/pins", {"flow": 99999, "links": NORTH}, "unknown flow 99999"),
    ("/routing/weights", {"weights": {"L0": 5, "L9": 1}}, "unknown link 'L9'"),
    ("/routing/weights", {"weights": {"L0": -1}}, "above 0"),
    ("/routing/revert", {"version": 99999}, "no routing version 99999"),
])
def test_a_change_that_cannot_be_applied_is_refused_with_a_reason_and_changes_nothing(diamond, url, body, message):
    before = routing(diamond)
    token = token_path().read_text().strip()
    r = requests.post(diamond.rest + url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.status_code == 400 and message in r.json()["error"], r.text
    assert routing(diamond) == before and path(diamond) == NORTH


def test_the_cli_says_what_is_wrong_in_one_line(diamond):
    r = ndt("ctl", "--url", diamond.rest, "routing", "pin", "h1", "h4", "L0,L3", check=False)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "not connected" in r.stderr, r.stderr
