"""Traffic without a lab: schedule parsing and its errors, flow sets that share links, labels
from synthetic D-ITG packets, the binary log decoder against ITGDec on a real loopback flow, and
the stores' atomic, idempotent windows under a killed writer."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from topologies import load
from traffic.ditg import LogReader, Packets, encode_records, realtime_prefix, sender_args
from traffic.flowset import choose_pairs, per_flow_bps
from traffic.labels import window_labels
from traffic.runner import RX_MARGIN_WINDOWS
from traffic.schedule import BUILTIN, ScheduleError, load_schedule, parse
from traffic.store import SCHEMA_VERSION, StoreError, Stores

from .conftest import ROOT, ndt, wait_for


def test_paper_drift_runs_the_four_patterns_in_order():
    s = load_schedule("paper-drift")
    assert [p.profile.name for p in s.phases] == ["exponential", "poisson", "uniform", "deterministic"]
    assert [p.profile.protocol for p in s.phases] == ["TCP", "TCP", "TCP", "UDP"]
    assert s.phases[-1].load > 1.0  # congestion
    assert s.scaled_to(40).duration_s == pytest.approx(40)
    for name in BUILTIN:
        assert load_schedule(name).phases


def test_schedule_files_yaml_and_json(tmp_path: Path):
    y = tmp_path / "s.yaml"
    y.write_text("flows: 4\nphases:\n  - {profile: uniform, load: 0.4, duration_s: 5}\n"
                 "  - {protocol: udp, idt: exponential, size: constant, mean_size: 300, load: 1.2, duration_s: 5}\n")
    s = load_schedule(str(y))
    assert s.flows == 4 and s.phases[1].profile.protocol == "UDP" and s.phases[1].profile.mean_size == 300
    j = tmp_path / "s.json"
    j.write_text(json.dumps(s.to_dict()))
    assert load_schedule(str(j)).to_dict()["phases"] == s.to_dict()["phases"]


@pytest.mark.parametrize("content,match", [
    ("phases: []\n", "phase list is empty"),
    ("phases:\n  - {profile: lognormal, load: 0.5, duration_s: 5}\n", "unknown profile"),
    ("phases:\n  - {idt: pareto, load: 0.5, duration_s: 5}\n", "unknown distribution"),
    ("phases:\n  - {profile: poisson, load: -0.5, duration_s: 5}\n", "load must be a positive rate"),
    ("phases:\n  - {profile: poisson, load: 0.5, duration_s: 0}\n", "duration_s must be positive"),
    ("phases:\n  - {profile: poisson, load: fast, duration_s: 5}\n", "load must be a number"),
    ("phases:\n  - {profile: poisson, duration_s: 5}\n", "needs 'load'"),
    ("phases:\n  - {protocol: sctp, load: 1, duration_s: 5}\n", "unknown protocol"),
    ("flows: 0\nphases:\n  - {profile: poisson, load: 1, duration_s: 5}\n", "flows must be between"),
    ("phase: []\n", "unknown key"),
    ("pairs: flow\nphases:\n  - {profile: poisson, load: 1, duration_s: 5}\n", "pairs must be one of run, phase"),
    ("phases: [\n", "not valid YAML"),
])
def test_malformed_schedules_give_one_clear_error(tmp_path: Path, content: str, match: str):
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    with pytest.raises(ScheduleError, match=match):
        load_schedule(str(f))
    r = ndt("traffic", "run", str(f), check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("ndt: error:"), r.stderr


def test_a_flow_count_the_topology_cannot_host_is_one_error_line(tmp_path: Path):
    """line3 has 3 hosts, so 6 host pairs: 7 flows cannot each have their own pair."""
    with pytest.raises(ScheduleError, match="asks for 7 flows, but line3 has 3 hosts, so only 6 distinct host pairs"):
        choose_pairs(load("line3"), 7, 1)
    assert len(choose_pairs(load("line3"), 6, 1)) == 6
    sched = tmp_path / "many.json"
    sched.write_text(json.dumps({"flows": 7, "phases": [{"profile": "deterministic", "load": 0.3, "duration_s": 5}]}))
    r = ndt("run", "line3", "--schedule", str(sched), check=False)  # refused before any lab is built
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "only 6 distinct host pairs" in r.stderr, r.stderr


def test_a_schedule_keeps_its_flow_set_for_the_run_or_draws_one_a_phase(tmp_path: Path):
    from traffic.flowset import flow_sets, phase_pairs

    topo = load("Abilene")
    phases = [{"profile": "deterministic", "load": 0.5, "duration_s": 5}] * 4
    run = parse({"flows": 5, "seed": 3, "phases": phases}, "s")
    assert run.pairs == "run" and "pairs" not in run.to_dict()  # the stored form of today's schedules
    sets = [[(p.src, p.dst) for p in phase_pairs(topo, run, i)] for i in range(4)]
    assert all(s == [(p.src, p.dst) for p in choose_pairs(topo, 5, 3)] for s in sets)
    own = parse({**run.to_dict(), "pairs": "phase"}, "s")
    f = tmp_path / "s.json"
    f.write_text(json.dumps(own.to_dict()))
    assert load_schedule(str(f)) == own
    sets = [tuple((p.src, p.dst) for p in phase_pairs(topo, own, i)) for i in range(4)]
    assert len(set(sets)) == 4 and all(len(set(s)) == 5 for s in sets)
    assert sets == [tuple((p.src, p.dst) for p in phase_pairs(topo, own, i)) for i in range(4)]  # reproducible
    assert flow_sets(topo, own) == [phase_pairs(topo, own, i) for i in range(4)]
    assert flow_sets(topo, run) == [phase_pairs(topo, run, 0)] * 4
    for i in range(4):  # each phase's set shares links as the run's does
        pairs = phase_pairs(topo, own, i)
        assert all(set(p.hops) & {h for q in pairs[:k] for h in q.hops} for k, p in enumerate(pairs[1:], 1))


def test_unknown_schedule_name():
    r = ndt("traffic", "run", "no-such-schedule", check=False)
    assert r.returncode == 1 and "unknown schedule" in r.stderr


def test_flow_sets_share_links_and_loads_hit_the_bottleneck():
    topo = load("Abilene")
    pairs = choose_pairs(topo, 8, seed=3)
    assert len({(p.src, p.dst) for p in pairs}) == 8
    for i, p in enumerate(pairs[1:], 1):
        assert set(p.hops) & {h for q in pairs[:i] for h in q.hops}, "every flow shares a link direction"
    bps = per_flow_bps(topo, pairs, 0.8)
    from collections import Counter

    count = Counter(h for p in pairs for h in p.hops)
    worst = max(count[h] * bps / (topo.link(h[0]).capacity_mbps * 1e6) for h in count)
    assert worst == pytest.approx(0.8)


def test_sender_arguments_follow_the_distributions(tmp_path: Path):
    args = sender_args("10.0.0.2", 10001, "TCP", "uniform", 100.0, "exponential", 512, 5000,
                       tmp_path / "t", tmp_path / "r")
    prefix = list(realtime_prefix())
    assert args[:len(prefix)] == prefix
    args = args[len(prefix):]
    assert args[:7] == ["ITGSend", "-a", "10.0.0.2", "-rp", "10001", "-T", "TCP"]
    assert "-U" in args and args[args.index("-U") + 1:args.index("-U") + 3] == ["66.667", "200.000"]
    assert "-e" in args and "-t" in args and args[args.index("-t") + 1] == "5000"
    assert "-D" not in args  # Nagle stays on (sender_args' docstring: the labels the base model learned)
    udp = sender_args("10.0.0.2", 10001, "UDP", "constant", 100.0, "constant", 512, 5000,
                      tmp_path / "t", tmp_path / "r")
    assert "-D" not in udp and udp[udp.index("-C") + 1] == "100.000"


@pytest.mark.skipif(os.geteuid() != 0, reason="real-time priority needs root")
def test_traffic_processes_run_at_realtime_priority_as_root():
    """ITGSend loses rate to every late wakeup; as root its processes run SCHED_FIFO."""
    prefix = realtime_prefix()
    assert prefix[:2] == ("chrt", "-f"), prefix
    r = subprocess.run([*prefix, sys.executable, "-c", "import os; print(os.sched_getscheduler(0))"],
                       capture_output=True, text=True, timeout=30)
    assert int(r.stdout) == os.SCHED_FIFO, (r.stdout, r.stderr)


def packets(rows: list[tuple[int, float, float | None]], size: int = 500) -> Packets:
    """(seq, tx, delay or None) rows as a decoded log."""
    return Packets(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                   np.array([np.nan if r[2] is None else r[1] + r[2] for r in rows]),
                   np.full(len(rows), size), 4000)


def test_window_labels_delay_jitter_loss_and_bitrate():
    t0 = 1000.0
    sent = packets([(i, t0 + 0.1 * i, None) for i in range(20)])  # 10 per 1 s window
    received = packets([(i, t0 + 0.1 * i, 0.010 + 0.002 * (i % 2)) for i in range(20) if i not in (12, 13)])
    labels = window_labels(sent, received, t0, 1.0)
    assert set(labels) == {0, 1}
    w0, w1 = labels[0], labels[1]
    assert w0["delay_ms"] == pytest.approx(11.0) and w0["jitter_ms"] == pytest.approx(2.0)
    assert w0["loss_pct"] == 0 and w1["loss_pct"] == pytest.approx(20.0)
    assert w0["sent"] == 10 and w1["received"] == 8
    assert w0["rx_bps"] == pytest.approx(8 * 500 * 10)


def test_window_labels_without_a_sender_log_count_what_was_received():
    t0 = 1000.0
    received = packets([(i, t0 + 0.25 * i, 0.005) for i in (0, 1, 1, 2, 5)])  # seq 1 delivered twice
    labels = window_labels(packets([]), received, t0, 1.0)
    assert labels[0]["sent"] == labels[0]["received"] == 3 and labels[0]["loss_pct"] == 0
    assert labels[0]["delay_ms"] == pytest.approx(5.0) and labels[0]["jitter_ms"] == pytest.approx(0.0)
    assert labels[1]["received"] == 1 and window_labels(packets([]), packets([]), t0, 1.0) == {}


def append_log(path: Path, rows: list[tuple[int, float, float | None]]) -> None:
    """(seq, tx, rx) rows appended as D-ITG binary records (every row received)."""
    with path.open("ab") as fh:
        fh.write(encode_records(np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows]),
                                None if not rows or rows[0][2] is None else np.array([r[2] for r in rows]), 4000))


def test_live_label_passes_over_a_growing_log_read_only_new_packets_and_label_as_the_whole_log(tmp_path: Path):
    """A live pass late in a long phase reads the packets sent since a time, not the whole log
    (the late-run degradation: passes that relabeled the whole phase took seconds of CPU every
    4 s after 20 minutes); the windows it labels come out as the whole log labels them."""
    rng = np.random.default_rng(3)
    t0 = math.floor(time.time()) - 100.0
    tx = t0 + np.sort(rng.uniform(0, 40, 2000))  # 40 windows of 1 s, 50 packets each
    delay = rng.uniform(0.005, 1.5, tx.size)  # up to 1.5 windows in flight
    lost = rng.random(tx.size) < 0.05
    order = np.argsort(tx + delay, kind="stable")  # the receiver logs in arrival order
    sent_rows = [(i, float(tx[i]), None) for i in range(tx.size)]
    arrival = np.sort(tx + delay)
    recv_rows = [(int(i), float(tx[i]), float(tx[i] + delay[i])) for i in order]  # lost ones not logged
    tx_log, rx_log = tmp_path / "tx", tmp_path / "rx"
    sent, recv = LogReader(tx_log, t0), LogReader(rx_log, t0)
    assert len(sent.since(t0)) == 0 and recv.since(t0).sport is None  # no log yet
    done = prev_rx = 0
    for upto in (10, 20, 30, 40):  # the log grows; each pass labels what the last left
        cut_tx = int(np.searchsorted(tx, t0 + upto))
        n_rx = int(np.searchsorted(arrival, t0 + upto))
        append_log(tx_log, sent_rows[done:cut_tx])
        append_log(rx_log, [r for r in recv_rows[prev_rx:n_rx] if not lost[r[0]]])
        first = upto - 10
        since = t0 + (first - RX_MARGIN_WINDOWS)
        got_sent, got_recv = sent.since(since), recv.since(since)
        assert sorted(got_sent.seq.tolist()) == [i for i in range(cut_tx) if tx[i] >= since]
        assert sorted(got_recv.seq.tolist()) == sorted(int(i) for i in order[:n_rx] if tx[i] >= since and not lost[i])
        assert got_recv.sport == 4000
        live = {w: v for w, v in window_labels(got_sent, got_recv, t0, 1.0).items() if w >= first}
        whole = {w: v for w, v in window_labels(sent.read(), recv.read(), t0, 1.0).items() if first <= w}
        assert live.keys() == whole.keys() and len(live) >= 9
        for w in live:  # the last window's packets may still be in flight: both see the same ones
            assert live[w] == pytest.approx(whole[w]), w
        done, prev_rx = cut_tx, n_rx
    append_log(rx_log, [r for r in recv_rows[prev_rx:] if not lost[r[0]]])  # the packets still in flight
    everything = recv.read()
    assert sorted(everything.seq.tolist()) == sorted(int(i) for i in order if not lost[i])  # merging lost nothing


ITGDEC_LINE = re.compile(r"Seq>\s*(\d+)\s+Src>\s*\S+/(\d+)\s+Dest>\s*\S+\s+txTime>\s*(\d+):(\d+):([\d.]+)\s+"
                         r"rxTime>\s*(\d+):(\d+):([\d.]+)\s+Size>\s*(\d+)")


@pytest.mark.skipif(shutil.which("ITGSend") is None, reason="needs D-ITG (run make install)")
def test_binary_log_decoder_matches_itgdec_on_a_real_flow(tmp_path: Path):
    """A real exponential UDP flow on loopback; the numpy decoder reads the receiver's log in two
    growing pieces (the first cut inside a record) and agrees with ITGDec's text to the microsecond."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sig = sock.getsockname()[1]
    sock.close()
    recv = subprocess.Popen(["ITGRecv", "-Sp", str(sig)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: f":{sig} " in subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout,
                 timeout=10, what="ITGRecv listening")
        subprocess.run(["ITGSend", "-a", "127.0.0.1", "-Sdp", str(sig), "-rp", "19077", "-T", "UDP", "-E", "300",
                        "-u", "100", "900", "-t", "1500", "-l", "tx.log", "-x", "rx.log"], cwd=tmp_path,
                       capture_output=True, timeout=30, check=True)
    finally:
        recv.terminate()
        recv.wait(timeout=10)
    rx_log = tmp_path / "rx.log"
    full = rx_log.read_bytes()
    assert len(full) > 100 * 144 and len(full) % 144 == 0
    growing = tmp_path / "growing.log"
    growing.write_bytes(full[:50 * 144 + 70])
    ref = time.time()
    reader = LogReader(growing, ref)
    assert len(reader.read()) == 50
    growing.write_bytes(full)
    got = reader.read()
    subprocess.run(["ITGDec", "rx.log", "-l", "rx.txt"], cwd=tmp_path, capture_output=True, timeout=30)
    rows = [m.groups() for m in map(ITGDEC_LINE.search, (tmp_path / "rx.txt").read_text().splitlines()) if m]
    assert len(rows) == len(got) == len(full) // 144
    assert got.sport == int(rows[0][1]) and [int(r[0]) for r in rows] == got.seq.tolist()
    assert [int(r[8]) for r in rows] == got.size.tolist() and len(set(got.size.tolist())) > 10

    def tod(t: np.ndarray) -> np.ndarray:  # epoch -> local seconds of the day
        return np.array([(lambda lt: lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec)(time.localtime(x)) + x % 1
                         for x in t])

    want_tx = np.array([int(h) * 3600 + int(m) * 60 + float(s) for _, _, h, m, s, *_ in rows])
    want_rx = np.array([int(h) * 3600 + int(m) * 60 + float(s) for *_, h, m, s, _ in rows])
    assert np.abs(tod(got.tx) - want_tx).max() < 2e-6 and np.abs(tod(got.rx) - want_rx).max() < 2e-6
    assert abs(got.tx[0] - ref) < 60  # the day was placed around the reference time


def window(stores: Stores, run: str, w: int, nflows: int = 5) -> bool:
    flows = [{"flow_key": f"udp:a:{i}>b:1", "src": "h1", "dst": "h2", "proto": "udp", "links": "[]",
              "packets": w, "bytes": w * 100} for i in range(nflows)]
    links = [{"link_id": f"L{i}", "capacity_mbps": 10.0} for i in range(3)]
    return stores.write_window({"run_id": run, "window": w, "t_start": float(w), "t_end": w + 1.0}, flows, links)


def test_windows_are_written_once(tmp_path: Path):
    stores = Stores(tmp_path)
    assert window(stores, "r1", 0) and window(stores, "r1", 1)
    assert not window(stores, "r1", 1)  # a restart writing the same window again changes nothing
    assert stores.window_count("r1") == 2
    assert [len(w.flows) for w in stores.windows("r1")] == [5, 5]
    assert stores.traffic.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (tmp_path / "weights.db").exists()


WRITER = """
import sys, time
from traffic.store import Stores
stores = Stores(sys.argv[1])
start = int(sys.argv[2])
for w in range(start, start + 100000):
    flows = [{"flow_key": f"k{i}", "links": "[]", "packets": w, "bytes": w} for i in range(200)]
    stores.write_window({"run_id": "crash", "window": w, "t_start": float(w), "t_end": w + 1.0}, flows, [])
    if w == start + 3:
        print("writing", flush=True)
"""


def test_a_killed_writer_leaves_no_partial_windows_and_a_restart_no_duplicates(tmp_path: Path):
    def run_writer(start: int) -> None:
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(start)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "writing"
        p.send_signal(signal.SIGKILL)
        p.wait()

    run_writer(0)
    con = sqlite3.connect(tmp_path / "traffic.db")
    partial = con.execute("SELECT count(*) FROM snapshots s WHERE n_flows != "
                          "(SELECT count(*) FROM snapshot_flows f WHERE f.snapshot_id = s.id)").fetchone()[0]
    first = con.execute("SELECT count(*) FROM snapshots").fetchone()[0]
    assert partial == 0 and first >= 4
    run_writer(0)  # the restart begins again at window 0: committed windows are skipped
    assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] >= first
    dup = con.execute("SELECT count(*) FROM (SELECT window FROM snapshots GROUP BY run_id, window "
                      "HAVING count(*) > 1)").fetchone()[0]
    partial = con.execute("SELECT count(*) FROM snapshots s WHERE n_flows != "
                          "(SELECT count(*) FROM snapshot_flows f WHERE f.snapshot_id = s.id)").fetchone()[0]
    assert dup == 0 and partial == 0


