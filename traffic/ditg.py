"""D-ITG: the sender command for a flow, and incremental decoding of its binary logs into packets.

ITGSend's inter-departure options: -C constant, -E exponential, -O Poisson, -U uniform (all in
packets/s); size options: -c constant, -e exponential, -o Poisson, -u uniform (bytes).
"""

from __future__ import annotations

import functools
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IDT_OPT = {"constant": "-C", "exponential": "-E", "poisson": "-O", "uniform": "-U"}
SIZE_OPT = {"constant": "-c", "exponential": "-e", "poisson": "-o", "uniform": "-u"}
#: Uniform distributions span mean x (1 - SPREAD) .. mean x (1 + SPREAD): for inter-departure
#: times that is 1/rate x (1 +- SPREAD), i.e. rates from rate/(1 + SPREAD) to rate/(1 - SPREAD),
#: so that the mean rate is the one asked for.
SPREAD = 0.5
#: SCHED_FIFO priority D-ITG's senders and receivers run at, where the machine allows it.
REALTIME_PRIORITY = 10


@functools.cache
def realtime_prefix() -> tuple[str, ...]:
    """`chrt -f REALTIME_PRIORITY` where this machine lets us start real-time programs, else ().

    ITGSend times each packet from the previous one's departure, so every late wakeup is rate lost
    for good: on two cores, a 1130 pkt/s UDP sender achieved 89.5 % of its rate beside one busy
    process and 67 % beside five at normal priority, 97.7 % beside five at SCHED_FIFO 10 (nice -10
    gave 88 %).
    ITGRecv stamps arrivals, so its wakeup latency would be measured as delay. Both block between
    packets, so real-time priority costs the machine only what they really use."""
    try:
        r = subprocess.run(["chrt", "-f", str(REALTIME_PRIORITY), "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return ("chrt", "-f", str(REALTIME_PRIORITY)) if r.returncode == 0 else ()


def sender_args(dst_ip: str, dport: int, protocol: str, idt: str, pps: float,
                size: str, mean_size: int, duration_ms: int, tx_log: Path, rx_log: Path) -> list[str]:
    """ITGSend arguments for one flow. The source port is left to the OS: D-ITG 2.8.1's `-sp`
    fails here ("Address family not supported by protocol"); flows are told apart by their
    destination port, and the source port is read back from the logs.

    TCP senders keep Nagle's algorithm (no `-D`). Without it an uncongested exponential TCP flow
    measures less sender-side wait (3.8 -> 2.0 ms over propagation at load 0.3), but an overloaded
    one sends every datagram as its own segment and its delay climbs higher and less predictably
    over a phase: with both corpora rebuilt without Nagle (2026-12-06) the rebuilt base model
    scored 11.0 % on uncongested flows (13.7 % with Nagle) and 56.0 % on overloaded ones (38.8 %),
    the same 17.5 % overall, and -0.45 dB NMSE where it had -5.04 (README, 'The base model')."""
    args = [*realtime_prefix(), "ITGSend", "-a", dst_ip, "-rp", str(dport), "-T", protocol]
    if idt == "uniform":
        args += ["-U", f"{pps / (1 + SPREAD):.3f}", f"{pps / (1 - SPREAD):.3f}"]
    else:
        args += [IDT_OPT[idt], f"{pps:.3f}"]
    if size == "uniform":
        args += ["-u", str(int(mean_size * (1 - SPREAD))), str(int(mean_size * (1 + SPREAD)))]
    else:
        args += [SIZE_OPT[size], str(mean_size)]
    return args + ["-t", str(duration_ms), "-l", str(tx_log), "-x", str(rx_log)]


@dataclass(frozen=True)
class Packets:
    """Packets of one D-ITG log as columns: sequence number, send and receive time (epoch seconds;
    receive time NaN where the packet was not received) and size in bytes."""

    seq: np.ndarray
    tx: np.ndarray
    rx: np.ndarray
    size: np.ndarray
    sport: int | None = None  # the flow's source port (D-ITG picks it; read back from the log)

    def __len__(self) -> int:
        return int(self.seq.size)

    def rate_pps(self) -> float | None:
        """Packets per second sent: the packets over the span of their send times (None for fewer
        than two packets). Set beside the rate asked for, it shows a sender that fell short."""
        if self.tx.size < 2:
            return None
        span = float(self.tx.max() - self.tx.min())
        return (self.tx.size - 1) / span if span > 0 else None

    def select(self, mask: np.ndarray) -> Packets:
        return Packets(self.seq[mask], self.tx[mask], self.rx[mask], self.size[mask], self.sport)

    @classmethod
    def empty(cls, sport: int | None = None) -> Packets:
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64), sport)

    @classmethod
    def concat(cls, parts: list[Packets]) -> Packets:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("seq", "tx", "rx", "size")),
                   parts[0].sport)


