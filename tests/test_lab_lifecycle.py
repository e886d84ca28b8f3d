"""Lab lifecycle: down removes exactly what the lab made, a dead lab is cleared, a Zoo topology
comes up scaled and routes like networkx, and bad invocations fail with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import networkx as nx
import pytest
import requests

from ptwin import system
from ptwin.state import is_alive
from ptwin.switchd import existing_namespaces
from topologies import load
from topologies.addressing import Plan

from .conftest import ROOT, ndt, wait_for
from .transfers import ping_rtts

pytestmark = pytest.mark.lab


def remaining(state: dict) -> list[str]:
    """Everything the state recorded that still exists, plus host namespaces (by host pid)."""
    left = [f"netns {n}" for n in state["namespaces"] if n in existing_namespaces()]
    present = system.existing_interfaces()
    left += [f"interface {i}" for i in state["interfaces"] if i in present]
    left += [f"process {p['pid']} {p['what']}" for p in state["processes"] if is_alive(p)]
    return left


def test_down_removes_everything_the_lab_created(lab):
    running = lab("line3")
    state = running.state()
    assert state["bridges"] == ["s1", "s2", "s3"]
    assert state["namespaces"] == ["ndt-sw0"]  # the lab's own switch daemon (3 switches, 7 ports)
    assert set(state["interfaces"]) == {"r0-eth0", "r0-eth1", "r1-eth0", "r1-eth1"}  # the relay's
    daemons = [p for p in state["processes"] if p["what"].split()[0] in ("ovs-vswitchd", "ovsdb-server")]
    assert len(daemons) == 2 and all(is_alive(p) for p in daemons)
    switch_ports = subprocess.run(["ip", "-n", "ndt-sw0", "-o", "link"], capture_output=True, text=True).stdout
    assert "s1-eth1" in switch_ports and "s2-eth2" in switch_ports
    hosts = [p for p in state["processes"] if p["what"].startswith("host ")]
    assert len(hosts) == 3 and all(is_alive(p) for p in hosts)
    netns = {os.readlink(f"/proc/{p['pid']}/ns/net") for p in hosts}
    assert len(netns) == 3  # each host has its own network namespace
    out = json.loads(ndt("lab", "down", "--json").stdout)
    assert out["was_running"] is True
    assert remaining(state) == []
    assert not running.state_path.exists()
    assert json.loads(ndt("lab", "status", "--json").stdout)["status"] == "down"
    # a second down is harmless
    assert "no lab" in ndt("lab", "down").stdout


def test_a_dead_lab_is_cleared_by_down(lab):
    running = lab("line3")
    state = running.state()
    daemon = next(p for p in state["processes"] if p["what"] == "lab daemon")
    os.kill(daemon["pid"], signal.SIGKILL)
    wait_for(lambda: not is_alive(daemon), what="the lab daemon to die")
    st = json.loads(ndt("lab", "status", "--json").stdout)
    assert st["status"] == "dead" and "lab down" in st["hint"]
    r = ndt("lab", "up", "line3", check=False)
    assert r.returncode == 1 and "died" in r.stderr
    assert remaining(state)  # switches, hosts and the controller outlived the daemon
    ndt("lab", "down")
    assert remaining(state) == []


def test_zoo_topology_comes_up_scaled_and_routes_like_networkx(lab):
    running = lab("Abilene")
    assert running.info["capacity_scale"] == 0.001  # 9953 Mbit/s links emulated at 9.95 Mbit/s
    res = json.loads(ndt("lab", "pingall", "--json").stdout)
    assert res["pairs"] == 110 and res["loss_pct"] == 0.0, res["failed"]
    topo = load("Abilene")
    g = topo.graph()
    lengths = dict(nx.all_pairs_dijkstra_path_length(g, weight="delay_ms"))
    for s in range(0, len(topo.nodes), 3):
        for d in range(len(topo.nodes)):
            if s == d:
                continue
            p = requests.get(running.rest + "/path", params={"src": Plan.host_name(s), "dst": Plan.host_name(d)},
                             timeout=5).json()
            assert p["delay_ms"] == pytest.approx(lengths[s][d], abs=1e-6)
    # coast to coast: RTT at least twice the propagation delay
    far = max(((s, d) for s in lengths for d in lengths[s]), key=lambda sd: lengths[sd[0]][sd[1]])
    rtts = ping_rtts(running.host_pid(Plan.host_name(far[0])), Plan(topo).hosts[far[1]].ip, count=3)
    assert len(rtts) == 3 and min(rtts) >= 2 * lengths[far[0]][far[1]]


def test_lab_commands_need_root():
    code = ("import os, sys; os.setgid(65534); os.setuid(65534); "
            "from apps.cli import main; sys.exit(main(['lab', 'up', 'line3']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip() == "ndt: error: the lab needs root (Mininet and Open vSwitch): run as root or with sudo"


@pytest.mark.skipif(system.netem_available(), reason="this kernel has netem; the refusal cannot be shown")
def test_netem_backend_refused_without_netem():
    r = ndt("lab", "up", "line3", "--delay-backend", "netem", check=False)
    assert r.returncode == 1 and "no netem" in r.stderr and r.stderr.count("\n") == 1


def test_bad_lab_arguments_give_one_line():
    for args in (["lab", "up", "nosuch"], ["lab", "up", "line3", "--capacity-scale", "-1"],
                 ["lab", "link", "L0", "sideways"], ["ctl", "path", "h1"]):
        r = ndt(*args, check=False)
        assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (args, r.stderr)


def test_missing_packages_give_one_line():
    env = dict(os.environ, PATH="/nonexistent")
    r = subprocess.run([sys.executable, "-m", "apps", "lab", "up", "line3"], capture_output=True, text=True,
                       cwd=ROOT, timeout=60, env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert r.stderr.startswith("ndt: error: missing packages:") and "openvswitch-switch" in r.stderr