def test_schema_version_is_checked(tmp_path: Path):
    Stores(tmp_path).close()
    con = sqlite3.connect(tmp_path / "labels.db")
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.commit()
    with pytest.raises(StoreError, match="schema version"):
        Stores(tmp_path)


def test_data_summary_on_an_empty_store_and_unknown_run(tmp_path: Path):
    out = json.loads(ndt("data", "summary", "--data", str(tmp_path), "--json").stdout)
    assert out["runs"] == [] and out["windows"] == 0
    r = ndt("data", "summary", "--data", str(tmp_path), "--run", "nope", check=False)
    assert r.returncode == 1 and "no run" in r.stderr
    wait_for(lambda: (tmp_path / "traffic.db").exists(), timeout=1)


def test_a_sender_spinning_on_the_cpu_is_killed_as_a_runaway_and_a_blocked_one_is_not(tmp_path: Path):
    from traffic.runner import RUNAWAY_CPU_SHARE, Sender, sender_outcome

    def sender(cmd: list[str]) -> Sender:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = tmp_path / f"{proc.pid}.out"
        out.write_text("")
        return Sender(0, None, "tcp", 10000, proc, out, out, out, time.time())

    spinning = sender([sys.executable, "-c", "while True: pass"])
    blocked = sender(["sleep", "60"])
    try:
        checked = []

        def spun() -> bool:
            now = time.monotonic()
            checked.append(blocked.check_runaway(now))
            return spinning.check_runaway(now)

        wait_for(spun, timeout=30, interval=0.5, what="the spinning sender to be caught")
        assert spinning.proc.wait(timeout=10) != 0  # killed
        assert "runaway" in spinning.runaway and sender_outcome(spinning, 60)[0] == "failed"
        # the sleeper was checked over the same span and never flagged (it uses ~0 of a core)
        assert blocked.cpu is not None and not any(checked) and blocked.proc.poll() is None
        assert RUNAWAY_CPU_SHARE < 1.0
    finally:
        for s in (spinning, blocked):
            if s.proc.poll() is None:
                s.proc.kill()
            s.proc.wait()


