"""A measurement window as the parts above the traffic layer see it: the snapshot (when, which
phase, which routing), every flow the switches counted with its path and rates, every link with
its capacity, load and buffer, and the labels measured for its flows. Plain typed records, read
from the traffic store (`traffic.store.Stores.windows`) or from an exported JSON Lines file; the
virtual twin's `Snapshot` is made from a window in one place (`vtwin.dataset.window_snapshot`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class WindowFlow:
    """One flow of a window: the traffic run's own (`flow_no` set) or background the switches
    counted (D-ITG signaling, TCP acknowledgements)."""

    flow_key: str
    src: str
    dst: str
    proto: str | None
    links: tuple[str, ...]
    offered_bps: float | None = None
    measured_bps: float | None = None
    pkt_size: float | None = None
    window_packets: int | None = None
    window_bytes: int | None = None
    packets: int | None = None
    bytes: int | None = None
    flow_no: int | None = None
    sport: int | None = None
    dport: int | None = None
    ctl_flow_id: int | None = None
    ctl_rate_bps: float | None = None

    @property
    def run_flow(self) -> bool:
        return self.flow_no is not None

    @property
    def rate_bps(self) -> float:
        """The offered rate where the run knows it, else the measured one."""
        return float(self.offered_bps or self.measured_bps or 0.0)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WindowFlow:
        """A `snapshot_flows` row (links as JSON text) or an export's flow (`key`, links as a list)."""
        links = row.get("links")
        if isinstance(links, str):
            links = json.loads(links or "[]")
        return cls(row.get("flow_key") or row["key"], row["src"], row["dst"], row.get("proto"), tuple(links or ()),
                   **{k: row.get(k) for k in _OPTIONAL_FLOW})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "links": list(self.links)}

    def to_row(self) -> dict[str, Any]:
        """The `snapshot_flows` row (links as JSON text)."""
        return {**asdict(self), "links": json.dumps(list(self.links))}


_OPTIONAL_FLOW = [f for f in WindowFlow.__dataclass_fields__ if f not in ("flow_key", "src", "dst", "proto", "links")]


@dataclass(frozen=True)
class WindowLink:
    """One link of a window: capacity and propagation delay as the lab set them, and per direction
    the load and drops the switches counted and the buffer (packets)."""

    link_id: str
    capacity_mbps: float | None
    delay_ms: float | None
    up: int | None = 1
    load_ab_bps: float | None = None
    load_ba_bps: float | None = None
    drops_ab: int | None = None
    drops_ba: int | None = None
    queue_pkts: int | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> WindowLink:
        return cls(**{k: row.get(k) for k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Label:
    """What D-ITG measured for one flow in one window."""

    delay_ms: float | None
    jitter_ms: float | None
    loss_pct: float | None = None
    sent: int | None = None
    received: int | None = None
    rx_bps: float | None = None

    @property
    def lost(self) -> bool:
        """Every packet sent in the window was lost."""
        return bool(self.sent) and not self.received

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Label:
        return cls(**{k: row.get(k) for k in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Window:
    """One measurement window of a run."""

    run: str
    window: int
    snapshot_id: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    phase: int | None = None
    topology: str | None = None
    routing_version: int | None = None
    flows: list[WindowFlow] = field(default_factory=list)
    links: list[WindowLink] = field(default_factory=list)
    labels: dict[str, Label] = field(default_factory=dict)
    #: the run's schedule as stored (`Schedule.to_dict`): what its flows were asked to send
    #: (`vtwin.dataset.flow_process`); None where not known
    schedule: dict[str, Any] | None = None

    @property
    def run_flows(self) -> list[WindowFlow]:
        return [f for f in self.flows if f.run_flow]

    @property
    def labeled(self) -> int:
        return sum(1 for lab in self.labels.values() if lab.delay_ms is not None)
