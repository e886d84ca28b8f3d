"""A real lab on the `diamond` topology: pingall, TCP and UDP, REST against networkx, delay,
link failure and rerouting, capacity change, REST errors, and a second lab refused."""

from __future__ import annotations

import json
import subprocess

import networkx as nx
import pytest
import requests

from topologies import load
from topologies.addressing import Plan

from .conftest import held_lab, ndt, wait_for
from .transfers import ping_rtts, tcp_transfer, udp_transfer

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def diamond(private_run_dir):
    with held_lab("diamond", "--delay-backend", "relay") as lab:
        yield lab


def ip(lab, host: str) -> str:
    return lab.info["hosts"][host]["ip"]


def test_status_reports_backend_and_datapath(diamond):
    st = json.loads(ndt("lab", "status", "--json").stdout)
    assert st["status"] == "ready"
    assert st["info"]["delay_backend"] == "relay"
    assert st["info"]["datapath"] in ("user", "kernel")
    switches = requests.get(diamond.rest + "/switches", timeout=5).json()
    assert [s["dpid"] for s in switches] == [f"{i:016x}" for i in range(1, 5)]
    assert all(s["connected"] for s in switches)


def test_hosts_keep_tcp_senders_from_queueing_data_of_their_own(diamond):
    """Every host limits a TCP socket's unsent bytes (ptwin.lab.TCP_NOTSENT_LOWAT): an overloaded
    sender blocks instead of holding seconds of data that D-ITG would count as network delay."""
    from ptwin.lab import TCP_NOTSENT_LOWAT

    for host in ("h1", "h4"):
        out = subprocess.run(["nsenter", "-t", str(diamond.host_pid(host)), "-n", "sysctl", "-n",
                              "net.ipv4.tcp_notsent_lowat"], capture_output=True, text=True, check=True).stdout
        assert int(out) == TCP_NOTSENT_LOWAT <= 4096


def test_pingall_has_zero_loss(diamond):
    res = json.loads(ndt("lab", "pingall", "--json").stdout)
    assert res["pairs"] == 12 and res["loss_pct"] == 0.0, res["failed"]


def test_rest_paths_equal_networkx_delay_shortest_paths(diamond):
    topo = load("diamond")
    g = topo.graph()
    for s in topo.nodes:
        for d in topo.nodes:
            if s.id == d.id:
                continue
            p = requests.get(diamond.rest + "/path", params={"src": Plan.host_name(s.id),
                                                            "dst": Plan.host_name(d.id)}, timeout=5).json()
            want = nx.dijkstra_path(g, s.id, d.id, weight="delay_ms")
            assert p["nodes"] == want
            assert p["switches"] == [Plan.dpid_str(n) for n in want]
            assert p["links"] == [g.edges[u, v]["id"] for u, v in zip(want, want[1:], strict=False)]


def test_tcp_and_udp_transfers_complete(diamond):
    tcp = tcp_transfer(diamond.host_pid("h1"), diamond.host_pid("h4"), ip(diamond, "h4"), 1_000_000)
    assert tcp["sender_rc"] == 0 and tcp["bytes"] == 1_000_000
    assert tcp["mbps"] < 10.5  # shaped to the 10 Mbit/s link capacity
    udp = udp_transfer(diamond.host_pid("h2"), diamond.host_pid("h3"), ip(diamond, "h3"), count=300)
    assert udp["sender_rc"] == 0 and udp["datagrams"] >= 297, udp


def test_flows_have_paths_counters_and_rates(diamond):
    tcp_transfer(diamond.host_pid("h1"), diamond.host_pid("h4"), ip(diamond, "h4"), 2_000_000, port=5003)
    flows = requests.get(diamond.rest + "/flows", timeout=5).json()
    mine = [f for f in flows if f["proto"] == "tcp" and f["dport"] == 5003 and f["src"] == "h1"]
    assert len(mine) == 1
    f = mine[0]
    assert f["links"] == ["L0", "L1"] and f["path"] == [Plan.dpid_str(0), Plan.dpid_str(1), Plan.dpid_str(3)]
    wait_for(lambda: requests.get(f"{diamond.rest}/flows/{f['id']}", timeout=5).json()["bytes"] >= 2_000_000,
             what="flow byte counter to reach the transfer size")
    ports = requests.get(diamond.rest + "/ports", timeout=5).json()
    assert any(p["link"] == "L0" and p["tx_bytes"] > 2_000_000 for p in ports)


def test_ping_rtt_is_at_least_twice_the_propagation_delay(diamond):
    path = requests.get(diamond.rest + "/path", params={"src": "h1", "dst": "h4"}, timeout=5).json()
    rtts = ping_rtts(diamond.host_pid("h1"), ip(diamond, "h4"), count=5)
    assert len(rtts) == 5
    assert min(rtts) >= 2 * path["delay_ms"], (rtts, path["delay_ms"])


