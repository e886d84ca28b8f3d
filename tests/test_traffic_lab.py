"""Real D-ITG traffic on a real lab: a two-phase schedule (light, then past capacity) on the
diamond topology, with the collector killed mid-run. Checks labels for every flow, delay and
loss rising with load on the bottleneck, controller rates against D-ITG's, phase boundaries,
a consistent store after the collector's restart, and the export."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from ptwin.state import is_alive, start_time

from .conftest import TRAFFIC_SCHEDULE as SCHEDULE
from .conftest import ndt

pytestmark = pytest.mark.lab

def test_every_started_flow_has_labels(traffic_run):
    t, lab = traffic_run["t"], traffic_run["l"]
    flows = t.execute("SELECT phase_idx, flow_no, flow_key, status FROM run_flows").fetchall()
    assert len(flows) == 12 and all(f[3] == "finished" for f in flows), flows
    for phase, no, key, _ in flows:
        n = lab.execute("SELECT count(*) FROM labels WHERE flow_key = ? AND flow_no = ?", [key, no]).fetchone()[0]
        assert n >= 5, (phase, no, key)


def test_each_flow_records_the_rate_its_sender_achieved(traffic_run):
    """A CPU-starved D-ITG sender falls short of its rate; the store and the summary say by how much."""
    rows = traffic_run["t"].execute("SELECT phase_idx, flow_no, rate_pps, sent_pps FROM run_flows").fetchall()
    assert rows and all(sent is not None and 0 < sent <= 1.05 * asked for _, _, asked, sent in rows), rows
    phases = traffic_run["result"]["phases"]
    assert [p["idx"] for p in phases] == [0, 1]
    for p in phases:
        assert 0 < p["sent_share"] <= 1.05 and p["senders_short"] == sum(
            sent < 0.9 * asked for idx, _, asked, sent in rows if idx == p["idx"]), p


def hot_link() -> tuple[object, tuple[str, int], set[str]]:
    """The diamond, the most loaded link direction of the schedule's flows, and the 'src>dst'
    addresses of the flows that cross it."""
    from topologies import load
    from traffic.flowset import choose_pairs

    topo = load("diamond")
    pairs = choose_pairs(topo, SCHEDULE["flows"], SCHEDULE["seed"])
    hot = Counter(h for p in pairs for h in p.hops).most_common(1)[0][0]
    return topo, hot, {p.src_ip + ">" + p.dst_ip for p in pairs if hot in p.hops}


def bottleneck_rows(traffic_run, phase: int) -> list[tuple]:
    """Labels of the phase's flows that cross the most loaded link direction."""
    _, _, crossing = hot_link()
    t = traffic_run["t"]
    keys = {k for (k, src, dst) in t.execute(
        "SELECT flow_key, src_ip, dst_ip FROM run_flows WHERE phase_idx = ?", [phase]) if f"{src}>{dst}" in crossing}
    rows = traffic_run["l"].execute("SELECT flow_key, delay_ms, loss_pct FROM labels").fetchall()
    return [r for r in rows if r[0] in keys]


def sent_onto_hot_link_mbps(traffic_run, phase: int) -> tuple[float, float, float]:
    """(median Mbit/s D-ITG sent onto the most loaded link direction per window, what the schedule
    asked, the link's capacity), from the labels' sent packet counts and the flows' frame sizes."""
    import statistics

    topo, hot, crossing = hot_link()
    t = traffic_run["t"]
    (window_s,) = t.execute("SELECT window_s FROM runs").fetchone()
    flows = {k: (size, offered) for (k, src, dst, size, offered) in t.execute(
        "SELECT flow_key, src_ip, dst_ip, pkt_size, offered_bps FROM run_flows WHERE phase_idx = ?", [phase])
        if f"{src}>{dst}" in crossing}
    per_window: dict[int, float] = {}
    for w, k, sent in traffic_run["l"].execute("SELECT window, flow_key, sent FROM labels"):
        if k in flows and sent is not None:
            per_window[w] = per_window.get(w, 0.0) + sent * (flows[k][0] + 42) * 8 / window_s / 1e6
    asked = sum(o for _, o in flows.values()) / 1e6
    return statistics.median(per_window.values()), asked, topo.link(hot[0]).capacity_mbps


def test_delay_and_loss_rise_past_capacity_on_the_bottleneck(traffic_run):
    low, high = bottleneck_rows(traffic_run, 0), bottleneck_rows(traffic_run, 1)
    assert low and high
    # the premise first: the senders really offered more than the link carries (a fresh-clone run
    # once saw them send about half their rate, so the link was never overloaded)
    sent, asked, capacity = sent_onto_hot_link_mbps(traffic_run, 1)
    assert sent > capacity, (f"D-ITG's senders fell short: {sent:.1f} Mbit/s sent onto the bottleneck of "
                             f"{capacity:g} Mbit/s, {asked:.1f} asked")
    mean = lambda rows, i: sum(r[i] for r in rows if r[i] is not None) / len(rows)  # noqa: E731
    assert mean(high, 1) > 2 * mean(low, 1), (mean(low, 1), mean(high, 1))
    assert mean(low, 2) < 0.5
    # loss past capacity depends on how much of the 8 s overload the queues absorb: 0.85 % to
    # over 5 % was seen across runs; with no overload there is none
    assert mean(high, 2) > max(0.5, 3 * mean(low, 2)), (mean(low, 2), mean(high, 2))


