"""A topology file's own link values: the paper's GML files load with their capacity, delay and
buffer; explicit attributes beat Zoo labels and coordinates; bad values give one clear error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import networkx as nx
import pytest

from topologies import Topology, TopologyError, load
from topologies.zoo import load_zoo

from .conftest import ZOO, ndt

PAPER = ZOO.parent / "robust-ndt" / "topologies"
PAPER_FILES = sorted(PAPER.glob("*.gml"))


def _raw_edges(path: Path) -> tuple[nx.MultiGraph, dict[tuple[int, int], dict]]:
    """The file's edges as networkx reads them, merged as the loader promises (parallel edges:
    capacities add, shorter delay)."""
    g = nx.parse_gml(path.read_text(), label="id")
    merged: dict[tuple[int, int], dict] = {}
    for u, v, d in g.edges(data=True):
        key = (min(u, v), max(u, v))
        if key in merged:
            merged[key]["capacity"] += float(d["capacity"])
            merged[key]["delay"] = min(merged[key]["delay"], float(d["delay"]))
        else:
            merged[key] = {"capacity": float(d["capacity"]), "delay": float(d["delay"])}
    return g, merged


def test_the_papers_five_topologies_are_present():
    names = {p.name for p in PAPER_FILES}
    assert {"germany_50.gml", "5G_crosshaul_51.gml", "HPASSION_128.gml", "PASSION_128.gml"} <= names, PAPER


@pytest.mark.parametrize("path", PAPER_FILES, ids=lambda p: p.stem)
def test_every_paper_file_loads_with_its_own_capacity_delay_and_buffer(path: Path):
    topo = load(str(path))
    g, raw = _raw_edges(path)
    assert len(topo.nodes) == g.number_of_nodes() and len(topo.links) == len(raw)
    ids = sorted(g.nodes)
    for lk in topo.links:
        want = raw[(ids[lk.a], ids[lk.b])]
        assert lk.capacity_mbps == pytest.approx(want["capacity"]), lk
        assert lk.delay_ms == pytest.approx(want["delay"], abs=1e-6), lk
        queues = [g.nodes[ids[e]].get("queueSize") for e in (lk.a, lk.b)]
        assert lk.queue_pkts == (min(queues) if None not in queues else None), lk
    sources = {(v, s): n for v, s, n in topo.sources}
    assert sources[("capacity", "the file's capacity attribute")] == len(g.edges)
    assert sources[("delay", "the file's delay attribute")] == len(g.edges)
    assert sum(n for (v, _), n in sources.items() if v == "buffer") == len(g.edges)


def test_germany_has_its_32_packet_buffers_and_the_papers_value_ranges():
    topo = load(str(PAPER / "germany_50.gml"))
    assert (len(topo.nodes), len(topo.links)) == (50, 88)
    assert {lk.queue_pkts for lk in topo.links} == {32}
    caps = [lk.capacity_mbps for lk in topo.links]
    delays = [lk.delay_ms for lk in topo.links]
    # ../shared/robust-ndt/README.md: Germany 130-250 Mbit/s, 0.51-1.49 ms
    assert (min(caps), max(caps)) == (130, 250)
    assert 0.50 <= min(delays) < 0.52 and 1.48 < max(delays) <= 1.49


def _gml(tmp_path: Path, edges: str, nodes: str = "") -> Path:
    nodes = nodes or "".join(f'  node [ id {i} label "n{i}" ]\n' for i in range(3))
    p = tmp_path / "t.gml"
    p.write_text(f"graph [\n{nodes}{edges}]\n")
    return p


def test_explicit_attributes_beat_speed_labels_and_coordinates(tmp_path):
    nodes = ('  node [ id 0 label "a" Latitude 40.7 Longitude -74.0 queueSize 50 ]\n'
             '  node [ id 1 label "b" Latitude 41.9 Longitude -87.6 queueSize 20 ]\n'
             '  node [ id 2 label "c" Latitude 42.0 Longitude -88.0 ]\n')
    edges = ('  edge [ source 0 target 1 LinkLabel "10 Gbps" bandwidth 100 delay 2.5 ]\n'
             '  edge [ source 1 target 2 LinkLabel "1 Gbps" buffer 64 ]\n')
    topo = load_zoo(_gml(tmp_path, edges, nodes))
    ab, bc = topo.link_between(0, 1), topo.link_between(1, 2)
    assert (ab.capacity_mbps, ab.delay_ms, ab.queue_pkts) == (100, 2.5, 20)  # smaller endpoint buffer
    assert bc.capacity_mbps == 1000 and bc.queue_pkts == 64 and 0 < bc.delay_ms < 1  # label, coordinates
    sources = {(v, s): n for v, s, n in topo.sources}
    assert sources[("capacity", "the file's capacity attribute")] == 1
    assert sources[("capacity", "a Zoo speed field or label")] == 1
    assert sources[("delay", "the great-circle distance between the nodes' coordinates")] == 1
    assert sources[("buffer", "the file's edge queue/buffer attribute")] == 1


def test_an_edge_length_beats_coordinates_and_a_delay_beats_the_length(tmp_path):
    nodes = ('  node [ id 0 label "a" Latitude 40.7 Longitude -74.0 ]\n'
             '  node [ id 1 label "b" Latitude 41.9 Longitude -87.6 ]\n'
             '  node [ id 2 label "c" Latitude 42.0 Longitude -88.0 ]\n')
    edges = ('  edge [ source 0 target 1 dist 200 ]\n'
             '  edge [ source 1 target 2 dist 200 delay 0.3 ]\n')
    topo = load_zoo(_gml(tmp_path, edges, nodes))
    assert topo.link_between(0, 1).delay_ms == pytest.approx(1.0)  # 200 km at 5 us/km, not ~1140 km
    assert topo.link_between(1, 2).delay_ms == pytest.approx(0.3)
    assert ("delay", "the edge's length (dist, km)", 1) in topo.sources
    with pytest.raises(TopologyError, match=r"dist \(km\) -2 is not a number >= 0"):
        load_zoo(_gml(tmp_path, "  edge [ source 0 target 1 dist -2 ]\n  edge [ source 1 target 2 ]\n"))


@pytest.mark.parametrize("attr, message", [
    ("capacity 0", r"capacity \(Mbit/s\) 0 is not a positive number"),
    ("capacity -5", r"capacity \(Mbit/s\) -5 is not a positive number"),
    ('bandwidth "fast"', r"bandwidth \(Mbit/s\) 'fast' is not a positive number"),
    ("capacity 10 delay -1", r"delay \(ms\) -1 is not a number >= 0"),
    ("capacity 10 queue 0", r"queue \(packets\) 0 is not a positive number"),
    ("capacity 10 buffer 2.5", r"buffer \(packets\) 2.5 is not a whole number of packets"),
])
def test_a_bad_attribute_is_one_clear_error_naming_the_edge(tmp_path, attr, message):
    p = _gml(tmp_path, f"  edge [ source 0 target 1 {attr} ]\n  edge [ source 1 target 2 ]\n")
    with pytest.raises(TopologyError, match=r"t\.gml: edge 'n0'-'n1': " + message):
        load_zoo(p)


def test_a_zero_node_buffer_is_refused(tmp_path):
    nodes = '  node [ id 0 label "a" queueSize 0 ]\n  node [ id 1 label "b" ]\n'
    with pytest.raises(TopologyError, match=r"node 'a': queueSize \(packets\) 0 is not a positive number"):
        load_zoo(_gml(tmp_path, "  edge [ source 0 target 1 ]\n", nodes))


def test_buffers_and_sources_survive_the_json_form(tmp_path):
    topo = load(str(PAPER / "germany_50.gml"))
    back = Topology.from_dict(json.loads(topo.to_json()))
    assert back == topo
    data = topo.to_dict()
    data["links"][0]["queue_pkts"] = 0
    with pytest.raises(TopologyError, match="buffer of 0 packets"):
        Topology.from_dict(data)


def test_topo_show_says_where_each_value_came_from():
    out = ndt("topo", "show", str(PAPER / "germany_50.gml"))
    assert re.search(r"^capacity: 88 link\(s\) from the file's capacity attribute$", out.stdout, re.M), out.stdout
    assert re.search(r"^buffer: 88 link\(s\) from the nodes' queueSize attribute$", out.stdout, re.M)
    info = json.loads(ndt("topo", "show", str(PAPER / "germany_50.gml"), "--json").stdout)
    assert {lk["queue_pkts"] for lk in info["links"]} == {32}
    assert {"value": "delay", "source": "the file's delay attribute", "links": 88} in info["sources"]
    bad = ndt("topo", "show", "missing.gml", check=False)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