def test_link_down_moves_the_path_and_traffic_still_flows(diamond):
    def links():
        return requests.get(diamond.rest + "/path", params={"src": "h1", "dst": "h4"}, timeout=5).json()["links"]

    assert links() == ["L0", "L1"]
    ndt("lab", "link", "L0", "down")
    try:
        wait_for(lambda: links() == ["L2", "L3"], what="path to move off L0")
        rtts = ping_rtts(diamond.host_pid("h1"), ip(diamond, "h4"), count=3)
        assert len(rtts) == 3 and min(rtts) >= 20.0  # the detour has 10 ms each way
        tcp = tcp_transfer(diamond.host_pid("h1"), diamond.host_pid("h4"), ip(diamond, "h4"), 500_000, port=5004)
        assert tcp["bytes"] == 500_000
        link = {lk["id"]: lk for lk in requests.get(diamond.rest + "/links", timeout=5).json()}["L0"]
        assert link["up"] is False
    finally:
        ndt("lab", "link", "w,n", "up")
    wait_for(lambda: links() == ["L0", "L1"], what="path to return to L0")


def test_capacity_change_reshapes_the_link(diamond):
    ndt("lab", "capacity", "L1", "2")
    try:
        link = {lk["id"]: lk for lk in requests.get(diamond.rest + "/links", timeout=5).json()}["L1"]
        assert link["capacity_mbps"] == 2.0
        tcp = tcp_transfer(diamond.host_pid("h1"), diamond.host_pid("h4"), ip(diamond, "h4"), 400_000, port=5005)
        assert tcp["bytes"] == 400_000 and tcp["mbps"] < 2.3, tcp
    finally:
        ndt("lab", "capacity", "L1", "10")


@pytest.mark.parametrize("query,status", [
    ({"src": "h1"}, 400), ({"src": "h1", "dst": "h99"}, 404), ({"src": "nobody", "dst": "h1"}, 404),
    ({"src": "", "dst": "h1"}, 400),
])
def test_rest_rejects_bad_path_queries(diamond, query, status):
    r = requests.get(diamond.rest + "/path", params=query, timeout=5)
    assert r.status_code == status and "error" in r.json()


def test_rest_unknown_ids(diamond):
    assert requests.get(diamond.rest + "/flows/999999", timeout=5).status_code == 404
    assert requests.get(diamond.rest + "/flows/abc", timeout=5).status_code == 400
    assert requests.post(diamond.rest + "/links/L99", json={"up": False}, timeout=5).status_code == 404
    assert requests.post(diamond.rest + "/links/L0", json={"capacity_mbps": -1}, timeout=5).status_code == 400
    r = ndt("ctl", "path", "h1", "h99", check=False)
    assert r.returncode == 1 and r.stderr.startswith("ndt: error:") and r.stderr.count("\n") == 1


def test_ctl_commands_print_tables_and_json(diamond):
    for what in ("switches", "links", "hosts", "flows", "ports"):
        rows = json.loads(ndt("ctl", what, "--json").stdout)
        assert isinstance(rows, list)
        assert ndt("ctl", what).stdout.strip()
    assert "s1 -> s2 -> s4" in ndt("ctl", "path", "h1", "h4").stdout


def test_second_lab_is_refused(diamond):
    r = ndt("lab", "up", "line3", "--of-port", "16654", "--rest-port", "18081", check=False)
    assert r.returncode == 1
    assert "already running" in r.stderr and r.stderr.count("\n") == 1


def test_a_disconnected_switch_is_reported_and_rerouted_on_return(diamond):
    def connected():
        return {s["name"]: s["connected"] for s in requests.get(diamond.rest + "/switches", timeout=5).json()}

    # s2 lives in one of the lab's own switch daemons: its database is in the lab's status
    daemon = next(d for d in diamond.info["switch_daemons"] if "s2" in d["bridges"])
    vsctl = ["ovs-vsctl", f"--db={daemon['db']}"]
    target = subprocess.run([*vsctl, "get-controller", "s2"], capture_output=True, text=True, check=True).stdout.strip()
    assert target.startswith("unix:")  # the controller's Unix socket, linked into the daemon's run directory
    r = subprocess.run([*vsctl, "del-controller", "s2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        wait_for(lambda: connected()["s2"] is False, what="s2 to show as disconnected")
    finally:
        subprocess.run([*vsctl, "set-controller", "s2", target], check=True)
    wait_for(lambda: connected()["s2"] is True, what="s2 to reconnect")
    res = json.loads(ndt("lab", "pingall", "--json").stdout)
    assert res["loss_pct"] == 0.0, res["failed"]