class _PolledController:
    """The collector's view of a controller whose stats poll can be late: each `poll(at, kbytes)`
    is one stats reply (the counters and when the switch sent them). A canned client: a real
    controller's poll cannot be delayed on demand."""

    def __init__(self) -> None:
        self.at, self.bytes = None, 0

    def poll(self, at: float, nbytes: int) -> None:
        self.at, self.bytes = at, nbytes

    def get(self, path: str) -> dict:
        return {"topology": "line3", "routing_version": 0}

    def flows(self) -> list[dict]:
        return [{"id": 1, "src": "h1", "dst": "h3", "src_ip": "10.0.0.1", "dst_ip": "10.0.0.3", "proto": "udp",
                 "sport": 40000, "dport": 10000, "links": ["L0", "L1"], "packets": self.bytes // 1000,
                 "bytes": self.bytes, "rate_bps": 8e6, "counters_at": self.at}]

    def links(self) -> list[dict]:
        return []


def test_a_window_whose_counters_are_stale_waits_and_shares_the_next_ones_increase(tmp_path):
    """A late stats poll leaves the run flow's counters as they were: that window is not stored as
    idle (and the next doubled); it is stored with the next one, the increase shared."""
    from traffic.collector import Collector

    from .seeded import T0, seed_traffic_run

    seed_traffic_run(tmp_path, "line3", {"flows": 1, "seed": 1, "phases": [
        {"profile": "deterministic", "load": 0.5, "duration_s": 1}]}, run_id="run-c")
    stores = Stores(tmp_path)
    with stores.traffic.conn:  # keep the run and its flow, not the seeded windows
        stores.traffic.execute("DELETE FROM snapshot_flows")
        stores.traffic.execute("DELETE FROM snapshots")
        stores.traffic.execute("UPDATE run_flows SET proto = 'udp', src_ip = '10.0.0.1', dst_ip = '10.0.0.3', "
                               "dport = 10000")
    ctl = _PolledController()
    col = Collector(stores, "run-c", ctl)
    ctl.poll(T0 + 0.9, 1_000_000)
    assert col.collect([0]) == 1
    assert col.collect([1]) is None  # no stats reply since window 0: nothing stored
    ctl.poll(T0 + 2.9, 3_000_000)  # the late reply covers windows 1 and 2
    assert col.collect([1, 2], force=True) == 2
    rows = [(w.window, f.window_bytes) for w in stores.windows("run-c") for f in w.flows]
    assert rows == [(0, 1_000_000), (1, 1_000_000), (2, 1_000_000)]
    ctl.poll(T0 + 3.9, 4_000_000)
    assert col.collect([3]) == 1  # fresh counters: stored at once


