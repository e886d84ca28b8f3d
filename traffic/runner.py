"""Run a schedule on the running lab with D-ITG: receivers in the destination hosts, one sender
per flow per phase in the source hosts, the collector beside it (restarted if it dies), phase
boundaries and every flow's fate recorded, labels decoded from the D-ITG logs during and after each phase.
Every process it starts is adopted by the lab (`ptwin.state.adopt`): if this run is killed,
`ndt lab down` still ends them.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller_app.client import ControllerClient
from ptwin.hostexec import host_command
from ptwin.state import CLOCK_TICKS, adopt, cpu_ticks, process_record, release, stop_processes
from topologies import Topology

from . import ditg
from .flowset import OVERHEAD, FlowPair, flow_sets, per_flow_bps
from .labels import window_labels
from .schedule import Phase, Schedule, data_port, signaling_port
from .store import Stores, flow_key

#: Seconds a sender may run past its phase before it is counted as failed.
GRACE_S = 15.0
#: A sender that uses more than this share of a core over `RUNAWAY_CHECK_S` is killed as a runaway.
#: ITGSend blocks between packets (under 1 % of a core per flow here), but one was seen spinning
#: from its first packet on a congested TCP path; at real-time priority two such senders took both
#: cores for 14 minutes, starving the lab, the loop and the senders that were told to stop.
RUNAWAY_CPU_SHARE = 0.5
RUNAWAY_CHECK_S = 5.0
#: A sender that achieved less than this share of its asked packet rate fell short (a CPU-starved
#: machine): the labels then describe less traffic than the features say was offered.
SHORT_SHARE = 0.9
#: A live labeling pass relabels this many windows before the last one it labeled: a window whose
#: features the collector stored after that pass still gets its labels during the phase.
LATE_FEATURE_WINDOWS = 10
#: Packets sent this many windows before the first window a pass labels are read too: received
#: late, they count towards that window's received bitrate.
RX_MARGIN_WINDOWS = 3


class TrafficError(RuntimeError):
    pass


@dataclass
class Sender:
    flow_no: int
    pair: FlowPair
    proto: str
    dport: int
    proc: subprocess.Popen
    out: Path
    tx_log: Path
    rx_log: Path
    started: float
    ended: float | None = None
    adopted: Path | None = None
    runaway: str | None = None  # why it was killed while it ran
    cpu: tuple[float, float] | None = None  # (when, CPU seconds it had used then)

    def check_runaway(self, now: float) -> bool:
        """Kill it (no wait) if it used more than RUNAWAY_CPU_SHARE of a core since the last check."""
        ticks = cpu_ticks(self.proc.pid) if self.proc.poll() is None else None
        if ticks is None:
            return False
        used = ticks / CLOCK_TICKS
        last, self.cpu = self.cpu, (now, used)
        if last is None or now <= last[0]:
            return False
        share = (used - last[1]) / (now - last[0])
        if share <= RUNAWAY_CPU_SHARE:
            return False
        self.runaway = f"killed as a runaway: it used {share:.0%} of a core (D-ITG spinning)"
        self.proc.kill()
        return True

    def poll(self) -> bool:
        """True while the sender runs; notes when it stopped."""
        if self.proc.poll() is None:
            return True
        if self.ended is None:
            self.ended = time.time()
        return False


def kill_then_reap(senders: list[Sender]) -> list[Sender]:
    """Kill every sender still running, then reap them; returns those that were. All are killed
    before any is waited for: one that cannot run (a runaway real-time sender holding the cores)
    must not keep the others alive."""
    left = [s for s in senders if s.proc.poll() is None]
    for s in left:
        s.proc.kill()
    for s in senders:
        s.proc.wait()
    return left


def sender_outcome(s: Sender, duration_s: float) -> tuple[str, str | None]:
    """(status, note) of a sender that exited. ITGSend sometimes reports the receiver closing the
    signaling channel after it sent everything; a sender that ran its whole duration finished."""
    if s.runaway:
        return "failed", s.runaway
    text = s.out.read_text(errors="replace")
    last = (text.strip().splitlines() or [f"exit code {s.proc.returncode}"])[-1].strip()
    if s.proc.returncode == 0 and "Finished sending" in text:
        return "finished", None
    ran = (s.ended or time.time()) - s.started
    if "Receiver has shut down the connection" in text and ran >= 0.9 * duration_s:
        return "finished", "signaling closed by the receiver after the flow was sent"
    aborted = [ln.strip() for ln in text.splitlines() if "ERROR" in ln or "error" in ln.lower()]
    return "failed", (aborted[0] if aborted else last)


class TrafficRun:
    def __init__(self, schedule: Schedule, stores: Stores, hosts: dict[str, dict[str, Any]], topo: Topology,
                 controller: ControllerClient, window_s: float = 1.0, progress: bool = True,
                 live_labels_s: float | None = None, label_lag_windows: int = 3) -> None:
        if not window_s > 0:
            raise TrafficError(f"window must be positive, got {window_s}")
        self.schedule = schedule
        self.stores = stores
        self.hosts = hosts
        self.topo = topo
        self.controller = controller
        self.window_s = window_s
        self.progress = progress
        self.run_id = time.strftime("run-%Y%m%d-%H%M%S-") + f"{os.getpid() % 10000:04d}"
        self.dir = stores.root / "runs" / self.run_id
        self.logs = self.dir / "logs"
        self.pairs = flow_sets(topo, schedule)  # by phase
        self.receivers: list[dict[str, Any]] = []
        self.collector: subprocess.Popen | None = None
        self.collector_adopted: Path | None = None
        self.decoder = ThreadPoolExecutor(max_workers=1)
        self.decoding: list[Future] = []
        self.phase_senders: dict[int, list[Sender]] = {}
        self.readers: dict[int, dict[Path, ditg.LogReader]] = {}
        self.readers_lock = threading.Lock()
        self.live_labeled_upto: dict[int, int] = {}  # phase -> the last window a live pass labeled
        self.t0 = 0.0
        #: Decode the running phase's logs every this many seconds, so labels arrive during the phase
        #: (windows older than label_lag_windows only: later packets of a window may still be in flight).
        self.live_labels_s = live_labels_s
        self.label_lag_windows = label_lag_windows
        self.stop = threading.Event()  # set by another thread to end the run early (status "stopped")

    # -- processes --------------------------------------------------------------------------------
    def _pid(self, host: str) -> int:
        return int(self.hosts[host]["pid"])

    def _start_receivers(self, idx: int) -> dict[int, int]:
        """One ITGRecv per flow, each on its own signaling port: ITGRecv ends itself when two of its
        flows close at once ("Cannot send ack closed flow"), so flows must not share one."""
        pairs = self.pairs[idx]
        ports = {no: signaling_port(idx, no) for no in range(len(pairs))}
        procs = []
        for no, pair in enumerate(pairs):
            log = open(self.logs / f"p{idx}-f{no}.recv", "wb")
            recv = [*ditg.realtime_prefix(), "ITGRecv", "-Sp", str(ports[no])]
            proc = subprocess.Popen(host_command(self._pid(pair.dst), recv), stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.logs)
            log.close()
            rec = process_record(proc.pid, f"ITGRecv {pair.dst}:{ports[no]}")
            rec["proc"], rec["adopted"] = proc, adopt(proc.pid, rec["what"])
            procs.append(rec)
        self.receivers += procs
        self.stores.event(self.run_id, time.time(), "receivers", {r["what"]: r["pid"] for r in procs})
        deadline = time.monotonic() + 15
        pending = {(pair.dst, ports[no]) for no, pair in enumerate(pairs)}
        while pending and time.monotonic() < deadline:
            for host in {h for h, _ in pending}:
                r = subprocess.run(host_command(self._pid(host), ["ss", "-ltnH"]), capture_output=True, text=True,
                                   timeout=10)
                listening = {int(x.rsplit(":", 1)[1]) for x in r.stdout.split() if ":" in x and x[-1].isdigit()}
                pending -= {(h, p) for h, p in pending if h == host and p in listening}
            if pending:
                time.sleep(0.05)
        if pending:
            raise TrafficError(f"ITGRecv did not start on {', '.join(sorted(f'{h}:{p}' for h, p in pending))}")
        return ports

    def _stop_receivers(self) -> None:
        stop_processes(self.receivers)
        for r in self.receivers:
            r["proc"].wait()
            release(r["adopted"])
        self.receivers = []

    def _start_collector(self) -> None:
        log = open(self.dir / "collector.log", "ab")
        self.collector = subprocess.Popen(
            [sys.executable, "-m", "traffic.collector", "--run", self.run_id, "--data", str(self.stores.root),
             "--controller", self.controller.url], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        release(self.collector_adopted)
        self.collector_adopted = adopt(self.collector.pid, "collector")
        self.stores.event(self.run_id, time.time(), "collector_pid", self.collector.pid)

    def _check_collector(self) -> None:
        if self.collector is not None and self.collector.poll() is not None:
            self.stores.event(self.run_id, time.time(), "collector_died", self.collector.returncode)
            self._start_collector()

    def _stop_collector(self) -> None:
        if self.collector is not None and self.collector.poll() is None:
            self.collector.terminate()
            try:
                self.collector.wait(timeout=10 + 2 * self.window_s)
            except subprocess.TimeoutExpired:
                self.collector.kill()
                self.collector.wait()
        release(self.collector_adopted)
        self.collector_adopted = None

    # -- phases -----------------------------------------------------------------------------------
    def _start_phase(self, idx: int, phase: Phase) -> list[Sender]:
        prof = phase.profile
        bps = per_flow_bps(self.topo, self.pairs[idx], phase.load)
        wire = prof.mean_size + OVERHEAD[prof.protocol]
        pps = bps / (8.0 * wire)
        sig_ports = self._start_receivers(idx)
        start = time.time()
        self.stores.start_phase({"run_id": self.run_id, "idx": idx, "profile": prof.name, "protocol": prof.protocol,
                                 "load": phase.load, "planned_s": phase.duration_s, "start_at": start, "end_at": None})
        senders = []
        rows = []
        for no, pair in enumerate(self.pairs[idx]):
            dport = data_port(idx, no)
            tx_log, rx_log = self.logs / f"p{idx}-f{no}.tx", self.logs / f"p{idx}-f{no}.rx"
            args = ditg.sender_args(pair.dst_ip, dport, prof.protocol, prof.idt, pps, prof.size,
                                    prof.mean_size, int(phase.duration_s * 1000), tx_log, rx_log)
            args += ["-Sdp", str(sig_ports[no])]
            out = self.logs / f"p{idx}-f{no}.out"
            with open(out, "wb") as fh:
                proc = subprocess.Popen(host_command(self._pid(pair.src), args), stdout=fh,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.logs)
            senders.append(Sender(no, pair, prof.protocol.lower(), dport, proc, out, tx_log, rx_log, time.time(),
                                  adopted=adopt(proc.pid, f"ITGSend {pair.src}>{pair.dst}:{dport}")))
            rows.append({"run_id": self.run_id, "phase_idx": idx, "flow_no": no, "flow_key": None, "src": pair.src,
                         "dst": pair.dst, "src_ip": pair.src_ip, "dst_ip": pair.dst_ip,
                         "proto": prof.protocol.lower(), "sport": None, "dport": dport,
                         "rate_pps": pps, "pkt_size": prof.mean_size, "offered_bps": bps, "idt": prof.idt,
                         "size_dist": prof.size, "status": "running", "error": None})
        self.stores.add_run_flows(rows)
        return senders

    def _finish_phase(self, idx: int, senders: list[Sender], planned_end: float) -> dict[str, int]:
        stopping = self.stop.is_set()
        deadline = planned_end + (0.0 if stopping else GRACE_S)
        while time.time() < deadline and any([s.poll() for s in senders]):
            self._check_collector()
            time.sleep(0.2)
        counts = {"finished": 0, "failed": 0, "stopped": 0}
        left = kill_then_reap(senders)
        outcomes = {}
        for s in senders:
            if s in left:
                status, error = ("stopped", "the run was stopped") if stopping else \
                    ("failed", f"still running {GRACE_S:g} s after the phase ended")
            else:
                status, error = sender_outcome(s, planned_end - s.started)
            release(s.adopted)
            counts[status] += 1
            outcomes[s.flow_no] = {"status": status, "error": error}
        self.stores.end_phase(self.run_id, idx, outcomes)
        self._stop_receivers()
        return counts

    def _check_runaways(self, senders: list[Sender]) -> None:
        now = time.monotonic()
        for s in senders:
            if s.check_runaway(now):
                self.stores.event(self.run_id, time.time(), "sender_runaway",
                                  {"flow_no": s.flow_no, "pid": s.proc.pid, "why": s.runaway})

    # -- labels -----------------------------------------------------------------------------------
    def _label_in_thread(self, idx: int, upto_window: int | None = None) -> int:
        stores = Stores(self.stores.root)  # SQLite connections belong to the thread that made them
        try:
            if upto_window is None:
                return self.label_phase(idx, stores)
            # a live pass labels the windows since the last one (and the few before it, for features
            # stored late), so late in a long phase it costs no more than early on
            last = self.live_labeled_upto.get(idx)
            from_window = None if last is None else last + 1 - LATE_FEATURE_WINDOWS
            n = self.label_phase(idx, stores, upto_window, keep_readers=True, from_window=from_window)
            self.live_labeled_upto[idx] = upto_window if last is None else max(last, upto_window)
            return n
        finally:
            stores.close()

    def _readers_of(self, idx: int, keep: bool) -> dict[Path, ditg.LogReader]:
        """The phase's log readers: kept while the phase runs, so each live pass decodes only what
        its logs gained since the last one; a final pass drops them (their packets are labeled)."""
        with self.readers_lock:
            readers = self.readers.get(idx, {}) if keep else self.readers.pop(idx, {})
            if keep:
                self.readers[idx] = readers
        for s in self.phase_senders.get(idx, []):
            for log in (s.tx_log, s.rx_log):
                readers.setdefault(log, ditg.LogReader(log, self.t0))
        return readers

    def label_phase(self, idx: int, stores: Stores | None = None, upto_window: int | None = None,
                    keep_readers: bool = False, from_window: int | None = None) -> int:
        """Decode the phase's D-ITG logs into labels for the windows the traffic store has (from
        `from_window` on if given; up to `upto_window` while the phase still runs: its logs are
        still being written), except the windows of a label pause (`Stores.pause_labels`)."""
        stores = stores or self.stores
        first = from_window if from_window is not None else 0
        # packets sent a little before the first window still count towards its received bitrate
        since = self.t0 + (first - RX_MARGIN_WINDOWS) * self.window_s if from_window is not None else -math.inf
        snaps = stores.snapshot_ids(self.run_id, first)
        paused = stores.paused_windows(self.run_id, self.t0, self.window_s)
        present = stores.run_flow_keys(self.run_id, first)
        rows = []
        keys = {}
        readers = self._readers_of(idx, keep_readers)
        for s in self.phase_senders.get(idx, []):
            sent, received = readers[s.tx_log].since(since), readers[s.rx_log].since(since)
            sport = sent.sport if sent.sport is not None else received.sport
            if sport is None:
                continue
            key = flow_key(s.proto, s.pair.src_ip, sport, s.pair.dst_ip, s.dport)
            keys[s.flow_no] = {"flow_key": key, "sport": sport}
            if upto_window is None:  # the whole log: the rate the sender achieved
                keys[s.flow_no]["sent_pps"] = sent.rate_pps()
            for w, lab in window_labels(sent, received, self.t0, self.window_s).items():
                # a label is kept only where the traffic store has the flow's features for the window
                # and none for a window measured while labels were paused (a training job running)
                if (w, key) in present and w not in paused and (upto_window is None or w <= upto_window) \
                        and w >= first:
                    rows.append({"run_id": self.run_id, "window": w, "flow_key": key, "snapshot_id": snaps[w],
                                 "flow_no": s.flow_no, **lab})
        stores.update_run_flows(self.run_id, idx, keys)
        return stores.write_labels(rows)

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.t0 = math.ceil(time.time()) + 1.0
        total = self.schedule.duration_s
        self.stores.add_run({
            "id": self.run_id, "topology": self.topo.name, "schedule": self.schedule.name,
            "schedule_json": self.schedule.to_dict(), "topology_json": self.topo.to_dict(),
            "window_s": self.window_s, "t0": self.t0,
            "started_at": time.time(), "ended_at": None, "status": "running", "flows": self.schedule.flows,
            "seed": self.schedule.seed})
        status = "failed"
        summary: dict[str, Any] = {"run": self.run_id, "phases": []}
        bar = None
        try:
            self._start_collector()
            while time.time() < self.t0:
                time.sleep(0.02)
            if self.progress and sys.stderr.isatty():
                from tqdm import tqdm

                bar = tqdm(total=round(total), unit="s", desc=self.run_id, file=sys.stderr, mininterval=1.0,
                           bar_format="{desc} {bar} {n:.0f}/{total:.0f} s {postfix}")
            elapsed = 0.0
            for idx, phase in enumerate(self.schedule.phases):
                start = time.time()
                senders = self._start_phase(idx, phase)
                self.phase_senders[idx] = senders
                if self.progress and bar is None:
                    print(f"... phase {idx + 1}/{len(self.schedule.phases)}: {phase.profile.name} "
                          f"({phase.profile.protocol}) load {phase.load:g} for {phase.duration_s:g} s, "
                          f"{len(senders)} flows", file=sys.stderr, flush=True)
                planned_end = start + phase.duration_s
                last_live = time.time()
                last_cpu_check = 0.0
                while time.time() < planned_end and not self.stop.is_set():
                    self._check_collector()
                    if time.monotonic() - last_cpu_check >= RUNAWAY_CHECK_S:
                        last_cpu_check = time.monotonic()
                        self._check_runaways(senders)
                    if self.live_labels_s and time.time() - last_live >= self.live_labels_s and \
                            all(f.done() for f in self.decoding):
                        last_live = time.time()
                        upto = math.floor((last_live - self.t0) / self.window_s) - 1 - self.label_lag_windows
                        self.decoding.append(self.decoder.submit(self._label_in_thread, idx, upto))
                    if bar is not None:
                        bar.n = min(total, elapsed + time.time() - start)
                        running = sum(s.poll() for s in senders)
                        bar.set_postfix_str(f"phase {idx + 1}/{len(self.schedule.phases)} {phase.profile.name} "
                                            f"load {phase.load:g}, {running} flows sending", refresh=False)
                    time.sleep(0.2)
                if self.stop.is_set():
                    planned_end = time.time()
                counts = self._finish_phase(idx, senders, planned_end)
                elapsed += phase.duration_s
                summary["phases"].append({"idx": idx, "profile": phase.profile.name, "load": phase.load, **counts})
                self.decoding.append(self.decoder.submit(self._label_in_thread, idx))
                if self.stop.is_set():
                    break
            # let the collector store the last window, then stop it
            last_window_end = self.t0 + (math.floor((time.time() - self.t0) / self.window_s) + 1) * self.window_s
            while time.time() < last_window_end + 0.5:
                time.sleep(0.05)
            status = "stopped" if self.stop.is_set() else "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            if bar is not None:
                bar.close()
            every = [s for senders in self.phase_senders.values() for s in senders]
            kill_then_reap(every)
            for s in every:
                release(s.adopted)
            self._stop_collector()
            self._stop_receivers()
            for f in self.decoding:
                f.result()
            labeled = sum(self.label_phase(i) for i in self.phase_senders)  # windows stored late
            self.decoder.shutdown()
            self.stores.end_run(self.run_id, status)
            summary["late_labels"] = labeled
        shares = self.sent_shares()
        for p in summary["phases"]:
            p.update(shares.get(p["idx"], {"sent_share": None, "senders_short": 0}))
        short = {p["idx"]: p["sent_share"] for p in summary["phases"] if p["senders_short"]}
        if short:
            self.stores.event(self.run_id, time.time(), "senders_short", short)
        summary.update(self.counts())
        summary["status"] = status
        return summary

    def sent_shares(self) -> dict[int, dict[str, Any]]:
        """Per phase: the median share of its asked packet rate a sender achieved, and how many
        senders achieved less than SHORT_SHARE of theirs."""
        per: dict[int, list[float]] = {}
        for idx, ratio in self.stores.sent_ratios(self.run_id):
            per.setdefault(idx, []).append(ratio)
        return {idx: {"sent_share": round(statistics.median(v), 3), "senders_short": sum(x < SHORT_SHARE for x in v)}
                for idx, v in per.items()}

    def counts(self) -> dict[str, Any]:
        return {"windows": self.stores.window_count(self.run_id), "labels": self.stores.label_count(self.run_id),
                "flows_failed": self.stores.flow_status_counts(self.run_id).get("failed", 0)}
