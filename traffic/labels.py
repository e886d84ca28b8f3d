"""Per-flow per-window labels from decoded D-ITG packets: mean one-way delay, jitter (mean
absolute difference of consecutive delays), loss and received bitrate. Packets belong to the
window in which they were sent, like the traffic store's counters read at the ingress switch."""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import pairwise
from statistics import fmean
from typing import Any

from .ditg import Packet


def window_of(t: float, t0: float, window_s: float) -> int:
    return math.floor((t - t0) / window_s)


def window_labels(sent: list[Packet], received: list[Packet], t0: float,
                  window_s: float) -> dict[int, dict[str, Any]]:
    """window -> {delay_ms, jitter_ms, loss_pct, sent, received, rx_bps}."""
    rx_by_seq = {p.seq: p for p in received if p.rx is not None}
    if not sent:  # no sender log: the receiver's packets stand for what was sent
        sent = list(rx_by_seq.values())
    by_window: dict[int, list[Packet]] = defaultdict(list)
    for p in sent:
        by_window[window_of(p.tx, t0, window_s)].append(p)
    rx_bytes: dict[int, int] = defaultdict(int)
    for p in rx_by_seq.values():
        rx_bytes[window_of(p.rx, t0, window_s)] += p.size
    out = {}
    for w, pkts in sorted(by_window.items()):
        got = sorted((rx_by_seq[p.seq] for p in pkts if p.seq in rx_by_seq), key=lambda p: p.seq)
        delays = [(p.rx - p.tx) * 1000.0 for p in got]
        out[w] = {
            "delay_ms": fmean(delays) if delays else None,
            "jitter_ms": fmean(abs(b - a) for a, b in pairwise(delays)) if len(delays) > 1 else 0.0,
            "loss_pct": 100.0 * (len(pkts) - len(got)) / len(pkts),
            "sent": len(pkts),
            "received": len(got),
            "rx_bps": 8.0 * rx_bytes.get(w, 0) / window_s,
        }
    return out