def test_a_flows_rate_is_counted_over_the_time_between_its_stats_replies(tmp_path):
    """The controller polls every second, not at the windows' edges: a reply 0.3 s early gives a
    window 0.7 s of packets and the next 1.3 s. A steady 8 Mbit/s flow reads 8 Mbit/s in both, not
    5.6 and 10.4 (germany_50: 9.3 and 12.4 packets/s for 11.7 sent; the twin planned on the low
    one). A reply 0.6 s early (a window of 0.4 s: germany_50's plans15 read 14 of 40 flows at half
    their rate in such a window) is counted over its 0.4 s too; a reply whose time strays past the
    tolerance is counted over the window's length."""
    from traffic.collector import Collector

    from .seeded import T0, seed_traffic_run

    seed_traffic_run(tmp_path, "line3", {"flows": 1, "seed": 1, "phases": [
        {"profile": "deterministic", "load": 0.5, "duration_s": 1}]}, run_id="run-r")
    stores = Stores(tmp_path)
    with stores.traffic.conn:
        stores.traffic.execute("DELETE FROM snapshot_flows")
        stores.traffic.execute("DELETE FROM snapshots")
        stores.traffic.execute("UPDATE run_flows SET proto = 'udp', src_ip = '10.0.0.1', dst_ip = '10.0.0.3', "
                               "dport = 10000")
    ctl = _PolledController()
    col = Collector(stores, "run-r", ctl)
    for window, at in ((0, 0.9), (1, 1.6), (2, 2.9), (3, 3.95), (4, 4.35), (5, 5.9)):
        ctl.poll(T0 + at, int(1_000_000 * at))  # 1 MB/s
        assert col.collect([window]) == 1
    ctl.poll(T0 + 7.95, 7_950_000)  # 2.05 s after the last reply: past the tolerance for one window
    assert col.collect([6]) == 1
    rates = {w.window: f.measured_bps for w in stores.windows("run-r") for f in w.flows}
    assert all(rates[w] == pytest.approx(8e6) for w in range(1, 6)), rates  # 0.4 s (4) and 1.55 s (5) too
    assert rates[6] == pytest.approx(8 * 2_050_000)  # counted over the window's 1 s
