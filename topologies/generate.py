"""Random connected topologies from a spec `random:N:M:SEED` (N nodes, M links, seed)."""

from __future__ import annotations

import random

from .geo import great_circle_km, propagation_delay_ms
from .model import Topology, TopologyError, build

#: Capacities drawn for generated links, Mbit/s.
CAPACITIES_MBPS = (5.0, 10.0, 20.0)
#: Generated nodes are placed uniformly in this latitude/longitude box (about Europe's size).
LAT_RANGE = (40.0, 55.0)
LON_RANGE = (-5.0, 20.0)


def parse_spec(spec: str) -> tuple[int, int, int]:
    parts = spec.split(":")
    if len(parts) != 4 or parts[0] != "random":
        raise TopologyError(f"bad generator spec {spec!r}; use random:N:M:SEED")
    try:
        n, m, seed = (int(p) for p in parts[1:])
    except ValueError:
        raise TopologyError(f"bad generator spec {spec!r}; N, M and SEED must be integers") from None
    if n < 2:
        raise TopologyError(f"random topology needs at least 2 nodes, got {n}")
    if not n - 1 <= m <= n * (n - 1) // 2:
        raise TopologyError(f"random:{n}:{m}: M must be between {n - 1} and {n * (n - 1) // 2}")
    return n, m, seed


def random_topology(n: int, m: int, seed: int) -> Topology:
    """A connected graph: a random spanning tree plus random extra links, reproducible by seed."""
    rng = random.Random(seed)
    coords = [(rng.uniform(*LAT_RANGE), rng.uniform(*LON_RANGE)) for _ in range(n)]
    order = list(range(n))
    rng.shuffle(order)
    pairs: set[tuple[int, int]] = set()
    for i in range(1, n):
        u, v = order[i], order[rng.randrange(i)]
        pairs.add((min(u, v), max(u, v)))
    while len(pairs) < m:
        u, v = rng.sample(range(n), 2)
        pairs.add((min(u, v), max(u, v)))
    edges = []
    for a, b in sorted(pairs):
        km = great_circle_km(*coords[a], *coords[b])
        edges.append((a, b, rng.choice(CAPACITIES_MBPS), round(propagation_delay_ms(km), 6)))
    names = [f"n{i}" for i in range(n)]
    return build(f"random:{n}:{m}:{seed}", names, edges, coords=list(coords))


def from_spec(spec: str) -> Topology:
    return random_topology(*parse_spec(spec))
