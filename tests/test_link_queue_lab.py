"""A link's finite buffer on a real lab: every link direction has the queue limit the topology or
`--queue` gives it, `lab status`, the controller's /links and the snapshots report it, and UDP
offered at 1.2x a 10 Mbit/s link reaches a steady delay of about buffer / capacity plus
propagation and loses what the link cannot carry, instead of a delay that grows while the
overload lasts."""

from __future__ import annotations

import json
import re
import sqlite3
import statistics
import subprocess

import pytest

from topologies.model import build

from .conftest import ndt

pytestmark = pytest.mark.lab

CAPACITY_MBPS, DELAY_MS, QUEUE, PAYLOAD = 10.0, 2.0, 32, 1400
FRAME = PAYLOAD + 42  # UDP: Ethernet, IP and UDP headers
SCHEDULE = {"flows": 1, "seed": 1, "phases": [
    {"profile": "deterministic", "load": 1.2, "mean_size": PAYLOAD, "duration_s": 14}]}


def test_udp_past_capacity_reaches_a_steady_delay_and_the_loss_of_the_excess(lab, tmp_path):
    topo = build("queue-two", ["a", "b", "c"], [(0, 1, CAPACITY_MBPS, DELAY_MS), (1, 2, 20.0, 1.0, 8)])
    path = tmp_path / "queue-two.json"
    path.write_text(topo.to_json())
    running = lab(str(path), "--queue", str(QUEUE))

    # every direction's queue, where it is applied, reported and stored
    assert running.info["queue_pkts"] == {"default": QUEUE, "links": {"L0": QUEUE, "L1": 8}, "from_topology": 1}
    limits = {}
    for lk in ("L0", "L1"):
        for end in ("eth0", "eth1"):  # the relay's egress toward each end of the link
            out = subprocess.run(["tc", "qdisc", "show", "dev", f"r{lk[1:]}-{end}"], capture_output=True,
                                 text=True).stdout
            limits[lk, end] = int(re.search(r"pfifo 10: parent 5:1 limit (\d+)p", out).group(1))
    assert limits == {("L0", "eth0"): QUEUE, ("L0", "eth1"): QUEUE, ("L1", "eth0"): 8, ("L1", "eth1"): 8}
    assert "queue 8-32 packets per link direction (1 link(s) from the topology, the rest --queue 32)" in \
        ndt("lab", "status").stdout
    assert {lk["id"]: lk["queue_pkts"] for lk in json.loads(ndt("ctl", "links", "--json").stdout)} == \
        {"L0": QUEUE, "L1": 8}

    sched = tmp_path / "over.json"
    sched.write_text(json.dumps(SCHEDULE))
    data = tmp_path / "data"
    run = json.loads(ndt("traffic", "run", str(sched), "--data", str(data), "--json", timeout=120).stdout)
    t, lab_db = sqlite3.connect(data / "traffic.db"), sqlite3.connect(data / "labels.db")
    assert {q for (q,) in t.execute("SELECT DISTINCT queue_pkts FROM snapshot_links WHERE link_id = 'L0'")} == {QUEUE}
    (src, dst, sent_pps), = t.execute("SELECT src, dst, sent_pps FROM run_flows").fetchall()
    hops = 1 if {src, dst} == {"h1", "h2"} else 2
    assert hops == 1 or {src, dst} == {"h1", "h3"}, (src, dst)  # h2-h3 alone would not cross L0

    # steady state: windows 4..12 (the queue fills within the first window; the last may be partial)
    rows = lab_db.execute("SELECT window, delay_ms, loss_pct FROM labels WHERE window BETWEEN 4 AND 12 "
                          "ORDER BY window").fetchall()
    assert len(rows) >= 7, (rows, run)
    # a sender short of its rate fills no queue: say so rather than fail on the delay (seen once in a
    # full suite: ITGSend at 73 % of its 1,040 packets/s, 8.8 Mbit/s, median delay 7.8 ms; 10.9-11.5 usual)
    offered_mbps = sent_pps * FRAME * 8 / 1e6
    assert offered_mbps > 1.05 * CAPACITY_MBPS, f"the sender fell short: {offered_mbps:.2f} Mbit/s offered"
    delays = [d for _, d, _ in rows]
    queue_ms = QUEUE * FRAME * 8 / (CAPACITY_MBPS * 1e3)
    expected = queue_ms + DELAY_MS + FRAME * 8 / (CAPACITY_MBPS * 1e3) + (hops - 1) * (1.0 + FRAME * 8 / 20e3)
    # buffer/capacity + propagation + own frame's serialization: 40.1 ms; measured 38.7 ms, flat from the
    # second window to the last (2026-12-02, two cores); the tolerance leaves room for a busier machine
    assert statistics.median(delays) == pytest.approx(expected, rel=0.15), (delays, expected)
    # steady, not growing with the overload's age: the later half no higher than the earlier by 10 %
    half = len(delays) // 2
    assert statistics.mean(delays[half:]) < 1.1 * statistics.mean(delays[:half]), delays

    # what the link cannot carry is lost: about 1 - capacity / what the sender really sent (1 - 1/1.2); the
    # link carries its capacity, never more, and on a busy machine a little less (CI, 2026-12-03: 11.8 % of
    # 10.86 Mbit/s lost, 9.58 Mbit/s carried, where 7.9 % would have been exact)
    excess = 100 * (1 - CAPACITY_MBPS / offered_mbps)
    loss = statistics.median(x for _, _, x in rows)
    carried_mbps = offered_mbps * (1 - loss / 100)
    assert 0.9 * CAPACITY_MBPS <= carried_mbps <= 1.03 * CAPACITY_MBPS, (loss, excess, offered_mbps)
