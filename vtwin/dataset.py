"""Training samples: one per labeled window, read from the stores or from an exported JSON Lines
file. A sample is the window's snapshot (inputs only) plus the labels of the flows that have them.

Flows of the window that are not the traffic run's own (D-ITG signaling, TCP acknowledgements)
stay in the snapshot, since they load the links, with their measured rate standing in for an
offered rate and their mean packet size from the counters; they carry no label. Those under
10 kbit/s are left out (`negligible`). The run's flows carry the inter-departure process their run's
schedule gave their own phase (`flow_process`); the others none.

A UDP flow of the run enters the snapshot at the rate its ingress switch counted in the window
(`sending_rate`), not the rate it was asked for: UDP is open loop, so what its sender achieved is
what loads the links, and on two busy cores D-ITG senders achieve 85-97 % of their nominal rate
(on the diamond at load 1.4, 89 %: the LP's rerouting, 1.01 of a link's capacity by nominal
rates, was 0.90 by what the senders sent, and measured 4.7 ms, not a full buffer). A TCP flow
keeps its offered rate: its sender sends what the network lets through, so its counted rate
hides the overload that fills its bottleneck's buffer.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from topologies import Topology
from traffic.schedule import phase_of_data_port, phase_process
from traffic.store import Stores
from traffic.window import Label, Window, WindowFlow
from traffic.window_merge import check_label_window, coarsen

from .features import AGE_CAP_S, HEADER_BYTES, FlowSpec, Snapshot, merge, snapshot_tensors

DEFAULT_PKT = 512.0
#: Flows not of the run below this rate are left out of snapshots (see `negligible`).
NEGLIGIBLE_BPS = 10_000.0


@dataclass
class Sample:
    run: str
    window: int
    phase: int | None
    topology: str
    snapshot: Snapshot
    delay_ms: np.ndarray  # per flow, nan where unlabeled
    jitter_ms: np.ndarray
    _tensors: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def labeled(self) -> int:
        return int(np.isfinite(self.delay_ms).sum())

    def tensors(self) -> dict[str, np.ndarray]:
        """The snapshot's own graph tensors, computed once (training batches them every epoch)."""
        if self._tensors is None:
            self._tensors = snapshot_tensors(self.snapshot)
        return self._tensors


def _node_of_host(name: str) -> int:
    return int(name[1:]) - 1


def negligible(f: WindowFlow) -> bool:
    """A flow that is not the run's own and carries under `NEGLIGIBLE_BPS`: D-ITG's signaling
    connections, open for a window or two as a phase starts or ends at 1-5 kbit/s. They load no
    link measurably, but counting them among a link's flows moved every prediction of those
    windows by up to 20 % (on Abilene, a model that had seen 6 flows met 18)."""
    return not f.run_flow and f.rate_bps < NEGLIGIBLE_BPS


def packet_size(f: WindowFlow) -> float:
    """The payload size the run asked for, else the mean the counters show (less the headers)."""
    if f.pkt_size:
        return float(f.pkt_size)
    wb, wp = f.window_bytes, f.window_packets
    return max(1.0, wb / wp - 42) if wb and wp else DEFAULT_PKT


def sending_rate(f: WindowFlow) -> float:
    """The payload rate (bit/s) a flow loads its path with: a UDP run flow's counted in the window
    (the frames its ingress switch counted, less their headers), else the offered rate where the run
    knows it, else the measured one (see the module's docstring)."""
    if f.run_flow and (f.proto or "udp") == "udp" and f.measured_bps and f.window_packets:
        pkt = packet_size(f)
        return float(f.measured_bps) * pkt / (pkt + HEADER_BYTES)
    return f.rate_bps


def flow_age(f: WindowFlow, window_s: float = 1.0) -> float:
    """How long the flow has been sending (s), from its switch counters: the packets its flow entry
    counted since it was installed over those of this window, in windows; `AGE_CAP_S` (settled)
    where the counters do not tell (a window without packets: a stalled TCP sender)."""
    if f.packets and f.window_packets:
        return min(AGE_CAP_S, f.packets / f.window_packets * window_s)
    return AGE_CAP_S


def flow_process(f: WindowFlow, window: Window) -> str:
    """A flow's inter-departure process, from its run's schedule: its own phase's (by the port it
    sends to, `data_port`; else the window's) for a flow the run started, none for the others
    (D-ITG's signaling, what else the switches counted). A window where one phase ends and the next
    begins holds flows of both."""
    if not f.run_flow:
        return ""
    phase = phase_of_data_port(f.dport)
    return phase_process(window.schedule, window.phase if phase is None else phase)


def _flow_spec(f: WindowFlow, window: Window) -> FlowSpec | None:
    if not f.links or negligible(f):
        return None  # both hosts on one switch (no link to model), or background too small to matter
    return FlowSpec(f.flow_key, f.links, _node_of_host(f.src), sending_rate(f), packet_size(f), f.proto or "udp",
                    flow_age(f, window_seconds(window)), flow_process(f, window))


