"""Topologies from the topohub package by name (`topohub:GROUP/NAME`): the SNDlib germany50 and a
Gabriel graph load under the Zoo rules (delays from each edge's length), `ndt topo list` shows
the groups and lists one, and bad names are one error line. No lab needed."""

from __future__ import annotations

import json

import pytest

from topologies import TopologyError, load
from topologies.geo import propagation_delay_ms

from .conftest import ndt

topohub = pytest.importorskip("topohub", reason="topohub is installed by make install")


def test_sndlib_germany50_loads_with_delays_from_its_edge_lengths():
    topo = load("topohub:sndlib/germany50")
    assert (len(topo.nodes), len(topo.links)) == (50, 88)  # as the paper's germany_50
    raw = topohub.get("sndlib/germany50")
    km = {tuple(sorted((e["source"], e["target"]))): e["dist"] for e in raw["edges"]}
    for lk in topo.links:
        assert lk.delay_ms == pytest.approx(propagation_delay_ms(km[lk.a, lk.b]), abs=1e-6), lk
    assert ("delay", "the edge's length (dist, km)", 88) in topo.sources
    assert topo.nodes[0].name == "Aachen" and topo.nodes[0].lat == pytest.approx(50.76)


def test_a_gabriel_graph_keeps_no_plane_positions_as_coordinates():
    topo = load("topohub:gabriel/50/3")
    assert len(topo.nodes) == 50 and all(n.lat is None and n.lon is None for n in topo.nodes)
    assert all(lk.delay_ms > 0 for lk in topo.links)


def test_topo_list_shows_the_groups_and_lists_one():
    rows = json.loads(ndt("topo", "list", "--json").stdout)
    groups = {r["name"] for r in rows if r["name"].startswith("topohub:")}
    assert {"topohub:sndlib/...", "topohub:gabriel/...", "topohub:topozoo/..."} <= groups, groups
    names = {r["name"] for r in json.loads(ndt("topo", "list", "topohub:sndlib", "--json").stdout)}
    assert "topohub:sndlib/germany50" in names and len(names) == 26


@pytest.mark.parametrize("spec", ["topohub:nosuch/x", "topohub:../../etc/passwd", "topohub:"])
def test_bad_topohub_names_are_one_error_line(spec):
    with pytest.raises(TopologyError):
        load(spec)
    r = ndt("topo", "show", spec, check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("ndt: error:"), r.stderr
    r = ndt("topo", "list", "topohub:nosuch", check=False)
    assert r.returncode == 1 and "no topohub group" in r.stderr
