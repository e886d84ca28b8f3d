"""The network a what-if question is asked about: the demands of a stored window (its flows with
their offered rates, as the virtual twin sees them), the topology, and what a scenario changed
(links down, failed nodes, capacities, routing weights, pinned paths). A flow's rate is its
median over the window and the few before it (`steady_rates`). Routing is recomputed the
way the controller does it (a pair's pin while its links are up, else delay-weighted shortest
paths, hop count breaking ties); loads and the fluid
model's loss come from the offered rates: a flow loses 1 - 1/u of its packets where u > 1 is the
highest utilization on its path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topologies import Topology
from topologies.routing import path_links, shortest_path
from traffic.store import Stores
from traffic.window import Window
from vtwin.dataset import flow_process, negligible, packet_size, sending_rate
from vtwin.features import FlowSpec, Snapshot


class WhatIfError(ValueError):
    """A request that cannot be answered (one clear message)."""


class UnknownSnapshot(WhatIfError):
    """The request names a snapshot the traffic store does not have."""


@dataclass(frozen=True)
class Demand:
    key: str
    src: int
    dst: int
    offered_bps: float
    pkt_size: float
    proto: str
    process: str = ""  # inter-departure process (`vtwin.features.PROCESSES`), "" where not known


@dataclass
class Network:
    topo: Topology
    demands: list[Demand]
    down: set[str] = field(default_factory=set)
    weights: dict[str, float] = field(default_factory=dict)
    capacity: dict[str, float] = field(default_factory=dict)
    failed_nodes: set[int] = field(default_factory=set)
    #: explicit paths per (source, destination) node pair, as the controller's pins: used while
    #: every link of them is up, else the pair takes its weighted shortest path
    pins: dict[tuple[int, int], list[int]] = field(default_factory=dict)


#: How many windows a demand's rate is the median of: the snapshot's and those just before it in
#: which the flow was counted. One window's count can be far off: on a germany_50 plans bench
#: (deterministic UDP at 49 kbit/s per flow) the window a plan was made on read 24-37 kbit/s for 14
#: of 40 flows (a stats reply half a window late; the next window read 70-74), the twin's plan put
#: its busiest link at 0.82 of the capacity by those rates and 0.99 by the flows' own, where the lab
#: queued 540-580 ms. A rate that changed lags by up to two windows.
RATE_WINDOWS = 5


def steady_rates(stores: Stores, window: Window) -> dict[str, float]:
    """Each flow of `window` at the median of its rates (`sending_rate`) over it and up to
    RATE_WINDOWS - 1 windows before it."""
    earlier = stores.windows(window.run, after=window.window - RATE_WINDOWS, upto=window.window - 1)
    rates: dict[str, list[float]] = {f.flow_key: [sending_rate(f)] for f in window.flows}
    for w in earlier:
        for f in w.flows:
            if f.flow_key in rates:
                rates[f.flow_key].append(sending_rate(f))
    return {key: float(np.median(v)) for key, v in rates.items()}


def baseline(stores: Stores, snapshot_id: int) -> tuple[str, int, Network]:
    """The network of a stored window: its flows as demands (at their steady rates), its run's topology."""
    window = stores.window_by_id(snapshot_id, links=False, labels=False)  # the demands are its flows
    if window is None:
        raise UnknownSnapshot(f"no snapshot {snapshot_id}")
    topo = stores.topology(window.run)
    rates = steady_rates(stores, window)
    demands = [Demand(f.flow_key, int(f.src[1:]) - 1, int(f.dst[1:]) - 1, rates[f.flow_key], packet_size(f),
                      f.proto or "udp", flow_process(f, window))
               for f in window.flows if f.links and not negligible(f)]
    if not demands:
        raise WhatIfError(f"snapshot {snapshot_id} has no flow crossing a link")
    return window.run, window.window, Network(topo, demands)


def link_id(topo: Topology, ref: Any) -> str:
    try:
        return topo.link(str(ref)).id
    except Exception:
        raise WhatIfError(f"unknown link {ref!r}") from None


def node_id(topo: Topology, ref: Any) -> int:
    try:
        return topo.node(ref if isinstance(ref, int) else str(ref)).id
    except Exception:
        raise WhatIfError(f"unknown node {ref!r}") from None


def route(net: Network) -> tuple[Snapshot, dict[str, list[int]], list[str]]:
    """Route every demand; the snapshot of the routed flows, their node paths, the lost keys."""
    flows, paths, lost = [], {}, []
    for d in net.demands:
        nodes = None
        if d.src not in net.failed_nodes and d.dst not in net.failed_nodes:
            pin = net.pins.get((d.src, d.dst))
            if pin is not None and not set(path_links(net.topo, pin)) & net.down \
                    and not set(pin) & net.failed_nodes:
                nodes = pin
            else:
                nodes = shortest_path(net.topo, d.src, d.dst, net.down, net.weights)
        if nodes is None or len(nodes) < 2:
            lost.append(d.key)
            continue
        paths[d.key] = nodes
        flows.append(FlowSpec(d.key, tuple(path_links(net.topo, nodes)), d.src, d.offered_bps, d.pkt_size, d.proto,
                              process=d.process))
    if not flows:
        raise WhatIfError("no flow is left routable in this scenario")
    return Snapshot(net.topo, flows, dict(net.capacity), frozenset(net.down)), paths, lost


def directed_utilization(snap: Snapshot) -> dict[tuple[str, int], float]:
    """Computed utilization of every used link direction (link id, from node): offered rates
    with their header overhead over the capacity."""
    from vtwin.features import HEADER_BYTES

    load: dict[tuple[str, int], float] = {}
    for f in snap.flows:
        wire = f.offered_bps * (f.pkt_size + HEADER_BYTES) / f.pkt_size
        for hop in snap.directed_hops(f):
            load[hop] = load.get(hop, 0.0) + wire
    return {hop: bps / (snap.capacity(hop[0]) * 1e6) for hop, bps in load.items()}


def utilization(snap: Snapshot) -> dict[str, float]:
    """Highest direction's computed utilization per link."""
    out: dict[str, float] = {}
    for (lid, _), u in directed_utilization(snap).items():
        out[lid] = max(out.get(lid, 0.0), u)
    return out


def path_loss_pct(snap: Snapshot) -> dict[str, float]:
    """Per flow: the fluid model's loss (%) at the most loaded link direction of its path."""
    util = directed_utilization(snap)
    out = {}
    for f in snap.flows:
        u = max((util[hop] for hop in snap.directed_hops(f)), default=0.0)
        out[f.key] = round(100.0 * max(0.0, 1.0 - 1.0 / u), 3) if u > 1.0 else 0.0
    return out
