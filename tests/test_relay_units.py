"""The delay relay's wait (ptwin.relay): it must wake when a frame is due to well within a
millisecond, where epoll's own timeout (whole milliseconds, rounded up) held a frame due in 0.2 ms
for more than 1 ms. No interface is needed: a relay of no links waits on an empty epoll set."""

from __future__ import annotations

import statistics
import time

from ptwin.relay import TIMER_SLACK_NS, Relay, set_timer_slack


def _median_wait(relay: Relay, timeout: float, n: int = 21) -> float:
    took = []
    for _ in range(n):
        t0 = time.monotonic()
        assert relay.wait(timeout) == []  # nothing registered: no event, only the timeout
        took.append(time.monotonic() - t0)
    return statistics.median(took)


def test_the_relay_wakes_within_a_fraction_of_a_millisecond_of_when_a_frame_is_due():
    relay = Relay([])
    assert set_timer_slack(TIMER_SLACK_NS)
    try:
        waited = _median_wait(relay, 0.0002)
        assert 0.0002 <= waited < 0.0009, waited  # epoll.poll(0.0002) returns after about 1.08 ms
        assert _median_wait(relay, 0.0) < 0.0005  # due now: no wait at all
    finally:
        relay.epoll.close()
