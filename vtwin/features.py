"""Snapshots and the graph tensors the virtual twin reads.

A `Snapshot` is what is known of the network before measuring: the topology (capacities,
propagation delays, buffers), the links that are up, and every flow with its path (link ids, in order
from the source), offered rate and packet size. Links are full duplex, so the graph's link nodes
are link *directions*; a flow's path is a sequence of directed links. Link loads are computed
from the offered rates on the routing, never measured. Measured delay, jitter and loss are
never inputs: a what-if question has no measurements.

`graph_tensors` turns one or more snapshots (a batch is their disjoint union) into numpy arrays:
flow features, link features, the padded path matrix and its mask, and for the delay formula each
link's capacity, propagation delay and full buffer (`full_buffer_ms`, 0 where the link carries
all that reaches it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from topologies import DEFAULT_QUEUE_PKTS, Topology

from .errors import SnapshotError

#: Wire overhead per packet added to the payload size (Ethernet + IPv4 + UDP/TCP headers).
HEADER_BYTES = 42
FLOW_FEATURES = ("offered_mbps", "pkt_kbytes", "path_len", "is_tcp")
#: buffer_ms: the longest queueing delay the link direction's buffer can hold, its packets (the
#: topology's, else DEFAULT_QUEUE_PKTS) at the mean wire frame of the flows crossing it, drained at
#: its capacity: what an overloaded link's queueing delay settles at.
#: full_buffer_ms: buffer_ms where the traffic that reaches the link direction exceeds its capacity,
#: else 0 (`fluid_arrivals`): a drop-tail queue fed faster than it drains stays full, so its
#: queueing delay is its buffer's (the lab's link test measures this). The model adds it, through
#: a learned gate, to the propagation delay and learns the rest; without it a twin that had seen
#: only uncongested windows predicted 8 ms where a congested 5G-Crosshaul measured 53 ms.
LINK_FEATURES = ("capacity_mbps", "delay_ms", "utilization", "n_flows", "buffer_ms", "full_buffer_ms")
#: Passes of the fluid model: each carries the drops of one more upstream link to the links after it.
FLUID_PASSES = 4


@dataclass(frozen=True)
class FlowSpec:
    key: str
    path: tuple[str, ...]  # link ids from the source switch to the destination switch
    src_node: int
    offered_bps: float
    pkt_size: float = 512.0
    proto: str = "udp"


@dataclass
class Snapshot:
    topo: Topology
    flows: list[FlowSpec]
    capacity_mbps: dict[str, float] = field(default_factory=dict)  # overrides (what-if), else the topology's
    down: frozenset[str] = frozenset()

    def capacity(self, link_id: str) -> float:
        return self.capacity_mbps.get(link_id, self.topo.link(link_id).capacity_mbps)

    def directed_hops(self, flow: FlowSpec) -> list[tuple[str, int]]:
        """(link id, from node) along the flow's path; checks that the path is connected."""
        hops = []
        node = flow.src_node
        for lid in flow.path:
            try:
                link = self.topo.link(lid)
            except Exception:
                raise SnapshotError(f"flow {flow.key}: unknown link {lid!r} in its path") from None
            if node not in (link.a, link.b):
                raise SnapshotError(f"flow {flow.key}: link {lid} does not continue the path at node {node}")
            hops.append((lid, node))
            node = link.b if node == link.a else link.a
        return hops


def validate(snap: Snapshot) -> None:
    if not snap.flows:
        raise SnapshotError("the snapshot has no flows")
    for lk in snap.topo.links:
        if not snap.capacity(lk.id) > 0:
            raise SnapshotError(f"link {lk.id} has capacity {snap.capacity(lk.id)}; it must be positive")
    for f in snap.flows:
        if not f.path:
            raise SnapshotError(f"flow {f.key}: empty path")
        if not f.offered_bps >= 0 or not f.pkt_size > 0:
            raise SnapshotError(f"flow {f.key}: offered rate and packet size must be positive")
        for lid, _ in snap.directed_hops(f):
            if lid in snap.down:
                raise SnapshotError(f"flow {f.key}: its path uses link {lid}, which is down")


def fluid_arrivals(rates: list[float], paths: list[list[int]], capacity: np.ndarray) -> np.ndarray:
    """The rate (bit/s) reaching each link, flows thinned by the links before it: a link fed more
    than its capacity carries on only its capacity, shared in proportion (a drop-tail queue drops
    its arrivals alike). `paths` are link indices in order; `FLUID_PASSES` fixed-point passes."""
    ratio = np.ones(len(capacity))  # the first pass: every flow at its offered rate all along
    for _ in range(FLUID_PASSES + 1):
        arrivals = np.zeros(len(capacity))
        for rate, path in zip(rates, paths, strict=True):
            for h in path:
                arrivals[h] += rate
                rate *= ratio[h]
        ratio = np.minimum(1.0, capacity / np.maximum(arrivals, 1e-9))
    return arrivals