def test_controller_rate_agrees_with_ditg_bitrate(traffic_run):
    """The ingress switch's byte counter against every packet D-ITG logged as sent (the whole
    log: the labels can lack a flow's first window, when the controller first polled the flow
    after it; that was seen as a 12 % gap)."""
    from traffic.ditg import LogReader

    t = traffic_run["t"]
    logs = traffic_run["data"] / "runs" / traffic_run["result"]["run"] / "logs"
    for key, no in t.execute("SELECT flow_key, flow_no FROM run_flows WHERE phase_idx = 0").fetchall():
        ctl_bytes = t.execute("SELECT max(bytes) FROM snapshot_flows WHERE flow_key = ?", [key]).fetchone()[0]
        sent = LogReader(logs / f"p0-f{no}.tx", time.time()).read()
        ditg_wire_bytes = int(sent.size.sum()) + 42 * len(sent)  # D-ITG logs payloads; the switch counts frames
        assert len(sent) > 100 and ctl_bytes == pytest.approx(ditg_wire_bytes, rel=0.02), key


def test_phase_boundaries_are_in_the_store(traffic_run):
    t = traffic_run["t"]
    phases = t.execute("SELECT idx, profile, load, start_at, end_at FROM phases ORDER BY idx").fetchall()
    assert [(p[0], p[2]) for p in phases] == [(0, 0.3), (1, 1.5)]
    assert phases[0][3] < phases[0][4] <= phases[1][3] + 0.5 and phases[1][3] < phases[1][4]
    for idx, _, _, start, end in phases:
        ts = [r[0] for r in t.execute("SELECT t_start FROM snapshots WHERE phase_idx = ?", [idx])]
        assert ts and min(ts) >= start - 1.0 and max(ts) <= end


def test_a_killed_collector_is_restarted_and_the_store_stays_consistent(traffic_run):
    t = traffic_run["t"]
    assert traffic_run["killed"].get("pid"), "the collector was not killed"
    kinds = [k for (k,) in t.execute("SELECT kind FROM events")]
    assert "collector_died" in kinds and kinds.count("collector_pid") >= 2
    dup = t.execute("SELECT count(*) FROM (SELECT window FROM snapshots GROUP BY run_id, window "
                    "HAVING count(*) > 1)").fetchone()[0]
    partial = t.execute("SELECT count(*) FROM snapshots s WHERE n_flows != (SELECT count(*) FROM snapshot_flows f "
                        "WHERE f.snapshot_id = s.id) OR n_links != (SELECT count(*) FROM snapshot_links k "
                        "WHERE k.snapshot_id = s.id)").fetchone()[0]
    assert dup == 0 and partial == 0
    assert t.execute("SELECT count(*) FROM snapshots").fetchone()[0] > traffic_run["killed"]["windows"] + 5


def test_no_traffic_process_is_left(traffic_run):
    t = traffic_run["t"]
    recv = [pid for (d,) in t.execute("SELECT detail FROM events WHERE kind = 'receivers'")
            for pid in json.loads(d).values()]
    assert len(recv) == 12  # one receiver per flow per phase
    for pid in recv:
        assert start_time(pid) is None or not is_alive({"pid": pid, "start": start_time(pid)}) or \
            "ITGRecv" not in Path(f"/proc/{pid}/cmdline").read_text()


def test_summary_and_export(traffic_run, tmp_path):
    s = json.loads(ndt("data", "summary", "--data", str(traffic_run["data"]), "--json").stdout)
    r = s["runs"][0]
    assert r["windows"] >= 14 and r["labeled_fraction"] > 0.8
    assert [p["profile"] for p in r["phases"]] == ["deterministic", "deterministic"]
    assert r["phases"][1]["rate_bps"]["mean"] > r["phases"][0]["rate_bps"]["mean"]
    out = tmp_path / "train.jsonl"
    e = json.loads(ndt("data", "export", "--data", str(traffic_run["data"]), "--out", str(out), "--json").stdout)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert lines[0]["type"] == "run" and lines[0]["topology"]["name"] == "diamond"
    windows = [x for x in lines if x["type"] == "window"]
    assert len(windows) == e["windows"] >= 10
    labeled = [f for w in windows for f in w["flows"] if f["label"]]
    assert labeled and all(f["links"] and f["offered_bps"] for f in labeled)
