"""Intents a what-if answer is checked against, each a class with `check(pre, post)` on the
network's outcome before and after the scenario. Written in requests as strings:

    intent:reachability          every pair reachable before still is
    intent:routing-redundancy    every affected pair still has two link-disjoint paths
    intent:max-utilization[:X]   no link over X of its capacity, from offered rates (X = 0.9)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from topologies import Topology
from vtwin.features import Snapshot

from .network import Network


@dataclass
class Outcome:
    """The network before or after a scenario: its routing, what the twin predicts and the loads."""

    net: Network
    snapshot: Snapshot
    paths: dict[str, list[int]]  # flow key -> node path
    lost: list[str]  # flows left without a path
    predicted: dict[str, tuple[float, float]]  # flow key -> (delay, jitter) in ms
    utilization: dict[str, float]  # link -> highest direction's computed utilization
    affected: set[str] = field(default_factory=set)  # (after) flows whose path or delay changed

    def propagation_ms(self, key: str) -> float | None:
        """The flow's path's propagation delay (None for a lost flow)."""
        nodes = self.paths.get(key)
        if nodes is None:
            return None
        return sum(self.net.topo.link_between(u, v).delay_ms for u, v in zip(nodes, nodes[1:], strict=False))

    def graph(self) -> nx.MultiGraph:
        g = nx.MultiGraph()
        g.add_nodes_from(n.id for n in self.net.topo.nodes if n.id not in self.net.failed_nodes)
        g.add_edges_from((lk.a, lk.b) for lk in self.net.topo.links if lk.id not in self.net.down)
        return g


def _names(topo: Topology, pairs: list[tuple[int, int]]) -> list[list[str]]:
    return [[topo.nodes[a].name, topo.nodes[b].name] for a, b in pairs]


class Intent:
    policy: str

    def check(self, pre: Outcome, post: Outcome) -> dict[str, Any]:
        raise NotImplementedError


class Reachability(Intent):
    policy = "intent:reachability"

    def check(self, pre: Outcome, post: Outcome) -> dict[str, Any]:
        before = set(pre.lost)
        ends = {d.key: (d.src, d.dst) for d in pre.net.demands}
        cut = [ends[k] for k in post.lost if k not in before and k in ends]
        return {"policy": self.policy, "pass": not cut,
                "detail": f"{len(cut)} pair(s) cut off" if cut else "every pair still reachable",
                "cut_pairs": _names(pre.net.topo, cut)}


class RoutingRedundancy(Intent):
    policy = "intent:routing-redundancy"

    def check(self, pre: Outcome, post: Outcome) -> dict[str, Any]:
        graph = post.graph()
        ends = {d.key: (d.src, d.dst) for d in pre.net.demands}
        weak = sorted({ends[k] for k in post.affected if k not in post.lost and k in ends
                       and nx.edge_connectivity(graph, *ends[k]) < 2})
        return {"policy": self.policy, "pass": not weak,
                "detail": f"{len(weak)} affected pair(s) without a second disjoint path" if weak
                else "every affected pair keeps two disjoint paths", "pairs": _names(pre.net.topo, weak)}


@dataclass
class MaxUtilization(Intent):
    limit: float = 0.9
    policy: str = "intent:max-utilization"

    def check(self, pre: Outcome, post: Outcome) -> dict[str, Any]:
        worst = max(post.utilization.values(), default=0.0)
        return {"policy": self.policy, "pass": worst <= self.limit,
                "detail": f"highest link utilization {worst:.2f} (limit {self.limit:g})"}


def parse_intent(text: Any) -> Intent:
    """The intent a policy string names; ValueError with the accepted forms for anything else."""
    kind, _, rest = str(text).partition(":")
    name, _, arg = rest.partition(":")
    if kind == "intent" and name == "reachability" and not arg:
        return Reachability()
    if kind == "intent" and name == "routing-redundancy" and not arg:
        return RoutingRedundancy()
    if kind == "intent" and name == "max-utilization":
        try:
            limit = float(arg) if arg else 0.9
        except ValueError:
            limit = -1.0
        if limit > 0:
            return MaxUtilization(limit, str(text))
    raise ValueError(f"unknown policy {text!r}; use intent:reachability, intent:routing-redundancy "
                     "or intent:max-utilization[:X] with X > 0")
