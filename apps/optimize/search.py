"""The twin's search: local search over link weights and pinned paths from a starting routing
(`optimize` passes the better of today's and the LP's, as the twin scores them).
Each round draws a batch of neighbours of the best configuration so far, the twin evaluates
them in one call, and the best of them replaces it when it scores better; the search stops on
its time budget or after `patience` rounds without a better one.

Moves aim at what hurts: a weight move makes a hot link (the most utilized, or one on the path
of a flow over the SLO) heavier by 1.5-4x; a path move pins the pair of such a flow to another of
its k shortest paths, preferring one that avoids the hot link; a tidy move drops one weight or
pin, so a plan changes no more than it must.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from itertools import islice, pairwise

import networkx as nx

from apps.whatif.network import Network

from .evaluate import Candidate, Evaluated, Evaluator


@dataclass
class SearchResult:
    best: Evaluated
    rounds: int
    evaluated: int
    seconds: float
    stopped: str  # "budget" or "no improvement"

    @property
    def per_second(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else 0.0


def k_shortest(net: Network, src: int, dst: int, k: int) -> list[list[int]]:
    """Up to k loop-free paths from src to dst on the links that are up, shortest by delay first."""
    g = nx.Graph()
    g.add_nodes_from(n.id for n in net.topo.nodes if n.id not in net.failed_nodes)
    g.add_weighted_edges_from((lk.a, lk.b, lk.delay_ms) for lk in net.topo.links
                              if lk.id not in net.down and lk.a in g and lk.b in g)
    try:
        return [list(p) for p in islice(nx.shortest_simple_paths(g, src, dst, weight="weight"), k)]
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return []


def _hot(ev: Evaluated, objective_latency: float | None) -> list[str]:
    """Links to relieve: those on over-SLO flows' paths, then the most utilized."""
    out: list[str] = []
    if objective_latency is not None:
        for f in ev.outcome.snapshot.flows:
            if ev.outcome.predicted[f.key][0] > objective_latency:
                out.extend(lid for lid in f.path if lid not in out)
    util = sorted(ev.outcome.utilization.items(), key=lambda kv: -kv[1])
    out.extend(lid for lid, _ in util[:3] if lid not in out)
    return out


def _neighbour(ev: Evaluated, net: Network, rng: random.Random, moves: list[str], k: int,
               latency: float | None, paths_cache: dict) -> Candidate:
    weights, pins = ev.candidate.weight_map, ev.candidate.pin_map
    hot = _hot(ev, latency)
    roll = rng.random()
    if (weights or pins) and roll < 0.15:  # tidy
        if weights and (not pins or rng.random() < 0.5):
            weights.pop(rng.choice(sorted(weights)))
        else:
            pins.pop(rng.choice(sorted(pins)))
        return Candidate.of(weights, pins)
    link = hot[min(int(rng.expovariate(0.7)), len(hot) - 1)] if hot else rng.choice(net.topo.links).id
    if "paths" in moves and ("weights" not in moves or roll < 0.55):
        crossing = [f for f in ev.outcome.snapshot.flows if link in f.path]
        if crossing:
            f = rng.choice(crossing)
            pair = (f.src_node, ev.outcome.paths[f.key][-1])
            if pair not in paths_cache:
                paths_cache[pair] = k_shortest(net, pair[0], pair[1], k)
            options = [p for p in paths_cache[pair] if p != ev.outcome.paths[f.key]]
            avoiding = [p for p in options if link not in {net.topo.link_between(u, v).id for u, v in pairwise(p)}]
            choice = avoiding or options
            if choice:
                pins[pair] = rng.choice(choice)
                return Candidate.of(weights, pins)
    base = weights.get(link, net.topo.link(link).delay_ms)
    weights[link] = round(max(base, 0.01) * rng.choice((1.5, 2.0, 4.0)), 4)
    return Candidate.of(weights, pins)


def local_search(evaluator: Evaluator, start: Evaluated | None = None, deadline_s: float | None = None) -> SearchResult:
    """Search from `start` (default: the current routing) until the budget or the patience runs out."""
    obj = evaluator.objective
    s = obj.search
    rng = random.Random(s.seed)
    t0 = time.perf_counter()
    budget = s.budget_s if deadline_s is None else min(s.budget_s, deadline_s)
    best = start or evaluator.baseline
    assert best is not None
    before = evaluator.evaluated
    rounds = idle = 0
    paths_cache: dict = {}
    stopped = "budget"
    while time.perf_counter() - t0 < budget:
        seen = {best.candidate}
        cands = []
        for _ in range(s.batch * 3):
            c = _neighbour(best, evaluator.base, rng, list(s.moves), s.k_paths, obj.slo.latency_ms, paths_cache)
            if c not in seen:
                seen.add(c)
                cands.append(c)
            if len(cands) >= s.batch:
                break
        rounds += 1
        evs = evaluator.evaluate(cands)
        top = min(evs, key=lambda e: e.score, default=None)
        if top is not None and top.score < best.score:
            best, idle = top, 0
        else:
            idle += 1
            if idle >= s.patience:
                stopped = "no improvement"
                break
    return SearchResult(best, rounds, evaluator.evaluated - before, time.perf_counter() - t0, stopped)
