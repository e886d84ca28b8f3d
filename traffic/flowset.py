"""Flow sets: N flows between host pairs chosen so that flows share links (the virtual twin must
learn contention), and the per-flow rate that puts a phase's load on the most shared link."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from topologies import Topology
from topologies.addressing import Plan
from topologies.routing import path_links, shortest_path

from .schedule import Schedule, ScheduleError

#: Header bytes on the wire per packet besides the D-ITG payload (Ethernet + IPv4 + UDP/TCP).
OVERHEAD = {"UDP": 14 + 20 + 8, "TCP": 14 + 20 + 20}


@dataclass(frozen=True)
class FlowPair:
    src: str
    dst: str
    src_ip: str
    dst_ip: str
    links: tuple[str, ...]
    #: (link id, from node): links are full duplex, so flows contend per direction
    hops: tuple[tuple[str, int], ...]


def check_flow_count(topo: Topology, n: int) -> None:
    """Refuse a flow count the topology cannot host: every flow has its own (source, destination)
    host pair, and there is one host per switch."""
    hosts = len(topo.nodes)
    if n > hosts * (hosts - 1):
        raise ScheduleError(f"the schedule asks for {n} flows, but {topo.name} has {hosts} hosts, so only "
                            f"{hosts * (hosts - 1)} distinct host pairs; ask for {hosts * (hosts - 1)} or fewer")


def choose_pairs(topo: Topology, n: int, seed: int) -> list[FlowPair]:
    """N distinct host pairs; after the first, each shares at least one link direction with an
    earlier one when the topology allows it."""
    check_flow_count(topo, n)
    plan = Plan(topo)
    rng = random.Random(seed)
    candidates = [(s.id, d.id) for s in topo.nodes for d in topo.nodes if s.id != d.id]
    rng.shuffle(candidates)
    chosen: list[FlowPair] = []
    used: set[tuple[str, int]] = set()
    rest = []
    for s, d in candidates:
        nodes = shortest_path(topo, s, d)
        links = tuple(path_links(topo, nodes))
        hops = tuple(zip(links, nodes[:-1], strict=True))
        pair = FlowPair(plan.hosts[s].name, plan.hosts[d].name, plan.hosts[s].ip, plan.hosts[d].ip, links, hops)
        if not chosen or used & set(hops):
            chosen.append(pair)
            used |= set(hops)
        else:
            rest.append(pair)
        if len(chosen) == n:
            return chosen
    return chosen + rest[: n - len(chosen)]


#: Seeds of a schedule's phases' own flow sets (`pairs: phase`): phase i draws with the run's seed
#: plus PHASE_SEED_STEP x (i + 1), so no phase repeats the run's own set by construction.
PHASE_SEED_STEP = 7919


def phase_pairs(topo: Topology, schedule: Schedule, idx: int) -> list[FlowPair]:
    """The host pairs phase `idx` of `schedule` runs its flows between: the run's one flow set, or,
    with `pairs: phase`, one of the phase's own (the same way chosen: each flow after the first
    shares a link direction with an earlier one), reproducible from the schedule's seed."""
    seed = schedule.seed if schedule.pairs == "run" else schedule.seed + PHASE_SEED_STEP * (idx + 1)
    return choose_pairs(topo, schedule.flows, seed)


def flow_sets(topo: Topology, schedule: Schedule) -> list[list[FlowPair]]:
    """Every phase's host pairs (`phase_pairs`), in phase order; a run's one flow set is drawn once."""
    if schedule.pairs == "run":
        return [phase_pairs(topo, schedule, 0)] * len(schedule.phases)
    return [phase_pairs(topo, schedule, i) for i in range(len(schedule.phases))]


def per_flow_bps(topo: Topology, pairs: list[FlowPair], load: float) -> float:
    """The rate each flow gets so the most loaded link direction carries `load` x its capacity."""
    count = Counter(hop for p in pairs for hop in p.hops)
    if not count:
        raise ValueError("no flow crosses a link")
    share = min(topo.link(lk).capacity_mbps * 1e6 / c for (lk, _), c in count.items())
    return load * share
