"""The `Topology` value: nodes, links with capacity and propagation delay, validation, JSON form.

Everything downstream (the lab, the controller, the virtual twin) reads a topology through this
module. Node ids are small integers 0..N-1 in the order the nodes were given; link ids are
"L<index>" in link order. Link endpoints are node ids, stored with `a < b`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import networkx as nx
import numpy as np


class TopologyError(ValueError):
    """A topology that cannot be loaded or is not usable (one clear message)."""


@dataclass(frozen=True)
class Node:
    id: int
    name: str
    lat: float | None = None
    lon: float | None = None

    @property
    def has_coordinates(self) -> bool:
        return self.lat is not None and self.lon is not None


#: Buffer of a link direction without one in its topology (packets). 32 is the queueSize of every
#: node of the paper's germany_50 and of the RouteNet datasets' middle setting; at 10 Mbit/s and
#: 554-byte frames it holds 14 ms, at 1514-byte frames 39 ms: a queue that fills and drops within
#: a window of overload instead of Linux's 1000-packet default, which would hold 0.4-1.2 s. The
#: lab gives it to such links (`--queue`); the virtual twin assumes it where a topology says nothing.
DEFAULT_QUEUE_PKTS = 32


@dataclass(frozen=True)
class Link:
    id: str
    a: int
    b: int
    capacity_mbps: float
    delay_ms: float
    queue_pkts: int | None = None  # buffer per direction, packets; None: the lab's --queue decides


@dataclass(frozen=True)
class Topology:
    name: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    notes: tuple[str, ...] = field(default=())
    # (value, source, links): where each link value came from, e.g. ("delay", "the file's delay attribute", 88)
    sources: tuple[tuple[str, str, int], ...] = field(default=())

    def __post_init__(self) -> None:
        validate(self)

    # -- lookups ---------------------------------------------------------------------------------
    def node(self, ref: int | str) -> Node:
        """A node by id (int or digit string) or by exact name."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            idx = int(ref)
            if 0 <= idx < len(self.nodes):
                return self.nodes[idx]
        for n in self.nodes:
            if n.name == ref:
                return n
        raise TopologyError(f"no node {ref!r} in topology {self.name}")

    def link(self, ref: str) -> Link:
        link = self._by_id.get(ref)
        if link is not None:
            return link
        raise TopologyError(f"no link {ref!r} in topology {self.name}")

    @cached_property
    def _by_id(self) -> dict[str, Link]:
        return {lk.id: lk for lk in self.links}

    @cached_property
    def link_index(self) -> dict[str, int]:
        """Link id -> its position in `links`."""
        return {lk.id: i for i, lk in enumerate(self.links)}

    @cached_property
    def link_ends(self) -> np.ndarray:
        """The links' endpoints (a, b) as an [links, 2] integer array, in `links` order."""
        return np.array([(lk.a, lk.b) for lk in self.links], dtype=np.int64).reshape(len(self.links), 2)

    @cached_property
    def _by_pair(self) -> dict[tuple[int, int], Link]:
        return {(lk.a, lk.b): lk for lk in self.links}

    def link_between(self, u: int, v: int) -> Link:
        link = self._by_pair.get((min(u, v), max(u, v)))
        if link is not None:
            return link
        raise TopologyError(f"no link between nodes {u} and {v} in topology {self.name}")

    def graph(self) -> nx.Graph:
        """An undirected networkx graph; edges carry `id`, `capacity_mbps` and `delay_ms`."""
        g = nx.Graph(name=self.name)
        for n in self.nodes:
            g.add_node(n.id, name=n.name)
        for link in self.links:
            g.add_edge(link.a, link.b, id=link.id, capacity_mbps=link.capacity_mbps,
                       delay_ms=link.delay_ms)
        return g

    def diameter(self) -> dict[str, float]:
        """Hop diameter and delay diameter (largest shortest-path propagation delay, ms)."""
        g = self.graph()
        hops = nx.diameter(g)
        delay = max(max(d.values()) for _, d in nx.all_pairs_dijkstra_path_length(g, weight="delay_ms"))
        return {"hops": hops, "delay_ms": round(delay, 3)}

    # -- JSON form -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nodes": [asdict(n) for n in self.nodes],
            "links": [asdict(link) for link in self.links],
            "notes": list(self.notes),
            "sources": [{"value": v, "source": s, "links": n} for v, s, n in self.sources],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    @staticmethod
    def from_dict(data: Any) -> Topology:
        if not isinstance(data, dict) or "nodes" not in data or "links" not in data:
            raise TopologyError("topology JSON must be an object with 'nodes' and 'links'")
        try:
            nodes = tuple(
                Node(id=int(n["id"]), name=str(n.get("name", n["id"])),
                     lat=_opt_float(n.get("lat")), lon=_opt_float(n.get("lon")))
                for n in data["nodes"]
            )
            links = tuple(
                Link(id=str(lk.get("id", f"L{i}")), a=min(int(lk["a"]), int(lk["b"])),
                     b=max(int(lk["a"]), int(lk["b"])),
                     capacity_mbps=float(lk["capacity_mbps"]), delay_ms=float(lk["delay_ms"]),
                     queue_pkts=_opt_packets(lk.get("queue_pkts")))
                for i, lk in enumerate(data["links"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TopologyError(f"malformed topology JSON: {type(exc).__name__}: {exc}") from None
        return Topology(name=str(data.get("name", "topology")), nodes=nodes, links=links,
                        notes=tuple(str(x) for x in data.get("notes", ())),
                        sources=tuple((str(x["value"]), str(x["source"]), int(x["links"]))
                                      for x in data.get("sources", ()) if isinstance(x, dict)))


def _opt_packets(x: Any) -> int | None:
    if x is None:
        return None
    if isinstance(x, bool) or float(x) != int(float(x)):
        raise ValueError(f"queue_pkts {x!r} is not a whole number of packets")
    return int(float(x))


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


def validate(topo: Topology) -> None:
    """Raise TopologyError unless the topology is usable by the lab and the twin."""
    if not topo.nodes:
        raise TopologyError(f"topology {topo.name} has no nodes")
    if not topo.links:
        raise TopologyError(f"topology {topo.name} has no links")
    for i, n in enumerate(topo.nodes):
        if n.id != i:
            raise TopologyError(f"node ids must be 0..{len(topo.nodes) - 1} in order; node {i} has id {n.id}")
    names = [n.name for n in topo.nodes]
    if len(set(names)) != len(names):
        raise TopologyError(f"topology {topo.name} has duplicate node names")
    seen_ids: set[str] = set()
    seen_pairs: set[tuple[int, int]] = set()
    for link in topo.links:
        if link.id in seen_ids:
            raise TopologyError(f"duplicate link id {link.id}")
        seen_ids.add(link.id)
        for end in (link.a, link.b):
            if not 0 <= end < len(topo.nodes):
                raise TopologyError(f"link {link.id} names unknown node {end}")
        if link.a == link.b:
            raise TopologyError(f"link {link.id} is a self-loop on node {link.a}")
        if link.a > link.b:
            raise TopologyError(f"link {link.id} endpoints must be ordered (a < b)")
        if (link.a, link.b) in seen_pairs:
            raise TopologyError(f"parallel links between nodes {link.a} and {link.b}; merge them first")
        seen_pairs.add((link.a, link.b))
        if not link.capacity_mbps > 0:
            raise TopologyError(f"link {link.id} has non-positive capacity {link.capacity_mbps}")
        if not link.delay_ms >= 0:
            raise TopologyError(f"link {link.id} has negative delay {link.delay_ms}")
        if link.queue_pkts is not None and not link.queue_pkts > 0:
            raise TopologyError(f"link {link.id} has a buffer of {link.queue_pkts} packets; it must be positive")
    g = nx.Graph()
    g.add_nodes_from(range(len(topo.nodes)))
    g.add_edges_from((lk.a, lk.b) for lk in topo.links)
    if not nx.is_connected(g):
        raise TopologyError(f"topology {topo.name} is not connected")


def build(name: str, node_names: list[str], edges: list[tuple],
          coords: list[tuple[float | None, float | None]] | None = None,
          notes: tuple[str, ...] = (), sources: tuple[tuple[str, str, int], ...] = ()) -> Topology:
    """Make a Topology from names and (a, b, capacity_mbps, delay_ms[, queue_pkts]) edges; assigns
    link ids."""
    coords = coords or [(None, None)] * len(node_names)
    nodes = tuple(Node(i, nm, coords[i][0], coords[i][1]) for i, nm in enumerate(node_names))
    links = tuple(Link(f"L{i}", min(e[0], e[1]), max(e[0], e[1]), float(e[2]), float(e[3]),
                       e[4] if len(e) > 4 else None)
                  for i, e in enumerate(edges))
    return Topology(name=name, nodes=nodes, links=links, notes=notes, sources=sources)
