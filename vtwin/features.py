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
#: The inter-departure processes a flow input names (`FlowSpec.process`; the schedules' `idt`).
PROCESSES = ("constant", "exponential", "poisson", "uniform")
_PROCESS_CODE = {"": -1, **{p: i for i, p in enumerate(PROCESSES)}}  # "": not known; a name not here: -2
#: The columns of `flow_x` (raw values, as `graph_tensors` makes them). age_s: how long the flow
#: has been sending (`FlowSpec.age_s`), capped at AGE_CAP_S. idt_*: a one-hot of the flow's
#: inter-departure process, all zero where it is not known (a flow the run did not start): the
#: schedule says it before anything is measured, RouteNet-Fermi reads it too, and without it the
#: twin could not tell exponential TCP (a window 40 % around its mean, predicted at a median 0.76 of
#: measured) from Poisson or uniform TCP at the same rate (README, 'The base model').
FLOW_COLUMNS = ("offered_mbps", "pkt_kbytes", "path_len", "is_tcp", "age_s") + tuple(f"idt_{p}" for p in PROCESSES)
#: buffer_ms: the longest queueing delay the link direction's buffer can hold, its packets (the
#: topology's, else DEFAULT_QUEUE_PKTS) at the mean wire frame of the flows crossing it, drained at
#: its capacity: what an overloaded link's queueing delay settles at.
#: full_buffer_ms: buffer_ms where the traffic that reaches the link direction exceeds its capacity
#: by more than FULL_MARGIN, else 0 (`fluid_arrivals`): a drop-tail queue fed faster than it drains
#: stays full, so its queueing delay is its buffer's (the lab's link test measures this). The
#: model adds it, through a learned gate, to the propagation delay and learns the rest; without it
#: a twin that had seen only uncongested windows predicted 8 ms where a congested 5G-Crosshaul
#: measured 53 ms.
LINK_COLUMNS = ("capacity_mbps", "delay_ms", "utilization", "n_flows", "buffer_ms", "full_buffer_ms")
#: What the model reads of each column, before standardization (`Normalization`): rates and times
#: on a log scale, so that a network emulated at 20 Mbit/s, next to a corpus at 0.4-3 Mbit/s, is a
#: few standard deviations away rather than dozens; utilization and counts as they are.
FLOW_TRANSFORMS = ("log", None, None, None, None) + (None,) * len(PROCESSES)
LINK_TRANSFORMS = ("log", "log1p", None, None, "log1p", "log1p")
#: The model's inputs by name (the registry and the base model's card record them; a model trained
#: on other inputs is refused).
FLOW_FEATURES = tuple(f"{t}({c})" if t else c for c, t in zip(FLOW_COLUMNS, FLOW_TRANSFORMS, strict=True))
LINK_FEATURES = tuple(f"{t}({c})" if t else c for c, t in zip(LINK_COLUMNS, LINK_TRANSFORMS, strict=True))
#: How the model reads its delay and jitter out (`vtwin.model`), recorded beside the inputs with
#: every stored model (registry config, base model card): weights of another readout do not fit,
#: and are refused by name. Models from before it was recorded read per link.
READOUT = "per-hop"
PAST_READOUT = "per-link"
#: How far the traffic reaching a link must exceed its capacity before the link counts as full.
#: Rates are counted per window (15-30 % off a flow's mean), so a link computed at 1.00-1.05 times
#: its capacity is often under it: on a fresh build of the base corpus, the shipped model scored
#: 24.4 % delay MAPE on the held-out windows at 1.0 and 19.3 % at 1.05 (UDP flows behind a full
#: buffer 113 -> 25 %), but 33.5 -> 34.2 % on Bics, and a model retrained at 1.05 scored 62 % on
#: Bics (`bench/full_gate.py`, README): left at 1.0, what the shipped model was trained on.
FULL_MARGIN = 1.0
#: The age (s) at which the model reads a flow as settled; older flows read as this old, and a
#: flow of unknown age (a what-if question's) is taken as settled. An overloaded TCP flow's delay
#: grows over its first seconds (its losses wait for retransmission timeouts that back off): on
#: the base corpus (8-10 s phases) the delay of TCP flows behind a full buffer, over their path's
#: full buffers, went from a median 0.3-1.2 in a phase's first quarter to 3-7 in its last. A twin
#: that does not know a flow's age predicts their mean, under the older windows by a third. The
#: cap lies inside the ages a corpus' training windows cover (a phase's last 20 % is held out): at
#: 10 s, a model met its held-out windows (8-10 s) at ages it had hardly seen, and scored 28-29 %
#: there against 24 % without the age (unseen networks: 27-31 % against 29-37 %).
AGE_CAP_S = 6.0
#: How far the UDP traffic reaching a link must exceed its capacity before its buffer is a floor
#: under the queueing delay of every flow crossing it (`link_floor`, applied in `vtwin.model`):
#: UDP does not back off, so a drop-tail queue fed more UDP than it carries fills at the excess
#: rate and stays full, and every packet it accepts waits the whole buffer. The floor is the part
#: of the buffer filled since the link's UDP flows started (`udp_fill`): all of it once settled. On
#: the base corpus (third realization), UDP flows behind one such link measured a median 0.96-0.98
#: of its buffer where it had had time to fill at more than 1.1 times its capacity, 0.26-0.72 where
#: it had not (the filled share 0-1); at 1.05-1.1, 0.76-0.99 once filled; at 1.02-1.05, 0.97-0.99
#: for deterministic flows but 0.12 for exponential ones, whose rate a window counts 15-30 % off.
#: Scored on the corpora (`bench/vtwin.py`), 1.05 against 1.1: held out 17.6 against 17.5 % delay
#: MAPE (NMSE -5.37 against -5.28 dB), unseen Bics 26.2 against 27.1 %, 5G_crosshaul_51 30.3
#: against 31.0; at 1.02 held out 20.8 %. On germany_50's settled overload (the plans bench, flows
#: at constant rates) links at 1.03-1.10 times their capacity were full and the twin put today's p95
#: at 1,235-1,246 ms where 1,352-1,417 were measured; at 1.05, 1,390. TCP's offered rates are not
#: counted: a TCP flow slows down (flows over links overloaded with TCP measured 0.13-0.14 of the
#: full buffer at 1.05-1.2).
UDP_FULL_MARGIN = 1.05
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
    age_s: float = AGE_CAP_S  # how long the flow has been sending; unknown: settled
    process: str = ""  # inter-departure process, one of PROCESSES; "": not known


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
    """Raise SnapshotError unless every flow's path is a connected walk over up links."""
    _hop_arrays(snap)


