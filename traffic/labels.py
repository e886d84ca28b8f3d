"""Per-flow per-window labels from decoded D-ITG packets: mean one-way delay, jitter (mean
absolute difference of consecutive delays), loss and received bitrate. Packets belong to the
window in which they were sent, like the traffic store's counters read at the ingress switch.
Computed on whole columns (numpy), so relabeling a growing phase costs little per packet."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .ditg import Packets


def window_of(t: float, t0: float, window_s: float) -> int:
    return math.floor((t - t0) / window_s)


def _windows(t: np.ndarray, t0: float, window_s: float) -> np.ndarray:
    return np.floor((t - t0) / window_s).astype(np.int64)


def window_labels(sent: Packets, received: Packets, t0: float, window_s: float) -> dict[int, dict[str, Any]]:
    """window -> {delay_ms, jitter_ms, loss_pct, sent, received, rx_bps}."""
    ok = ~np.isnan(received.rx)
    rseq, rtx, rrx, rsize = received.seq[ok], received.tx[ok], received.rx[ok], received.size[ok]
    # one record per sequence number, the last one logged (a duplicate delivery counts once)
    order = np.argsort(rseq, kind="stable")
    rseq, rtx, rrx, rsize = rseq[order], rtx[order], rrx[order], rsize[order]
    last = np.r_[rseq[1:] != rseq[:-1], True] if rseq.size else np.zeros(0, bool)
    rseq, rtx, rrx, rsize = rseq[last], rtx[last], rrx[last], rsize[last]
    if len(sent) == 0:  # no sender log: the receiver's packets stand for what was sent
        sent = Packets(rseq, rtx, rrx, rsize)
    if len(sent) == 0:
        return {}
    ws = _windows(sent.tx, t0, window_s)
    order = np.lexsort((sent.seq, ws))  # by window, then sequence number
    ws, seq = ws[order], sent.seq[order]
    pos = np.minimum(np.searchsorted(rseq, seq), max(rseq.size - 1, 0))
    hit = rseq[pos] == seq if rseq.size else np.zeros(seq.size, bool)
    base = int(ws[0])
    span = int(ws[-1]) - base + 1
    n_sent = np.bincount(ws - base, minlength=span)
    gw = ws[hit] - base
    delay = (rrx[pos[hit]] - rtx[pos[hit]]) * 1000.0
    n_got = np.bincount(gw, minlength=span)
    delay_sum = np.bincount(gw, weights=delay, minlength=span)
    same = gw[1:] == gw[:-1]  # consecutive received packets of one window
    jit_sum = np.bincount(gw[1:][same], weights=np.abs(np.diff(delay))[same], minlength=span)
    rxw = _windows(rrx, t0, window_s) - base
    inside = (rxw >= 0) & (rxw < span)
    rx_bytes = np.bincount(rxw[inside], weights=rsize[inside].astype(float), minlength=span)
    out = {}
    for i in np.flatnonzero(n_sent):
        n, g = int(n_sent[i]), int(n_got[i])
        out[base + int(i)] = {
            "delay_ms": float(delay_sum[i] / g) if g else None,
            "jitter_ms": float(jit_sum[i] / (g - 1)) if g > 1 else 0.0,
            "loss_pct": 100.0 * (n - g) / n,
            "sent": n,
            "received": g,
            "rx_bps": 8.0 * float(rx_bytes[i]) / window_s,
        }
    return out
