"""The userspace delay element: a process that relays Ethernet frames between interface pairs and
releases each frame at its arrival time plus the link's propagation delay.

It stands in for netem on kernels without it. Each pair (ifa, ifb, delay_ms) is a link cut in
two: frames read from ifa are sent out of ifb `delay_ms` later, and the other way round. The
delay is constant per direction, so each direction is a FIFO; one epoll loop serves all pairs,
waking when the next frame is due to within about 0.1 ms (`Relay.wait`).

Run as `python -m ptwin.relay ifa,ifb,delay_ms [...]`; it stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import collections
import ctypes
import select
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_OUTGOING = 4
PACKET_IGNORE_OUTGOING = 23
SOCKET_BUFFER = 4 * 1024 * 1024
#: Frames due within this many seconds are sent now rather than waited for: about what a wait
#: overshoots (the wake-up's latency with the timer slack set to `TIMER_SLACK_NS`).
SLACK_S = 0.00005
#: The kernel's timer slack for this process (PR_SET_TIMERSLACK), ns: the default 50 us lets a wait
#: end that much late.
TIMER_SLACK_NS = 1000
PR_SET_TIMERSLACK = 29


class Direction:
    """One direction of one link: frames read from `rx` wait `delay_s`, then go out of `tx`."""

    __slots__ = ("rx", "tx", "delay_s", "queue", "sent", "dropped")

    def __init__(self, rx: socket.socket, tx: socket.socket, delay_s: float) -> None:
        self.rx, self.tx, self.delay_s = rx, tx, delay_s
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.sent = 0
        self.dropped = 0


def open_socket(ifname: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass  # older kernels: outgoing frames are filtered by packet type below
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    s.bind((ifname, 0))
    s.setblocking(False)
    return s


class Relay:
    def __init__(self, pairs: list[tuple[str, str, float]]) -> None:
        self.directions: dict[int, Direction] = {}
        self.epoll = select.epoll()
        for ifa, ifb, delay_ms in pairs:
            sa, sb = open_socket(ifa), open_socket(ifb)
            for rx, tx in ((sa, sb), (sb, sa)):
                self.directions[rx.fileno()] = Direction(rx, tx, delay_ms / 1000.0)
                self.epoll.register(rx.fileno(), select.EPOLLIN)
        self.running = True

    def _drain(self, d: Direction, now: float) -> None:
        while True:
            try:
                frame, addr = d.rx.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # interface went down; frames resume when it comes back
            if addr[2] == PACKET_OUTGOING:
                continue
            d.queue.append((now + d.delay_s, frame))

    def _release(self, now: float) -> float | None:
        """Send every frame that is due; return the earliest time still waiting."""
        nxt = None
        for d in self.directions.values():
            q = d.queue
            while q and q[0][0] <= now + SLACK_S:
                _, frame = q.popleft()
                try:
                    d.tx.send(frame)
                    d.sent += 1
                except OSError:
                    d.dropped += 1  # link down or buffer full: the frame is lost, as on a wire
            if q and (nxt is None or q[0][0] < nxt):
                nxt = q[0][0]
        return nxt

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        """The epoll events within `timeout` seconds (None: until one comes). epoll's own timeout is
        in whole milliseconds, rounded up: a frame due in 0.3 ms went out after 1.08 (measured), so
        an idle link delayed every frame by up to a millisecond more than its delay. So the wait is a
        select() on the epoll descriptor, whose timeout is in microseconds, then a poll that does not
        block."""
        ready, _, _ = select.select([self.epoll.fileno()], [], [], timeout)
        return self.epoll.poll(0) if ready else []

    def run(self) -> None:
        nxt: float | None = None
        while self.running:
            now = time.monotonic()
            try:
                events = self.wait(None if nxt is None else max(0.0, nxt - now))
            except InterruptedError:
                continue
            now = time.monotonic()
            for fd, _ in events:
                self._drain(self.directions[fd], now)
            nxt = self._release(time.monotonic())

    def stop(self, *_: object) -> None:
        """Signal handler: raise, since epoll is retried after a handler that returns (PEP 475)."""
        self.running = False
        raise SystemExit(0)


def set_timer_slack(ns: int) -> bool:
    """Let this process's waits end within `ns` of their time (Linux's prctl); False where it cannot."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parse_pairs(args: list[str]) -> list[tuple[str, str, float]]:
    pairs = []
    for arg in args:
        ifa, ifb, delay = arg.split(",")
        pairs.append((ifa, ifb, float(delay)))
    return pairs


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m ptwin.relay IFA,IFB,DELAY_MS [...]", file=sys.stderr)
        return 2
    relay = Relay(parse_pairs(args))
    set_timer_slack(TIMER_SLACK_NS)
    print(f"relay ready: {len(relay.directions) // 2} link(s)", flush=True)
    signal.signal(signal.SIGTERM, relay.stop)
    signal.signal(signal.SIGINT, relay.stop)
    relay.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