def _hop_arrays(snap: Snapshot) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The snapshot checked, and its flows' paths as a [flows, positions] matrix of directed link
    ids (2 x link index, + 1 when crossed from b to a; -1 past the path's end) with the
    capacities of its links (Mbit/s, by link index) and the flows' columns (offered bit/s, packet
    bytes, TCP or not, age capped at AGE_CAP_S, process one-hot). One Python pass over the flows, then vectorized,
    one step per position."""
    if not snap.flows:
        raise SnapshotError("the snapshot has no flows")
    links = snap.topo.links
    caps = np.array([snap.capacity(lk.id) for lk in links], dtype=np.float64)
    bad = np.flatnonzero(~(caps > 0))
    if bad.size:
        lk = links[bad[0]]
        raise SnapshotError(f"link {lk.id} has capacity {snap.capacity(lk.id)}; it must be positive")
    index = snap.topo.link_index
    flows = snap.flows
    longest = max(len(f.path) for f in flows)
    ids = np.full((len(flows), max(longest, 1)), -1, dtype=np.int64)
    columns = np.array([(f.offered_bps, f.pkt_size, f.proto == "tcp", f.src_node, f.age_s,
                         _PROCESS_CODE.get(f.process, -2)) for f in flows], dtype=np.float64).reshape(len(flows), 6)
    for i, f in enumerate(flows):
        try:
            ids[i, : len(f.path)] = [index[lid] for lid in f.path]
        except KeyError as exc:
            raise SnapshotError(f"flow {f.key}: unknown link {exc.args[0]!r} in its path") from None
    empty = np.flatnonzero(ids[:, 0] < 0)
    if empty.size:
        raise SnapshotError(f"flow {flows[empty[0]].key}: empty path")
    invalid = np.flatnonzero(~(columns[:, 0] >= 0) | ~(columns[:, 1] > 0) | ~(columns[:, 4] >= 0))
    if invalid.size:
        raise SnapshotError(f"flow {flows[invalid[0]].key}: offered rate and packet size must be positive "
                            "and age not negative")
    unnamed = np.flatnonzero(columns[:, 5] == -2)
    if unnamed.size:
        f = flows[unnamed[0]]
        raise SnapshotError(f"flow {f.key}: unknown inter-departure process {f.process!r}; "
                            f"use one of {', '.join(PROCESSES)}")
    ends = snap.topo.link_ends
    node = columns[:, 3].astype(np.int64)
    directed = np.full_like(ids, -1)
    for p in range(ids.shape[1]):
        on = np.flatnonzero(ids[:, p] >= 0)
        li = ids[on, p]
        a, b, here = ends[li, 0], ends[li, 1], node[on]
        broken = np.flatnonzero((here != a) & (here != b))
        if broken.size:
            f = flows[on[broken[0]]]
            raise SnapshotError(f"flow {f.key}: link {links[li[broken[0]]].id} does not continue the path "
                                f"at node {here[broken[0]]}")
        backward = here == b
        directed[on, p] = 2 * li + backward
        node[on] = np.where(backward, a, b)
    if snap.down:
        down = np.array([index.get(lid, -1) for lid in snap.down])
        hit = np.isin(ids, down)
        if hit.any():
            i, p = np.argwhere(hit)[0]
            raise SnapshotError(f"flow {flows[i].key}: its path uses link {links[ids[i, p]].id}, which is down")
    process = (columns[:, 5:6] == np.arange(len(PROCESSES))).astype(np.float64)  # not known: all zero
    return directed, caps, {"offered": columns[:, 0], "pkt": columns[:, 1], "tcp": columns[:, 2],
                            "age": np.minimum(columns[:, 4], AGE_CAP_S), "process": process}


def fluid_arrivals(rates: list[float] | np.ndarray, paths: list[list[int]] | np.ndarray,
                   capacity: np.ndarray) -> np.ndarray:
    """The rate (bit/s) reaching each link, flows thinned by the links before it: a link fed more
    than its capacity carries on only its capacity, shared in proportion (a drop-tail queue drops
    its arrivals alike). `paths` are link indices in order (lists, or a matrix padded with -1);
    `FLUID_PASSES` fixed-point passes."""
    if not isinstance(paths, np.ndarray):
        width = max((len(p) for p in paths), default=1)
        paths = np.array([list(p) + [-1] * (width - len(p)) for p in paths], dtype=np.int64).reshape(len(paths), -1)
    rates = np.asarray(rates, dtype=np.float64)
    n = len(capacity)
    on = paths >= 0
    safe = np.where(on, paths, n)  # padding points at a dummy link that passes everything
    ratio = np.ones(n + 1)  # the first pass: every flow at its offered rate all along
    arrivals = np.zeros(n)
    for _ in range(FLUID_PASSES + 1):
        along = ratio[safe]
        before = np.ones_like(along)  # the share of its rate a flow keeps before each position
        before[:, 1:] = np.cumprod(along, axis=1)[:, :-1]
        arrivals = np.bincount(safe[on], weights=(rates[:, None] * before)[on], minlength=n + 1)[:n]
        ratio[:n] = np.minimum(1.0, capacity / np.maximum(arrivals, 1e-9))
    return arrivals


def udp_fill(load: np.ndarray, buffer_ms: np.ndarray, age_s: np.ndarray) -> np.ndarray:
    """The share of each link's buffer its UDP traffic has filled: at `load` times the capacity a
    drop-tail queue grows at (load - 1) times the capacity, so it holds a buffer of `buffer_ms`
    after buffer_ms / (load - 1) ms. `age_s` is the oldest UDP flow's age over the link; at
    AGE_CAP_S (settled, or unknown: a what-if flow) the buffer is full. 0 at or under the capacity."""
    excess = np.maximum(np.asarray(load, dtype=np.float64) - 1.0, 0.0)
    settled = np.asarray(age_s) >= AGE_CAP_S
    filled = np.asarray(age_s) * excess / np.maximum(np.asarray(buffer_ms) / 1000.0, 1e-9)
    return np.where(excess > 0, np.where(settled, 1.0, np.clip(filled, 0.0, 1.0)), 0.0)


def snapshot_tensors(snap: Snapshot) -> dict[str, np.ndarray]:
    """Raw graph tensors of one snapshot; `path` holds this snapshot's link-direction indices, in
    the order the flows first cross them (padding -1)."""
    directed, caps, cols = _hop_arrays(snap)
    on = directed >= 0
    flat = directed[on]  # flow by flow, in path order
    uniq, first = np.unique(flat, return_index=True)
    order = uniq[np.argsort(first)]
    remap = np.full(2 * len(snap.topo.links), -1, dtype=np.int64)
    remap[order] = np.arange(len(order))
    path = np.where(on, remap[np.maximum(directed, 0)], -1)
    n = len(order)
    offered, pkt = cols["offered"], cols["pkt"]
    wires = offered * (pkt + HEADER_BYTES) / pkt
    hops = path[on]
    per_hop = np.broadcast_to(np.arange(len(snap.flows))[:, None], path.shape)[on]
    load = np.bincount(hops, weights=wires[per_hop], minlength=n)
    nflows = np.bincount(hops, minlength=n).astype(np.float64)
    pps = np.bincount(hops, weights=(offered / (8 * pkt))[per_hop], minlength=n)
    link_of = order // 2
    cap = caps[link_of]
    arrivals = fluid_arrivals(wires, path, cap * 1e6)
    udp_arrivals = fluid_arrivals(np.where(cols["tcp"] > 0, 0.0, wires), path, cap * 1e6)
    links = snap.topo.links
    delay = np.array([links[i].delay_ms for i in link_of], dtype=np.float64)
    queue = np.array([links[i].queue_pkts or DEFAULT_QUEUE_PKTS for i in link_of], dtype=np.float64)
    frame_bits = np.where(pps > 0, load / np.where(pps > 0, pps, 1.0), 8 * (512 + HEADER_BYTES))
    buffer_ms = queue * frame_bits / (cap * 1e3)
    full_ms = np.where(arrivals > FULL_MARGIN * cap * 1e6, buffer_ms, 0.0)
    udp_hop = cols["tcp"][per_hop] == 0
    link_age = np.zeros(n)  # the oldest UDP flow over each link
    np.maximum.at(link_age, hops[udp_hop], cols["age"][per_hop][udp_hop])
    udp_load = udp_arrivals / (cap * 1e6)
    floor_ms = np.where(udp_load > UDP_FULL_MARGIN, buffer_ms * udp_fill(udp_load, buffer_ms, link_age), 0.0)
    link_x = np.stack([cap, delay, load / (cap * 1e6), nflows, buffer_ms, full_ms], axis=1)
    lengths = on.sum(1)
    flow_x = np.concatenate([np.stack([offered / 1e6, pkt / 1000.0, lengths.astype(np.float64), cols["tcp"],
                                       cols["age"]], axis=1), cols["process"]], axis=1)
    return {"flow_x": flow_x, "link_x": link_x, "path": path, "capacity": cap, "link_delay": delay,
            "link_full": full_ms, "link_floor": floor_ms}


def graph_tensors(snaps: list[Snapshot]) -> dict[str, np.ndarray]:
    """Raw (unnormalized) graph tensors of a batch of snapshots (their disjoint union)."""
    return merge([snapshot_tensors(s) for s in snaps])


def merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The disjoint union of single snapshots' tensors (`snapshot_tensors`): link indices offset, paths padded
    to the longest with a dummy link index (the number of links)."""
    n_links = sum(len(t["capacity"]) for t in parts)
    width = max(t["path"].shape[1] for t in parts)
    n_flows = sum(len(t["flow_x"]) for t in parts)
    path = np.full((n_flows, width), n_links, dtype=np.int32)
    mask = np.zeros((n_flows, width), dtype=bool)
    row = offset = 0
    for t in parts:
        p = t["path"]
        on = p >= 0
        path[row: row + len(p), : p.shape[1]] = np.where(on, p + offset, n_links)
        mask[row: row + len(p), : p.shape[1]] = on
        row += len(p)
        offset += len(t["capacity"])
    return {
        "flow_x": np.concatenate([t["flow_x"] for t in parts]).astype(np.float32),
        "link_x": np.concatenate([t["link_x"] for t in parts]).astype(np.float32),
        "path": path,
        "mask": mask,
        "capacity": np.concatenate([t["capacity"] for t in parts]).astype(np.float32),
        "link_delay": np.concatenate([t["link_delay"] for t in parts]).astype(np.float32),
        "link_full": np.concatenate([t["link_full"] for t in parts]).astype(np.float32),
        "link_floor": np.concatenate([t["link_floor"] for t in parts]).astype(np.float32),
        "flow_graph": np.concatenate([np.full(len(t["flow_x"]), g, dtype=np.int32) for g, t in enumerate(parts)]),
    }


