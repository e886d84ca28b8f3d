"""The collector: at the end of every measurement window, one snapshot of the live network from
the controller's REST API (routing version, every active flow with its path and counters, every
link with capacity, load and drops) into the traffic store, in one transaction.

Window k of a run covers [t0 + k*W, t0 + (k+1)*W). A collector that falls behind (a busy
machine, a slow controller) or is restarted stores the windows it missed late, up to
`MAX_CATCH_UP` of them, sharing the counters' increase between them; windows already stored are
never written twice. A window whose run flows' counters the controller has not refreshed since the
last one (its stats poll was late: a busy machine) waits for fresh counters, until the next window
ends at most, and is then stored with it, the increase shared: otherwise it would show those flows
idle and the next window doubled, which a drift detector reads as a change of rate.

    python -m traffic.collector --run RUN [--data DIR] [--controller URL]
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from typing import Any

from controller_app.client import ControllerClient, ControllerError

from .store import Stores, flow_key, match_key

#: How many ended windows a late collector still stores (sharing the counters' increase between them).
MAX_CATCH_UP = 10
#: How long a collector waits before it reads stale counters again (the controller polls every second).
STALE_RETRY_S = 0.1


#: How far the time between two stats replies may stray from the windows' length before a flow's
#: rate is counted over the windows' length instead (a reply missing its time, a restarted
#: collector). At 0.5, a reply more than half a window early was counted over the window's length:
#: germany_50's plans15 read 14 of 40 flows at half their rate in one window and planned on it.
SPAN_TOLERANCE = 0.75


def counted_span(at: float | None, prev_at: float | None, windows_s: float, reset: bool = False) -> float:
    """The time (s) over which a flow's counter increase since the last window was counted: between
    the two stats replies that carried the counters where both are known and within
    `SPAN_TOLERANCE` of the windows' length, else the windows' length. The controller polls every
    second, not at the windows' edges: a reply 0.2 s early leaves a window 0.8 s of packets and the
    next 1.2 s. Counted over the window's length, a germany_50 plans bench (deterministic UDP at
    11.7 packets/s per flow) read 9.3 packets/s on average in one window and 12.4 in the window
    before; the twin planned on the low one and put the network's p95 delay at 605 ms where 1,373
    ms was measured."""
    if reset or at is None or prev_at is None:
        return windows_s
    span = at - prev_at
    return span if abs(span - windows_s) <= SPAN_TOLERANCE * windows_s else windows_s


class Collector:
    def __init__(self, stores: Stores, run_id: str, client: ControllerClient) -> None:
        self.stores = stores
        self.run = stores.run(run_id)
        self.run_id = run_id
        self.client = client
        self.window_s = float(self.run["window_s"])
        self.t0 = float(self.run["t0"])
        self.prev: dict[str, tuple[int, int]] = {}  # flow key -> (packets, bytes) at the last window
        self.prev_at: dict[str, float] = {}  # run flow key -> when the switch reported those counters
        self._load_prev()
        self.stopping = False

    def _load_prev(self) -> None:
        last = self.stores.last_window(self.run_id)
        if last is None:
            return
        self.prev.update(self.stores.counters(last["id"]))

    def _offered(self) -> dict[str, dict[str, Any]]:
        """Traffic-run flows by match key (the source port is chosen by the OS)."""
        return {match_key(r["proto"], r["src_ip"], r["dst_ip"], r["dport"]): r
                for r in self.stores.run_flows(self.run_id)}

    def _phase_at(self, t: float) -> int | None:
        return self.stores.phase_at(self.run_id, t)

    def _stale(self, flows: list[tuple[str, dict[str, Any]]], offered: dict[str, dict[str, Any]]) -> bool:
        """True when no run flow's counters were refreshed since the last window was stored."""
        known = [(key, f["counters_at"]) for key, f in flows if f.get("counters_at") is not None
                 and key in self.prev_at and match_key(f["proto"], f["src_ip"], f["dst_ip"], f["dport"]) in offered]
        return bool(known) and all(at <= self.prev_at[key] for key, at in known)

    def collect(self, windows: list[int], force: bool = False) -> int | None:
        """Read the controller once and store `windows` (consecutive, all ended); return how many
        were new, or None (nothing stored) when the run flows' counters are stale (see above) and
        not `force`. More than one window means the collector is late (the machine is busy): the
        counters' increase since the last window stored is shared evenly between them, so that
        every window has its snapshot instead of some being skipped."""
        health = self.client.get("/health")
        flows = [(flow_key(f["proto"], f["src_ip"], f["sport"], f["dst_ip"], f["dport"]), f)
                 for f in self.client.flows()]
        offered = self._offered()
        if not force and self._stale(flows, offered):
            return None
        links = self.client.links()
        k = len(windows)
        seen = {}
        per_window: list[list[dict[str, Any]]] = [[] for _ in windows]
        for key, f in flows:
            # A flow not seen at the last window started since: all its bytes are new.
            pp, pb = self.prev.get(key, (0, 0))
            if f["packets"] < pp or f["bytes"] < pb:
                pp, pb = 0, 0  # its rule was replaced: counters started again
            window_span_s = counted_span(f.get("counters_at"), self.prev_at.get(key) if key in self.prev else None,
                                         k * self.window_s, reset=pp == 0) / k
            seen[key] = (f["packets"], f["bytes"])
            o = offered.get(match_key(f["proto"], f["src_ip"], f["dst_ip"], f["dport"]), {})
            for i in range(k):
                p0, p1 = pp + (f["packets"] - pp) * i // k, pp + (f["packets"] - pp) * (i + 1) // k
                b0, b1 = pb + (f["bytes"] - pb) * i // k, pb + (f["bytes"] - pb) * (i + 1) // k
                if p1 == p0:
                    continue  # idle in this window (its rule has not expired yet): not an active flow
                per_window[i].append({
                    "flow_key": key, "ctl_flow_id": f["id"], "src": f["src"], "dst": f["dst"], "proto": f["proto"],
                    "sport": f["sport"], "dport": f["dport"], "links": json.dumps(f["links"]),
                    "packets": p1, "bytes": b1, "window_packets": p1 - p0, "window_bytes": b1 - b0,
                    "measured_bps": 8.0 * (b1 - b0) / window_span_s,
                    "ctl_rate_bps": f["rate_bps"], "offered_bps": o.get("offered_bps"),
                    "pkt_size": o.get("pkt_size"), "flow_no": o.get("flow_no"),
                })
        lrows = [{
            "link_id": lk["id"], "capacity_mbps": lk["capacity_mbps"], "delay_ms": lk["delay_ms"],
            "queue_pkts": lk.get("queue_pkts"),
            "up": int(lk["up"]), "load_ab_bps": lk["load_bps"]["a_to_b"], "load_ba_bps": lk["load_bps"]["b_to_a"],
            "drops_ab": lk["tx_dropped"]["a_to_b"], "drops_ba": lk["tx_dropped"]["b_to_a"],
        } for lk in links]
        written = 0
        for window, frows in zip(windows, per_window, strict=True):
            t_start = self.t0 + window * self.window_s
            snap = {"run_id": self.run_id, "window": window, "t_start": t_start, "t_end": t_start + self.window_s,
                    "phase_idx": self._phase_at(t_start + self.window_s / 2), "topology": health.get("topology"),
                    "routing_version": health.get("routing_version")}
            written += self.stores.write_window(snap, frows, lrows)
        if k > 1:
            self.stores.event(self.run_id, time.time(), "collector_late",
                              {"windows": windows, "late_s": round(time.time() - self.t0 -
                                                                   (windows[-1] + 1) * self.window_s, 3)})
        self.prev = seen
        self.prev_at = {key: f["counters_at"] for key, f in flows if f.get("counters_at") is not None}
        return written

    def run_until(self, end_at: float | None = None) -> int:
        """Collect every window from now until `end_at` (or until stopped); return windows written.
        A window that ended while the collector was busy (a slow controller, a loaded machine) is
        collected late, never skipped, up to `MAX_CATCH_UP` windows back; past that it resumes at
        the current window and records the gap."""
        written = 0
        last = self.stores.last_window(self.run_id)
        nxt = None if last is None else int(last["window"]) + 1
        while not self.stopping:
            current = math.floor((time.time() - self.t0) / self.window_s)  # the window in progress
            if nxt is None or current - nxt > MAX_CATCH_UP:
                if nxt is not None:
                    self.stores.event(self.run_id, time.time(), "collector_gap", {"from": nxt, "to": current - 1})
                nxt = current
            upto = max(nxt, current - 1)  # the windows that have ended, or else the next one to end
            boundary = self.t0 + (upto + 1) * self.window_s
            if end_at is not None and boundary > end_at + 1e-6:
                ended = min(current, math.floor((end_at - self.t0) / self.window_s + 1e-9))
                if ended > nxt:  # windows held back for stale counters: stored as they are
                    written += self.collect(list(range(nxt, ended)), force=True) or 0
                break
            while not self.stopping and time.time() < boundary:
                time.sleep(min(0.05, max(0.0, boundary - time.time())))
            if self.stopping:
                break
            try:
                # stale counters: wait for the controller's next stats poll, at most until the next
                # window has ended too; then both are stored, the increase shared
                n = self.collect(list(range(nxt, upto + 1)), force=upto > nxt)
                if n is None:
                    time.sleep(STALE_RETRY_S)
                    continue
                written += n
                nxt = upto + 1
            except ControllerError as exc:
                self.stores.event(self.run_id, time.time(), "collector_error", str(exc))
                time.sleep(min(0.5, self.window_s / 2))  # the next pass collects these windows late
        return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="traffic.collector")
    ap.add_argument("--run", required=True)
    ap.add_argument("--data", default=None)
    ap.add_argument("--controller", default=None)
    ap.add_argument("--until", type=float, default=None, help="stop after the window ending at this epoch time")
    args = ap.parse_args(argv)
    stores = Stores(args.data)
    collector = Collector(stores, args.run, ControllerClient(args.controller))

    def stop(*_: object) -> None:
        collector.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stores.event(args.run, time.time(), "collector_started", None)
    collector.run_until(args.until)
    stores.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