def graph_tensors(snaps: list[Snapshot]) -> dict[str, np.ndarray]:
    """Raw (unnormalized) graph tensors of a batch of snapshots."""
    flow_x, link_x, caps, delays, fulls, paths, flow_graph = [], [], [], [], [], [], []
    link_offset = 0
    for g, snap in enumerate(snaps):
        validate(snap)
        index: dict[tuple[str, int], int] = {}
        flow_hops = []
        for f in snap.flows:
            hops = snap.directed_hops(f)
            for h in hops:
                if h not in index:
                    index[h] = len(index)
            flow_hops.append([index[h] for h in hops])
        load = np.zeros(len(index))
        nflows = np.zeros(len(index))
        pps = np.zeros(len(index))
        wires = [f.offered_bps * (f.pkt_size + HEADER_BYTES) / f.pkt_size for f in snap.flows]
        for f, wire, hops in zip(snap.flows, wires, flow_hops, strict=True):
            np.add.at(load, hops, wire)
            np.add.at(nflows, hops, 1)
            np.add.at(pps, hops, f.offered_bps / (8 * f.pkt_size))
        capacity_bps = np.array([snap.capacity(lid) * 1e6 for lid, _ in index])
        arrivals = fluid_arrivals(wires, flow_hops, capacity_bps)
        for (lid, _), i in index.items():
            cap = snap.capacity(lid)
            link = snap.topo.link(lid)
            frame_bits = load[i] / pps[i] if pps[i] > 0 else 8 * (512 + HEADER_BYTES)
            buffer_ms = (link.queue_pkts or DEFAULT_QUEUE_PKTS) * frame_bits / (cap * 1e3)
            full_ms = buffer_ms if arrivals[i] > capacity_bps[i] else 0.0
            link_x.append([cap, link.delay_ms, load[i] / (cap * 1e6), nflows[i], buffer_ms, full_ms])
            caps.append(cap)
            delays.append(link.delay_ms)
            fulls.append(full_ms)
        for f, hops in zip(snap.flows, flow_hops, strict=True):
            flow_x.append([f.offered_bps / 1e6, f.pkt_size / 1000.0, len(hops), float(f.proto == "tcp")])
            paths.append([h + link_offset for h in hops])
            flow_graph.append(g)
        link_offset += len(index)
    max_len = max(len(p) for p in paths)
    n_links = link_offset
    path = np.full((len(paths), max_len), n_links, dtype=np.int32)  # pad with a dummy link index
    mask = np.zeros((len(paths), max_len), dtype=bool)
    for i, p in enumerate(paths):
        path[i, : len(p)] = p
        mask[i, : len(p)] = True
    return {
        "flow_x": np.asarray(flow_x, dtype=np.float32),
        "link_x": np.asarray(link_x, dtype=np.float32),
        "path": path,
        "mask": mask,
        "capacity": np.asarray(caps, dtype=np.float32),
        "link_delay": np.asarray(delays, dtype=np.float32),
        "link_full": np.asarray(fulls, dtype=np.float32),
        "flow_graph": np.asarray(flow_graph, dtype=np.int32),
    }


def _scale(x: np.ndarray) -> np.ndarray:
    """Standard deviations, except for features (nearly) constant in the training data: those are
    scaled by their mean, so that a what-if value outside the training data (all links 10 Mbit/s,
    then one at 40) stays a modest input instead of millions of standard deviations."""
    mean, std = np.abs(x.mean(0)), x.std(0)
    return np.where(std > 1e-3 * np.maximum(mean, 1e-3), std, np.maximum(mean, 1.0))


@dataclass
class Normalization:
    """Feature means and standard deviations, stored with the weights."""

    flow_mean: list[float]
    flow_std: list[float]
    link_mean: list[float]
    link_std: list[float]

    @staticmethod
    def fit(tensors: list[dict[str, np.ndarray]]) -> Normalization:
        fx = np.concatenate([t["flow_x"] for t in tensors])
        lx = np.concatenate([t["link_x"] for t in tensors])
        return Normalization(fx.mean(0).tolist(), _scale(fx).tolist(), lx.mean(0).tolist(), _scale(lx).tolist())

    def apply(self, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(t)
        out["flow_x"] = ((t["flow_x"] - np.asarray(self.flow_mean)) / np.asarray(self.flow_std)).astype(np.float32)
        out["link_x"] = ((t["link_x"] - np.asarray(self.link_mean)) / np.asarray(self.link_std)).astype(np.float32)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"flow_mean": self.flow_mean, "flow_std": self.flow_std,
                "link_mean": self.link_mean, "link_std": self.link_std}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Normalization:
        return Normalization(d["flow_mean"], d["flow_std"], d["link_mean"], d["link_std"])