def _transform(x: np.ndarray, transforms: tuple[str | None, ...]) -> np.ndarray:
    """The columns as the model reads them: `log` of rates (floored at 1e-6), `log1p` of times."""
    out = np.array(x, dtype=np.float64, copy=True)
    for i, t in enumerate(transforms):
        if t == "log":
            out[:, i] = np.log(np.maximum(out[:, i], 1e-6))
        elif t == "log1p":
            out[:, i] = np.log1p(np.maximum(out[:, i], 0.0))
    return out


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
        fx = _transform(np.concatenate([t["flow_x"] for t in tensors]), FLOW_TRANSFORMS)
        lx = _transform(np.concatenate([t["link_x"] for t in tensors]), LINK_TRANSFORMS)
        return Normalization(fx.mean(0).tolist(), _scale(fx).tolist(), lx.mean(0).tolist(), _scale(lx).tolist())

    def apply(self, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(t)
        fx, lx = _transform(t["flow_x"], FLOW_TRANSFORMS), _transform(t["link_x"], LINK_TRANSFORMS)
        out["flow_x"] = ((fx - np.asarray(self.flow_mean)) / np.asarray(self.flow_std)).astype(np.float32)
        out["link_x"] = ((lx - np.asarray(self.link_mean)) / np.asarray(self.link_std)).astype(np.float32)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"flow_mean": self.flow_mean, "flow_std": self.flow_std,
                "link_mean": self.link_mean, "link_std": self.link_std}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Normalization:
        return Normalization(d["flow_mean"], d["flow_std"], d["link_mean"], d["link_std"])
