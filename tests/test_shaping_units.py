"""Link shaping without a lab: the tc commands of a link direction (HTB rate, its finite queue, or
netem holding queue and delay), the buffer a link without its own gets, and bad `--queue` values."""

from __future__ import annotations

import pytest

from ptwin.errors import LabError
from ptwin.lab import DEFAULT_QUEUE_PKTS, with_queues
from ptwin.shaping import htb_commands
from topologies.model import build

from .conftest import ndt


def test_a_direction_gets_htb_at_its_rate_and_a_drop_tail_queue_of_its_buffer():
    cmds = htb_commands("r0-eth1", 10.0, None, 32)
    assert cmds[1].endswith("htb rate 10.000000mbit burst 15k quantum 1514")
    assert cmds[2] == "qdisc replace dev r0-eth1 parent 5:1 handle 10: pfifo limit 32"
    assert len(htb_commands("r0-eth1", 10.0)) == 2  # no buffer given: Linux's default queue


def test_netem_holds_the_queue_plus_the_frames_in_flight():
    # 10 Mbit/s x 5 ms = 50,000 bits in flight = 98 frames of 64 bytes, plus the 32-packet buffer
    assert htb_commands("s1-eth2", 10.0, 5.0, 32)[2] == \
        "qdisc replace dev s1-eth2 parent 5:1 handle 10: netem delay 5.000ms limit 130"


def test_links_without_a_buffer_take_the_default_and_say_so():
    topo = build("t", ["a", "b", "c"], [(0, 1, 10.0, 1.0), (1, 2, 10.0, 1.0, 8)])
    q = with_queues(topo, DEFAULT_QUEUE_PKTS)
    assert [lk.queue_pkts for lk in q.links] == [DEFAULT_QUEUE_PKTS, 8]
    assert q.sources[-1] == ("queue", "--queue default", 1)
    assert with_queues(q, 5) is q  # every link has its own now
    for bad in (0, -3, 2.5, True):
        with pytest.raises(LabError, match="whole number of packets"):
            with_queues(topo, bad)


def test_a_bad_queue_option_is_one_error_line():
    for value in ("0", "-1", "many"):
        for cmd in (["lab", "up", "line3"], ["run", "line3"]):
            r = ndt(*cmd, "--queue", value, check=False)
            assert r.returncode == 2 and "--queue" in r.stderr and "Traceback" not in r.stderr, (cmd, r.stderr)
            assert r.stderr.strip().splitlines()[-1].startswith("ndt"), r.stderr