def window_seconds(window: Window) -> float:
    """The window's length (s): from its times where it has them, else the runs' default 1 s."""
    if window.t_start is not None and window.t_end is not None and window.t_end > window.t_start:
        return float(window.t_end - window.t_start)
    return 1.0


def window_snapshot(topo: Topology, window: Window | list[WindowFlow]) -> Snapshot | None:
    """The virtual twin's snapshot of a window (or of some of its flows); None if no flow crosses
    a link. The one place a `Snapshot` is made from measured data."""
    if not isinstance(window, Window):
        window = Window("", 0, flows=window, t_start=0.0, t_end=1.0)
    specs = [s for s in (_flow_spec(f, window) for f in window.flows) if s is not None]
    return Snapshot(topo, specs) if specs else None


def sample(window: Window, topo: Topology) -> Sample | None:
    """The training sample of a window: its snapshot and its flows' labels (None without one)."""
    snap = window_snapshot(topo, window)
    if snap is None:
        return None
    nan = Label(None, None)
    labs = [window.labels.get(s.key, nan) for s in snap.flows]
    d = np.array([np.nan if lab.delay_ms is None else lab.delay_ms for lab in labs], dtype=np.float32)
    j = np.array([np.nan if lab.jitter_ms is None else lab.jitter_ms for lab in labs], dtype=np.float32)
    if not np.isfinite(d).any():
        return None
    return Sample(window.run, window.window, window.phase, topo.name, snap, d, j)


def one_state(window: Window) -> bool:
    """Whether the window saw one traffic state: not run flows of two phases (one phase ending
    and the next beginning inside it, the senders of both counted at their full rates), and no
    run flow in its first window (its flow entry installed during the window: a sender starting,
    TCP in slow start, its label over part of the window). Neither is a state any snapshot
    describes. On the unseen corpus of 2026-12-07 the two kinds were 25 of about 175 windows of
    each network and the shipped model scored 13-120 % delay MAPE on them (two phases) and 18-44 %
    (starting) against 12-28 % on the rest (README, 'One traffic state per window')."""
    phases = set()
    for f in window.flows:
        if f.run_flow:
            if f.packets and f.window_packets and f.packets <= f.window_packets:
                return False
            phase = phase_of_data_port(f.dport)
            if phase is not None:
                phases.add(phase)
    return len(phases) <= 1


def from_stores(stores: Stores, runs: list[str] | None = None, label_window: int = 1) -> list[Sample]:
    """Samples of the stores' runs (all, or those named), from each run's `state_windows`."""
    out = []
    for r in stores.runs():
        if runs and r["id"] not in runs:
            continue
        topo = Topology.from_dict(json.loads(r["topology_json"]))
        windows = state_windows(stores.windows(r["id"], labels=True, labeled_only=label_window == 1), label_window)
        out += [s for s in (sample(w, topo) for w in windows) if s is not None]
    return out


def state_windows(windows: list[Window], label_window: int = 1) -> list[Window]:
    """The windows of one run that samples are made of: those inside its phases (`within_phases`)
    that saw one traffic state (`one_state`), every `label_window` consecutive windows of a phase
    merged into one (`traffic.window_merge`). Filtered before any snapshot is built."""
    return coarsen([w for w in within_phases(windows) if one_state(w)], label_window)


_Phased = TypeVar("_Phased", Window, Sample)


def within_phases(items: list[_Phased]) -> list[_Phased]:
    """The windows (or samples) that lie in their run's schedule's phases, for each run that has
    any. A window outside them (before the first phase starts, after the last one ends, or in a gap between
    two: the senders starting or draining) is not a traffic state the schedule describes, yet its
    TCP flows still carry their phase's offered rate, and `split` held the last of such windows
    out as a group of their own. Few (the fixed-relay base corpus of 2026-12-07: 22 of 4,691
    windows, 179 of 40,785 labeled flow-windows) but far off: Janetbackbone's 9 such labels
    averaged 21.8 ms where its uncongested phases measured 2.8-5.5 ms on average. A run without
    phases keeps every window."""
    phased = {s.run for s in items if s.phase is not None}
    return [s for s in items if s.phase is not None or s.run not in phased]


def from_corpus(stores: Stores, label_window: int = 1) -> list[Sample]:
    """Samples of a corpus' done runs (`traffic.campaign`), or of every run without a campaign record."""
    from traffic.campaign import done_run_ids

    runs = done_run_ids(stores.root)
    if runs is not None and not runs:
        return []
    return from_stores(stores, runs, label_window)


