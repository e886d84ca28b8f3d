"""The lab's switch daemons without a lab: how switches are split among daemons (every switch in
exactly one, at most the asked number of ports each unless one switch has more) and the names
and database each daemon gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptwin.switchd import PORTS_PER_DAEMON, SwitchDaemon, split
from topologies import load

ROBUST = Path(__file__).resolve().parents[2] / "shared" / "robust-ndt" / "topologies"


def ports(topo, nodes) -> int:
    return sum(1 + sum(n in (lk.a, lk.b) for lk in topo.links) for n in nodes)


@pytest.mark.parametrize("spec", ["line3", "diamond", "mesh6", "random:40:60:1"])
@pytest.mark.parametrize("per_daemon", [1, 4, PORTS_PER_DAEMON, 24, 10 ** 9])
def test_every_switch_is_in_exactly_one_daemon_of_about_the_asked_ports(spec, per_daemon):
    topo = load(spec)
    groups = split(topo, per_daemon)
    assert sorted(n for g in groups for n in g) == sorted(n.id for n in topo.nodes)
    assert all(groups)
    for g in groups:  # a group goes over the limit only when one switch alone does
        assert ports(topo, g) <= per_daemon or len(g) == 1
    if per_daemon >= 10 ** 9:
        assert len(groups) == 1


def test_the_papers_networks_at_the_default():
    for name, switches in (("germany_50.gml", 50), ("HPASSION_128.gml", 129)):
        topo = load(str(ROBUST / name))
        groups = split(topo)
        total = ports(topo, [n.id for n in topo.nodes])
        assert len(topo.nodes) == switches
        assert total / PORTS_PER_DAEMON <= len(groups) <= switches  # 226 and 577 ports


def test_a_daemon_names_its_namespace_and_database():
    d = SwitchDaemon(3, Path("/run/ndt/lab/switchd3"), [7, 8])
    assert d.netns == "ndt-sw3" and d.db == "unix:/run/ndt/lab/switchd3/db.sock"
    assert d.vsctl("show")[:2] == ["ovs-vsctl", "--db=unix:/run/ndt/lab/switchd3/db.sock"]
    assert d.to_dict()["bridges"] == ["s8", "s9"]
