"""The classical traffic-engineering baseline: minimize the highest link utilization as a linear
program (HiGHS, through scipy.optimize.linprog), each node pair's traffic split over its k
shortest paths, then rounded to one path per pair (the controller routes a flow on one path: the
pair takes the path carrying its largest share). Loads are offered rates with their header
overhead on each link direction, as the what-if engine computes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import lil_matrix

from apps.whatif.network import Network
from topologies.routing import shortest_path
from vtwin.features import HEADER_BYTES

from .evaluate import Candidate
from .objective import OptimizeError
from .search import k_shortest


@dataclass
class LpResult:
    candidate: Candidate
    fractional_max_utilization: float  # the LP's optimum, traffic split
    pairs: int
    paths: int
    seconds: float


def min_max_utilization(net: Network, k: int = 3) -> LpResult:
    import time

    t0 = time.perf_counter()
    demand: dict[tuple[int, int], float] = {}
    for d in net.demands:
        if d.src in net.failed_nodes or d.dst in net.failed_nodes or d.src == d.dst:
            continue
        wire = d.offered_bps * (d.pkt_size + HEADER_BYTES) / d.pkt_size
        demand[(d.src, d.dst)] = demand.get((d.src, d.dst), 0.0) + wire
    options: dict[tuple[int, int], list[list[int]]] = {}
    for pair in demand:
        paths = k_shortest(net, pair[0], pair[1], k)
        if paths:
            options[pair] = paths
    if not options:
        raise OptimizeError("no demand has a path: nothing to optimize")
    columns = [(pair, p) for pair, paths in options.items() for p in paths]
    arcs: dict[tuple[str, int], int] = {}
    rows: list[list[tuple[int, float]]] = []
    for col, (pair, p) in enumerate(columns):
        for u, v in pairwise(p):
            arc = (net.topo.link_between(u, v).id, u)
            if arc not in arcs:
                arcs[arc] = len(arcs)
                rows.append([])
            rows[arcs[arc]].append((col, demand[pair]))
    n = len(columns) + 1  # the path shares, then t
    a_ub = lil_matrix((len(arcs), n))
    for arc, r in arcs.items():
        cap = net.capacity.get(arc[0], net.topo.link(arc[0]).capacity_mbps) * 1e6
        for col, bps in rows[r]:
            a_ub[r, col] = bps / cap
        a_ub[r, n - 1] = -1.0
    pairs = list(options)
    a_eq = lil_matrix((len(pairs), n))
    index = {pair: i for i, pair in enumerate(pairs)}
    for col, (pair, _) in enumerate(columns):
        a_eq[index[pair], col] = 1.0
    c = np.zeros(n)
    c[-1] = 1.0
    res = linprog(c, A_ub=a_ub.tocsr(), b_ub=np.zeros(len(arcs)), A_eq=a_eq.tocsr(), b_eq=np.ones(len(pairs)),
                  bounds=[(0, None)] * n, method="highs")
    if res.status != 0:
        raise OptimizeError(f"the utilization LP failed: {res.message}")
    pins: dict[tuple[int, int], list[int]] = {}
    for pair in pairs:
        cols = [i for i, (q, _) in enumerate(columns) if q == pair]
        chosen = columns[max(cols, key=lambda i: res.x[i])][1]
        if chosen != shortest_path(net.topo, pair[0], pair[1], net.down, net.weights):
            pins[pair] = chosen
    return LpResult(Candidate.of({}, pins), float(res.x[-1]), len(pairs), len(columns), time.perf_counter() - t0)
