"""D-ITG: the sender command for a flow, and decoding of its logs (ITGDec -l) into packets.

ITGSend's inter-departure options: -C constant, -E exponential, -O Poisson, -U uniform (all in
packets/s); size options: -c constant, -e exponential, -o Poisson, -u uniform (bytes).
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

IDT_OPT = {"constant": "-C", "exponential": "-E", "poisson": "-O", "uniform": "-U"}
SIZE_OPT = {"constant": "-c", "exponential": "-e", "poisson": "-o", "uniform": "-u"}
#: Uniform distributions span mean x (1 - SPREAD) .. mean x (1 + SPREAD): for inter-departure
#: times that is 1/rate x (1 +- SPREAD), i.e. rates from rate/(1 + SPREAD) to rate/(1 - SPREAD),
#: so that the mean rate is the one asked for.
SPREAD = 0.5


def sender_args(dst_ip: str, dport: int, protocol: str, idt: str, pps: float,
                size: str, mean_size: int, duration_ms: int, tx_log: Path, rx_log: Path) -> list[str]:
    """ITGSend arguments for one flow. The source port is left to the OS: D-ITG 2.8.1's `-sp`
    fails here ("Address family not supported by protocol"); flows are told apart by their
    destination port, and the source port is read back from the logs."""
    args = ["ITGSend", "-a", dst_ip, "-rp", str(dport), "-T", protocol]
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
class Packet:
    seq: int
    src: str  # ip/port
    dst: str  # ip/port
    tx: float  # epoch seconds
    rx: float | None
    size: int


_LINE = re.compile(r"Flow>\s*(\d+)\s+Seq>\s*(\d+)\s+Src>\s*(\S+)\s+Dest>\s*(\S+)\s+"
                   r"txTime>\s*([\d:.]+)\s+rxTime>\s*([\d:.]+)\s+Size>\s*(\d+)")


def _epoch(tod: str, ref: float) -> float:
    """A time of day (H:M:S.us, local time, as D-ITG logs it) as epoch seconds nearest `ref`."""
    h, m, s = tod.split(":")
    secs = int(h) * 3600 + int(m) * 60 + float(s)
    lt = time.localtime(ref)
    midnight = ref - (lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + (ref % 1))
    t = midnight + secs
    if t - ref > 43200:
        t -= 86400
    elif ref - t > 43200:
        t += 86400
    return t


def decode(log: Path, ref: float, workdir: Path) -> list[Packet]:
    """Packets of a D-ITG binary log (sender or receiver side); [] when the log is missing."""
    if not log.exists() or log.stat().st_size == 0:
        return []
    out = workdir / (log.name + ".txt")
    subprocess.run(["ITGDec", str(log), "-l", str(out)], capture_output=True, timeout=300, cwd=workdir)
    packets = []
    if not out.exists():
        return packets
    with out.open() as fh:
        for line in fh:
            m = _LINE.search(line)
            if not m:
                continue
            rx = m.group(6)
            packets.append(Packet(int(m.group(2)), m.group(3), m.group(4), _epoch(m.group(5), ref),
                                  _epoch(rx, ref) if rx not in ("0:0:0.000000", "0:0:0.0") else None,
                                  int(m.group(7))))
    out.unlink()
    return packets