#: One record of a D-ITG 2.8.1 binary log (ITGSend -l and -x alike), little-endian, 144 bytes: flow,
#: sequence number, source and destination port, send hour and minute, receive hour and minute,
#: size, source and destination address as NUL-padded text, send and receive seconds. Times are
#: the local time of day. Checked against `ITGDec -l` in tests/test_traffic_units.py.
RECORD = np.dtype([("flow", "<u4"), ("seq", "<u4"), ("sport", "<u4"), ("dport", "<u4"),
                   ("tx_h", "<u4"), ("tx_m", "<u4"), ("rx_h", "<u4"), ("rx_m", "<u4"), ("size", "<u4"),
                   ("src", "S46"), ("dst", "S46"), ("tx_s", "<f8"), ("rx_s", "<f8")])


def _midnight(ref: float) -> float:
    """Epoch seconds of the local midnight before `ref`."""
    lt = time.localtime(ref)
    return ref - (lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + (ref % 1))


def _epoch(h: np.ndarray, m: np.ndarray, s: np.ndarray, ref: float) -> np.ndarray:
    """Local times of day as epoch seconds, each the one nearest `ref` (a run spans midnight)."""
    t = _midnight(ref) + h * 3600.0 + m * 60.0 + s
    return t - 86400.0 * (t - ref > 43200) + 86400.0 * (ref - t > 43200)


def encode_records(seq: np.ndarray, tx: np.ndarray, rx: np.ndarray | None, sport: int, size: int = 500) -> bytes:
    """Packets as D-ITG binary log records (the inverse of `LogReader`; for tests and benches):
    send and receive times as times of the local day (`rx` None: no receive time, a sender's log)."""
    rec = np.zeros(len(seq), RECORD)
    rec["seq"], rec["sport"], rec["size"] = seq, sport, size
    for t, h, m, sec in ((tx, "tx_h", "tx_m", "tx_s"), (rx, "rx_h", "rx_m", "rx_s")):
        if t is not None and len(t):
            into = np.asarray(t) - _midnight(float(t[0]))
            rec[h], rec[m], rec[sec] = into // 3600, (into % 3600) // 60, into % 60
    return rec.tobytes()


class LogReader:
    """Reads a D-ITG binary log as it grows: every `read()` decodes only the whole records
    appended since the last one (a writer may have flushed part of a record) and returns all
    packets so far; `since(t)` returns only the packets sent from `t` on, so a live labeling pass
    late in a long phase costs what the windows it labels hold, not the whole log. A missing log
    reads as no packets."""

    def __init__(self, path: Path, ref: float) -> None:
        self.path = path
        self.ref = ref
        self.offset = 0
        self.chunks: list[tuple[float, Packets]] = []  # (latest send time, packets) in the order decoded
        self.sport: int | None = None

    def _decode_new(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        n = (size - self.offset) // RECORD.itemsize
        if n <= 0:
            return
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            rec = np.frombuffer(fh.read(n * RECORD.itemsize), RECORD)
        self.offset += n * RECORD.itemsize
        lost = (rec["rx_h"] == 0) & (rec["rx_m"] == 0) & (rec["rx_s"] == 0)
        rx = np.where(lost, np.nan, _epoch(rec["rx_h"], rec["rx_m"], rec["rx_s"], self.ref))
        if self.sport is None:
            self.sport = int(rec["sport"][0])
        tx = _epoch(rec["tx_h"], rec["tx_m"], rec["tx_s"], self.ref)
        self.chunks.append((float(tx.max()), Packets(rec["seq"].astype(np.int64), tx, rx, rec["size"].astype(np.int64),
                                                     self.sport)))

    def read(self) -> Packets:
        """Every packet logged so far."""
        return self.since(-np.inf)

    def since(self, t: float) -> Packets:
        """The packets logged so far that were sent at `t` or later."""
        self._decode_new()
        recent = [c for top, c in self.chunks if top >= t]
        if not recent:
            return Packets.empty(self.sport)
        if len(recent) == 1 and recent[0].tx.min() >= t:
            return recent[0]
        # one piece from `t` on, so the next pass (a later `t`) finds little to copy or mask
        merged = Packets.concat(recent)
        keep = merged.tx >= t
        older, newer = merged.select(~keep), merged.select(keep)
        self.chunks = [(top, c) for top, c in self.chunks if top < t]
        self.chunks += [(float(c.tx.max()), c) for c in (older, newer) if c.tx.size]
        return newer
