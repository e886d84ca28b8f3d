"""All-pairs ping between the lab's hosts, one thread per source host (each host has its own
Mininet shell), reporting loss and the pairs that failed."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_RECEIVED = re.compile(r"(\d+) received")
_RTT = re.compile(r"rtt min/avg/max/mdev = [\d.]+/([\d.]+)/")


def _from(src: Any, dsts: list[Any], count: int) -> list[dict[str, Any]]:
    out = []
    for dst in dsts:
        text = src.cmd(f"ping -c {count} -W 2 -i 0.2 -q {dst.IP()}")
        m = _RECEIVED.search(text)
        got = int(m.group(1)) if m else 0
        rtt = _RTT.search(text)
        out.append({"src": src.name, "dst": dst.name, "sent": count, "received": got,
                    "rtt_ms": float(rtt.group(1)) if rtt else None})
    return out


def pingall(hosts: list[Any], count: int = 1) -> dict[str, Any]:
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(32, len(hosts))) as pool:
        jobs = [pool.submit(_from, h, [d for d in hosts if d is not h], count) for h in hosts]
        pairs = [row for job in jobs for row in job.result()]
    sent = sum(p["sent"] for p in pairs)
    received = sum(p["received"] for p in pairs)
    return {
        "pairs": len(pairs),
        "sent": sent,
        "received": received,
        "loss_pct": round(100.0 * (sent - received) / sent, 3) if sent else 0.0,
        "failed": [f"{p['src']}->{p['dst']}" for p in pairs if p["received"] < p["sent"]],
        "seconds": round(time.monotonic() - start, 3),
    }
