"""Routing the way the controller does it: shortest path by propagation delay, hop count breaks
ties, then the lexicographically smallest node sequence, so the result is deterministic.

Delays are compared in integer nanoseconds so that float sums cannot reorder equal paths.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from itertools import pairwise

from .model import Topology


def _adjacency(topo: Topology, down: Iterable[str] = (),
               weights: dict[str, float] | None = None) -> dict[int, list[tuple[int, int]]]:
    skip = set(down)
    weights = weights or {}
    adj: dict[int, list[tuple[int, int]]] = {n.id: [] for n in topo.nodes}
    for link in topo.links:
        if link.id in skip:
            continue
        ns = round(weights.get(link.id, link.delay_ms) * 1e6)
        adj[link.a].append((link.b, ns))
        adj[link.b].append((link.a, ns))
    return adj


def shortest_paths_from(topo: Topology, src: int, down: Iterable[str] = (),
                        weights: dict[str, float] | None = None) -> dict[int, list[int]]:
    """Node sequences from `src` to every reachable node, with links in `down` removed; `weights`
    overrides a link's routing weight (its delay in ms by default)."""
    adj = _adjacency(topo, down, weights)
    best: dict[int, tuple[int, int, tuple[int, ...]]] = {}
    heap: list[tuple[int, int, tuple[int, ...]]] = [(0, 0, (src,))]
    while heap:
        cost, hops, path = heapq.heappop(heap)
        node = path[-1]
        if node in best:
            continue
        best[node] = (cost, hops, path)
        for nxt, ns in adj[node]:
            if nxt not in best:
                heapq.heappush(heap, (cost + ns, hops + 1, path + (nxt,)))
    return {n: list(p) for n, (_, _, p) in best.items()}


def shortest_path(topo: Topology, src: int, dst: int, down: Iterable[str] = (),
                  weights: dict[str, float] | None = None) -> list[int] | None:
    """The node sequence from src to dst, or None when dst is unreachable."""
    return shortest_paths_from(topo, src, down, weights).get(dst)


def path_links(topo: Topology, nodes: list[int]) -> list[str]:
    """Link ids along a node sequence."""
    return [topo.link_between(u, v).id for u, v in pairwise(nodes)]


def path_delay_ms(topo: Topology, nodes: list[int]) -> float:
    return sum(topo.link_between(u, v).delay_ms for u, v in pairwise(nodes))