def joined(parts: list[list[Sample]]) -> list[Sample]:
    """Several corpora's samples as one training set (e.g. base, whose runs keep one flow set,
    and base-pairs, whose phases each draw their own). Runs are told apart by their ids, which
    `split` groups on, so a run id in two parts (one corpus given twice, or a copy of one) raises
    ValueError rather than merging two runs' phases."""
    seen: dict[str, int] = {}
    for i, part in enumerate(parts):
        for run in {s.run for s in part}:
            if run in seen:
                raise ValueError(f"run {run} is in corpus {seen[run] + 1} and in corpus {i + 1}: "
                                 "give each corpus once")
            seen[run] = i
    return [s for part in parts for s in part]


def from_jsonl(path: Path, label_window: int = 1) -> list[Sample]:
    """Samples of an exported (or imported) JSON Lines file, from each run's `state_windows`: each
    window belongs to the run its `run` names, whose line came before it (runs' windows may
    interleave; the samples come run by run, in the order the runs first appear)."""
    check_label_window(label_window)
    topos: dict[str, Topology] = {}
    schedules: dict[str, Any] = {}
    windows: dict[str, list[Window]] = defaultdict(list)
    with path.open() as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["type"] == "run":
                topos[rec["id"]] = Topology.from_dict(rec["topology"])
                schedules[rec["id"]] = rec.get("schedule")
                continue
            if rec["run"] not in topos:
                raise ValueError(f"{path.name}: a window of run {rec['run']!r} comes before its run line")
            windows[rec["run"]].append(Window(
                rec["run"], rec["window"], t_start=rec.get("t_start"), t_end=rec.get("t_end"),
                phase=rec.get("phase"), schedule=schedules[rec["run"]],
                flows=[WindowFlow.from_row(f) for f in rec["flows"]],
                labels={f["key"]: Label.from_row(f["label"]) for f in rec["flows"] if f.get("label")}))
    return [s for run, ws in windows.items()
            for s in (sample(w, topos[run]) for w in state_windows(ws, label_window)) if s is not None]


def split(samples: list[Sample], held_out: float = 0.2) -> tuple[list[Sample], list[Sample]]:
    """Hold out the last `held_out` share of every (run, phase): contiguous, so neighbouring
    windows of the training set do not leak into the test set."""
    groups: dict[tuple[str, Any], list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.run, s.phase)].append(s)
    train, test = [], []
    for group in groups.values():
        group.sort(key=lambda s: s.window)
        k = max(1, round(len(group) * held_out)) if len(group) > 1 else 0
        train += group[: len(group) - k]
        test += group[len(group) - k:]
    return train, test


def steady(samples: list[Sample], skip_first: bool = True) -> list[Sample]:
    """One sample per (run, phase): each flow's labels averaged over the phase's windows, its
    steady state. A phase's inputs (routing, offered rates, packet sizes, capacities, buffers) are
    constant, so its windows are repeated measurements of one state; within a phase a flow's
    window labels vary by 19 % (leave-one-out, base corpus: `label_floor`), which bounds any
    per-window score, and a phase mean is the quantity a RouteNet-style twin predicts (the mean
    delay of a stationary traffic matrix). The phase's first window, its start-up transient, is
    left out where the phase has three or more. The snapshot is that of the window with the most
    flows (the background flows a window sees differ a little). Samples without a phase pass
    through as they are."""
    groups: dict[tuple[str, int], list[Sample]] = defaultdict(list)
    out: list[Sample] = []
    for s in samples:
        if s.phase is None:
            out.append(s)
        else:
            groups[(s.run, s.phase)].append(s)
    for (run, phase), group in groups.items():
        group.sort(key=lambda s: s.window)
        if skip_first and len(group) >= 3:
            group = group[1:]
        ref = max(group, key=lambda s: (len(s.snapshot.flows), s.labeled))
        d: dict[str, list[float]] = defaultdict(list)
        j: dict[str, list[float]] = defaultdict(list)
        for s in group:
            for f, dv, jv in zip(s.snapshot.flows, s.delay_ms, s.jitter_ms, strict=True):
                if np.isfinite(dv):
                    d[f.key].append(float(dv))
                if np.isfinite(jv):
                    j[f.key].append(float(jv))
        delay = np.array([np.mean(d[f.key]) if d.get(f.key) else np.nan for f in ref.snapshot.flows], np.float32)
        jitter = np.array([np.mean(j[f.key]) if j.get(f.key) else np.nan for f in ref.snapshot.flows], np.float32)
        if np.isfinite(delay).any():
            out.append(Sample(run, ref.window, phase, ref.topology, ref.snapshot, delay, jitter))
    return out


def batch(samples: list[Sample]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Graph tensors of the samples' disjoint union, with delay and jitter targets (nan = none)."""
    g = merge([s.tensors() for s in samples])
    return g, np.concatenate([s.delay_ms for s in samples]), np.concatenate([s.jitter_ms for s in samples])
