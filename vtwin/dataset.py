"""Training samples: one per labeled window, read from the stores or from an exported JSON Lines
file. A sample is the window's snapshot (inputs only) plus the labels of the flows that have them.

Flows of the window that are not the traffic run's own (D-ITG signaling, TCP acknowledgements)
stay in the snapshot, since they load the links, with their measured rate standing in for an
offered rate and their mean packet size from the counters; they carry no label. Those under
10 kbit/s are left out (`negligible`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from topologies import Topology
from traffic.store import Stores

from .features import FlowSpec, Snapshot, graph_tensors

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

    @property
    def labeled(self) -> int:
        return int(np.isfinite(self.delay_ms).sum())


def _node_of_host(name: str) -> int:
    return int(name[1:]) - 1


def negligible(f: dict[str, Any]) -> bool:
    """A stored flow that is not the run's own and carries under `NEGLIGIBLE_BPS`: D-ITG's signaling
    connections, open for a window or two as a phase starts or ends at 1-5 kbit/s. They load no
    link measurably, but counting them among a link's flows moved every prediction of those
    windows by up to 20 % (on Abilene, a model that had seen 6 flows met 18)."""
    return f.get("flow_no") is None and (f.get("offered_bps") or f.get("measured_bps") or 0.0) < NEGLIGIBLE_BPS


def _flow_spec(f: dict[str, Any]) -> FlowSpec | None:
    links = f["links"] if isinstance(f["links"], list) else json.loads(f["links"])
    if not links or negligible(f):
        return None  # both hosts on one switch (no link to model), or background too small to matter
    rate = f.get("offered_bps") or f.get("measured_bps") or 0.0
    size = f.get("pkt_size")
    if not size:
        wb, wp = f.get("window_bytes"), f.get("window_packets")
        size = max(1.0, wb / wp - 42) if wb and wp else DEFAULT_PKT
    return FlowSpec(f.get("flow_key") or f["key"], tuple(links), _node_of_host(f["src"]), float(rate), float(size),
                    f.get("proto", "udp"))


def window_snapshot(topo: Topology, flows: list[dict[str, Any]]) -> Snapshot | None:
    """The snapshot of one stored window (its snapshot_flows rows); None if no flow crosses a link."""
    specs = [s for s in (_flow_spec(f) for f in flows) if s is not None]
    return Snapshot(topo, specs) if specs else None


def _sample(run: str, window: int, phase: int | None, topo: Topology, flows: list[dict[str, Any]],
            labels: dict[str, tuple[float, float]]) -> Sample | None:
    snap = window_snapshot(topo, flows)
    if snap is None:
        return None
    specs = snap.flows
    d = np.array([labels.get(s.key, (np.nan, np.nan))[0] for s in specs], dtype=np.float32)
    j = np.array([labels.get(s.key, (np.nan, np.nan))[1] for s in specs], dtype=np.float32)
    if not np.isfinite(d).any():
        return None
    return Sample(run, window, phase, topo.name, snap, d, j)


def from_stores(stores: Stores, runs: list[str] | None = None) -> list[Sample]:
    t = stores.traffic
    rows = list(t.query("SELECT id, topology_json FROM runs ORDER BY started_at"))
    out = []
    for r in rows:
        if runs and r["id"] not in runs:
            continue
        topo = Topology.from_dict(json.loads(r["topology_json"]))
        labels: dict[int, dict[str, tuple[float, float]]] = defaultdict(dict)
        for lab in stores.labels.query("SELECT window, flow_key, delay_ms, jitter_ms FROM labels WHERE run_id = ? "
                                       "AND delay_ms IS NOT NULL", [r["id"]]):
            labels[lab["window"]][lab["flow_key"]] = (lab["delay_ms"], lab["jitter_ms"])
        flows: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for f in t.query("SELECT s.window, f.* FROM snapshot_flows f JOIN snapshots s ON s.id = f.snapshot_id "
                         "WHERE s.run_id = ?", [r["id"]]):
            flows[f["window"]].append(f)
        for s in t.query("SELECT window, phase_idx FROM snapshots WHERE run_id = ? ORDER BY window", [r["id"]]):
            if s["window"] in labels:
                smp = _sample(r["id"], s["window"], s["phase_idx"], topo, flows[s["window"]], labels[s["window"]])
                if smp is not None:
                    out.append(smp)
    return out


def from_jsonl(path: Path) -> list[Sample]:
    """Samples of an exported (or imported) JSON Lines file: each window belongs to the run its
    `run` names, whose line came before it (runs' windows may interleave)."""
    out = []
    topos: dict[str, Topology] = {}
    with path.open() as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["type"] == "run":
                topos[rec["id"]] = Topology.from_dict(rec["topology"])
                continue
            topo = topos.get(rec["run"])
            if topo is None:
                raise ValueError(f"{path.name}: a window of run {rec['run']!r} comes before its run line")
            labels = {f["key"]: (f["label"]["delay_ms"], f["label"]["jitter_ms"]) for f in rec["flows"]
                      if f.get("label") and f["label"].get("delay_ms") is not None}
            smp = _sample(rec["run"], rec["window"], rec.get("phase"), topo, rec["flows"], labels)
            if smp is not None:
                out.append(smp)
    return out


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


def batch(samples: list[Sample]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Graph tensors of the samples' disjoint union, with delay and jitter targets (nan = none)."""
    g = graph_tensors([s.snapshot for s in samples])
    return g, np.concatenate([s.delay_ms for s in samples]), np.concatenate([s.jitter_ms for s in samples])
