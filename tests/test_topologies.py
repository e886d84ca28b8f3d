"""Topologies: Zoo loading rules, generator, JSON form, bad input, routing against networkx."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest

from topologies import Topology, TopologyError, load
from topologies.geo import great_circle_km, propagation_delay_ms
from topologies.linkspeed import parse_speed_label
from topologies.routing import path_delay_ms, shortest_path
from topologies.zoo import DEFAULT_CAPACITY_MBPS, DEFAULT_DELAY_MS, load_zoo

from .conftest import ZOO, ndt

ZOO_FILES = sorted(ZOO.glob("*.gml"))


def test_all_ten_zoo_files_are_present():
    assert len(ZOO_FILES) == 10, f"expected the ten Zoo samples in {ZOO}"


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: p.stem)
def test_every_zoo_file_loads_connected(path: Path):
    topo = load_zoo(path)
    g = topo.graph()
    assert nx.is_connected(g)
    assert len(topo.nodes) >= 10 and len(topo.links) >= len(topo.nodes) - 1
    assert all(lk.capacity_mbps > 0 and lk.delay_ms >= 0 for lk in topo.links)
    assert len({n.name for n in topo.nodes}) == len(topo.nodes)


def test_delay_comes_from_great_circle_distance():
    topo = load_zoo(ZOO / "Abilene.gml")
    ny, chicago = topo.node("New York"), topo.node("Chicago")
    km = great_circle_km(ny.lat, ny.lon, chicago.lat, chicago.lon)
    assert 1100 < km < 1200  # New York - Chicago is about 1145 km
    link = topo.link_between(ny.id, chicago.id)
    assert link.delay_ms == pytest.approx(km * 0.005, rel=1e-6)
    assert propagation_delay_ms(1000) == pytest.approx(5.0)


def test_links_without_coordinates_get_the_stated_default():
    topo = load_zoo(ZOO / "Dfn.gml")
    missing = [n.id for n in topo.nodes if not n.has_coordinates]
    assert missing
    touching = [lk for lk in topo.links if lk.a in missing or lk.b in missing]
    assert touching and all(lk.delay_ms == DEFAULT_DELAY_MS for lk in touching)
    assert any("default delay" in note for note in topo.notes)


def test_parallel_edges_merge():
    topo = load_zoo(ZOO / "Uninett2011.gml")  # 98 edges, 2 of them parallel
    assert len(topo.links) == 96
    assert any("merged 2 parallel" in note for note in topo.notes)


def test_capacity_from_link_speed_and_default():
    geant = load_zoo(ZOO / "Geant2012.gml")
    assert {155.0, 1000.0, 10000.0} <= {lk.capacity_mbps for lk in geant.links}
    bics = load_zoo(ZOO / "Bics.gml")  # labels name colours, not speeds
    assert {lk.capacity_mbps for lk in bics.links} == {DEFAULT_CAPACITY_MBPS}


@pytest.mark.parametrize("label,mbps", [("10 Gbit/s", 10000), ("2.5 Gbps", 2500), ("155 Mbps", 155),
                                        ("OC-192c", 9953.28), ("T1", 1.544), ("2-34 Mbit/s", 34),
                                        ("Optic Fiber", None), ("SDH", None)])
def test_speed_labels(label: str, mbps: float | None):
    got = parse_speed_label(label)
    assert got == (pytest.approx(mbps) if mbps is not None else None)


GML_TWO_PARTS = """graph [
  node [ id 0 label "Saint-&quot;Quoted&quot; Town" Latitude 48.0 Longitude 2.0 ]
  node [ id 1 label "K&#248;benhavn; rm -rf /" Latitude 55.6 Longitude 12.5 ]
  node [ id 2 label "Ab" Latitude 50.0 Longitude 5.0 ]
  node [ id 3 label "Island" ]
  node [ id 4 label "Island 2" ]
  edge [ source 0 target 1 ]
  edge [ source 1 target 2 ]
  edge [ source 3 target 4 ]
]
"""


def test_disconnected_file_is_reduced_or_refused(tmp_path: Path):
    f = tmp_path / "parts.gml"
    f.write_text(GML_TWO_PARTS)
    topo = load_zoo(f)
    assert len(topo.nodes) == 3
    assert any("largest component" in note for note in topo.notes)
    assert any("\u00f8" in n.name for n in topo.nodes)  # HTML entity decoded, kept as data
    with pytest.raises(TopologyError, match="disconnected"):
        load_zoo(f, strict=True)


@pytest.mark.parametrize("name,content,match", [
    ("empty.gml", "graph [\n]\n", "empty"),
    ("noedges.gml", "graph [\n node [ id 0 ]\n node [ id 1 ]\n]\n", "no edges"),
    ("notgraph.gml", "hello world\n", "not a GML graph"),
    ("broken.gml", "graph [\n node [ id 0 \n", "not a readable graph"),
    ("broken.graphml", "<graphml><graph><node", "not a readable graph"),
    ("topo.txt", "a b\n", "unknown topology format"),
    ("bad.json", "{\"nodes\": [", "not valid JSON"),
    ("shape.json", "[1, 2]", "must be an object"),
])
def test_bad_files_give_one_clear_error(tmp_path: Path, name: str, content: str, match: str):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(TopologyError, match=match):
        load(str(f))
    r = ndt("topo", "show", str(f), check=False)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("ndt: error:")
    assert "Traceback" not in r.stderr


def test_missing_file_and_unknown_name(tmp_path: Path):
    with pytest.raises(TopologyError, match="not found"):
        load(str(tmp_path / "nope.gml"))
    with pytest.raises(TopologyError, match="unknown topology"):
        load("no-such-topology")


def test_generator_is_reproducible_and_connected():
    a, b = load("random:30:45:7"), load("random:30:45:7")
    assert a.to_dict() == b.to_dict()
    assert len(a.nodes) == 30 and len(a.links) == 45 and nx.is_connected(a.graph())
    assert load("random:30:45:8").to_dict() != a.to_dict()
    for bad in ("random:1:0:1", "random:5:2:1", "random:5:11:1", "random:a:b:c", "random:5"):
        with pytest.raises(TopologyError):
            load(bad)


def test_json_round_trip(tmp_path: Path):
    topo = load("Geant2012")
    f = tmp_path / "g.json"
    f.write_text(topo.to_json())
    assert load(str(f)).to_dict() == topo.to_dict()


def test_validation_refuses_bad_values():
    base = load("line3").to_dict()
    for mutate, match in ((lambda d: d["links"][0].update(capacity_mbps=0), "capacity"),
                          (lambda d: d["links"][0].update(b=9), "unknown node"),
                          (lambda d: d["links"].append(dict(d["links"][0], id="L9")), "parallel")):
        d = json.loads(json.dumps(base))
        mutate(d)
        with pytest.raises(TopologyError, match=match):
            Topology.from_dict(d)


@pytest.mark.parametrize("spec", ["Abilene", "Geant2012", "Uninett2011", "random:40:70:3"])
def test_routing_matches_networkx_delay_shortest_paths(spec: str):
    topo = load(spec)
    g = topo.graph()
    lengths = dict(nx.all_pairs_dijkstra_path_length(g, weight="delay_ms"))
    for s in topo.nodes:
        for d in topo.nodes:
            path = shortest_path(topo, s.id, d.id)
            assert path[0] == s.id and path[-1] == d.id
            assert path_delay_ms(topo, path) == pytest.approx(lengths[s.id][d.id], abs=1e-6)


def test_hop_count_breaks_delay_ties():
    from topologies.model import build

    # 0-3 direct (2 ms) and 0-1-2-3 (0.5 + 0.5 + 1 ms): equal delay, fewer hops wins
    topo = build("tie", list("abcd"), [(0, 3, 10, 2.0), (0, 1, 10, 0.5), (1, 2, 10, 0.5), (2, 3, 10, 1.0)])
    assert shortest_path(topo, 0, 3) == [0, 3]


def test_topo_show_json_has_diameter():
    r = ndt("topo", "show", "Nsfnet", "--json")
    info = json.loads(r.stdout)
    assert info["diameter"]["hops"] >= 3 and info["diameter"]["delay_ms"] > 0
    assert len(info["links"]) == 15
