"""The data directory and its three SQLite stores (sqlite-utils, WAL mode, schema version):

- traffic.db: what is known live, no labels: runs, phases, the flows each phase started,
  one snapshot per measurement window with every active flow and every link, events, the
  closed loop's per-window predictions (serving model and frozen shadow), its latest status,
  the SLA monitor's per-window results, and label pauses (the times its training ran);
- labels.db: per-flow per-window delay, jitter, loss and received bitrate decoded from D-ITG
  logs, keyed to the traffic store's (run, window) and flow key;
- weights.db: the virtual twin's model versions (created empty here; vtwin fills it), and the
  model operations' deployments and decisions with their evidence.

Every write that belongs together happens in one transaction, and windows and labels have
natural primary keys, so a writer that crashes and restarts neither loses committed rows nor
duplicates them.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import sqlite_utils

SCHEMA_VERSION = 1
DEFAULT_DATA = Path("~/.local/share/ndt").expanduser()


class StoreError(RuntimeError):
    pass


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """--data, else $NDT_DATA, else ~/.local/share/ndt."""
    return Path(explicit or os.environ.get("NDT_DATA") or DEFAULT_DATA).expanduser()


def _open(path: Path) -> sqlite_utils.Database:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    return db


def _check_version(db: sqlite_utils.Database, name: str) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    elif version != SCHEMA_VERSION:
        raise StoreError(f"{name} has schema version {version}, this ndt knows {SCHEMA_VERSION}")


def flow_key(proto: str, src_ip: str, sport: int, dst_ip: str, dport: int) -> str:
    return f"{proto}:{src_ip}:{sport}>{dst_ip}:{dport}"


def match_key(proto: str, src_ip: str, dst_ip: str, dport: int) -> str:
    """What identifies a traffic-run flow before its source port is known."""
    return f"{proto}:{src_ip}>{dst_ip}:{dport}"


class Stores:
    """The three stores of one data directory."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = data_dir(root)
        self.traffic = _open(self.root / "traffic.db")
        self.labels = _open(self.root / "labels.db")
        self.weights = _open(self.root / "weights.db")
        for db in (self.traffic, self.labels, self.weights):
            _check_version(db, Path(db.conn.execute("PRAGMA database_list").fetchone()[2]).name)
        self._create()

    def _create(self) -> None:
        t = self.traffic
        t.execute("""CREATE TABLE IF NOT EXISTS runs (
            id TEXT PRIMARY KEY, topology TEXT, schedule TEXT, schedule_json TEXT, topology_json TEXT, window_s REAL,
            t0 REAL, started_at REAL, ended_at REAL, status TEXT, flows INTEGER, seed INTEGER)""")
        t.execute("""CREATE TABLE IF NOT EXISTS phases (
            run_id TEXT, idx INTEGER, profile TEXT, protocol TEXT, load REAL, planned_s REAL,
            start_at REAL, end_at REAL, PRIMARY KEY (run_id, idx))""")
        t.execute("""CREATE TABLE IF NOT EXISTS run_flows (
            run_id TEXT, phase_idx INTEGER, flow_no INTEGER, flow_key TEXT, src TEXT, dst TEXT,
            src_ip TEXT, dst_ip TEXT, proto TEXT, sport INTEGER, dport INTEGER, rate_pps REAL,
            pkt_size REAL, offered_bps REAL,
            idt TEXT, size_dist TEXT, status TEXT, error TEXT,
            PRIMARY KEY (run_id, phase_idx, flow_no))""")
        if "sent_pps" not in t["run_flows"].columns_dict:  # what the sender achieved, beside rate_pps
            t["run_flows"].add_column("sent_pps", float)
        t.execute("""CREATE TABLE IF NOT EXISTS snapshots (
            id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, window INTEGER NOT NULL, t_start REAL,
            t_end REAL, phase_idx INTEGER, topology TEXT, routing_version INTEGER,
            n_flows INTEGER, n_links INTEGER, UNIQUE (run_id, window))""")
        t.execute("""CREATE TABLE IF NOT EXISTS snapshot_flows (
            snapshot_id INTEGER, flow_key TEXT, ctl_flow_id INTEGER, src TEXT, dst TEXT, proto TEXT,
            sport INTEGER, dport INTEGER, links TEXT, packets INTEGER, bytes INTEGER,
            window_packets INTEGER, window_bytes INTEGER, measured_bps REAL, ctl_rate_bps REAL,
            offered_bps REAL, pkt_size REAL, flow_no INTEGER, PRIMARY KEY (snapshot_id, flow_key))""")
        t.execute("""CREATE TABLE IF NOT EXISTS snapshot_links (
            snapshot_id INTEGER, link_id TEXT, capacity_mbps REAL, delay_ms REAL, up INTEGER,
            load_ab_bps REAL, load_ba_bps REAL, drops_ab INTEGER, drops_ba INTEGER,
            PRIMARY KEY (snapshot_id, link_id))""")
        if "queue_pkts" not in t["snapshot_links"].columns_dict:  # the link direction's buffer, packets
            t["snapshot_links"].add_column("queue_pkts", int)
        t.execute("""CREATE TABLE IF NOT EXISTS events (
            id INTEGER PRIMARY KEY, run_id TEXT, at REAL, kind TEXT, detail TEXT)""")
        t.execute("""CREATE TABLE IF NOT EXISTS predictions (
            run_id TEXT, window INTEGER, flow_key TEXT, version TEXT, delay_ms REAL, jitter_ms REAL,
            shadow_version TEXT, shadow_delay_ms REAL, shadow_jitter_ms REAL, predicted_at REAL,
            PRIMARY KEY (run_id, window, flow_key))""")
        t.execute("""CREATE TABLE IF NOT EXISTS loop_status (
            run_id TEXT PRIMARY KEY, updated_at REAL, pid INTEGER, status TEXT)""")
        t.execute("""CREATE TABLE IF NOT EXISTS sla_windows (
            run_id TEXT, window INTEGER, flows INTEGER, predicted_violations INTEGER, labeled INTEGER,
            measured_violations INTEGER, tp INTEGER, fp INTEGER, fn INTEGER, tn INTEGER, precision REAL,
            recall REAL, f1 REAL, accuracy REAL, always_compliant_accuracy REAL, evaluated_at REAL,
            PRIMARY KEY (run_id, window))""")
        for col in ("shadow_tp", "shadow_fp", "shadow_fn", "shadow_tn"):  # the frozen shadow's confusion matrix
            if col not in t["sla_windows"].columns_dict:
                t["sla_windows"].add_column(col, int)
        t.execute("""CREATE TABLE IF NOT EXISTS label_pauses (
            id INTEGER PRIMARY KEY, run_id TEXT, start_at REAL, end_at REAL, reason TEXT)""")
        self.labels.execute("""CREATE TABLE IF NOT EXISTS labels (
            run_id TEXT, window INTEGER, flow_key TEXT, snapshot_id INTEGER, flow_no INTEGER,
            delay_ms REAL, jitter_ms REAL, loss_pct REAL, sent INTEGER, received INTEGER,
            rx_bps REAL, PRIMARY KEY (run_id, window, flow_key))""")
        self.weights.execute("""CREATE TABLE IF NOT EXISTS models (
            version TEXT PRIMARY KEY, objective TEXT, objective_version TEXT, created_at REAL, parent TEXT, status TEXT,
            weights BLOB, normalization TEXT, data_range TEXT, metrics TEXT, config TEXT)""")
        self.weights.execute("""CREATE TABLE IF NOT EXISTS deployments (
            id TEXT PRIMARY KEY, uri TEXT, baseline TEXT, strategy TEXT, weight REAL, thresholds TEXT,
            status TEXT, created_at REAL, ended_at REAL)""")
        self.weights.execute("""CREATE TABLE IF NOT EXISTS decisions (
            id TEXT PRIMARY KEY, at REAL, kind TEXT, subject TEXT, decision TEXT, evidence TEXT, pack TEXT)""")

    # -- writes -----------------------------------------------------------------------------------
    def event(self, run_id: str, at: float, kind: str, detail: Any = None) -> None:
        with self.traffic.conn:
            self.traffic["events"].insert({"run_id": run_id, "at": at, "kind": kind,
                                           "detail": json.dumps(detail) if detail is not None else None})

    def write_status(self, run_id: str, status: dict[str, Any]) -> None:
        """The closed loop's latest status (one row per run, replaced)."""
        with self.traffic.conn:
            self.traffic["loop_status"].insert({"run_id": run_id, "updated_at": time.time(), "pid": os.getpid(),
                                                "status": json.dumps(status, default=str)}, replace=True)

    def write_window(self, snapshot: dict[str, Any], flows: list[dict[str, Any]], links: list[dict[str, Any]]) -> bool:
        """Write one window atomically; False (and nothing written) if it was already stored."""
        conn = self.traffic.conn
        with conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO snapshots (run_id, window, t_start, t_end, phase_idx, topology,"
                " routing_version, n_flows, n_links) VALUES (?,?,?,?,?,?,?,?,?)",
                (snapshot["run_id"], snapshot["window"], snapshot["t_start"], snapshot["t_end"],
                 snapshot.get("phase_idx"), snapshot.get("topology"), snapshot.get("routing_version"),
                 len(flows), len(links)))
            if cur.rowcount == 0:
                return False
            sid = cur.lastrowid
            self.traffic["snapshot_flows"].insert_all({**f, "snapshot_id": sid} for f in flows)
            self.traffic["snapshot_links"].insert_all({**lk, "snapshot_id": sid} for lk in links)
        return True

    def write_labels(self, rows: list[dict[str, Any]]) -> int:
        """Insert labels not stored yet; return how many were new."""
        if not rows:
            return 0
        before = self.labels.execute("SELECT count(*) FROM labels").fetchone()[0]
        with self.labels.conn:
            self.labels["labels"].insert_all(rows, ignore=True)
        return self.labels.execute("SELECT count(*) FROM labels").fetchone()[0] - before

    def pause_labels(self, run_id: str, at: float, reason: str) -> int:
        """From `at` on, the run's windows get no labels (until `resume_labels`): what the lab
        measures while a training job shares its cores is not the network's alone."""
        with self.traffic.conn:
            return self.traffic["label_pauses"].insert({"run_id": run_id, "start_at": at, "end_at": None,
                                                        "reason": reason}).last_pk

    def resume_labels(self, pause_id: int, at: float) -> None:
        with self.traffic.conn:
            self.traffic.execute("UPDATE label_pauses SET end_at = ? WHERE id = ? AND end_at IS NULL", [at, pause_id])

    def paused_windows(self, run_id: str, t0: float, window_s: float) -> set[int]:
        """The windows that overlap a label pause (an open one lasts until now)."""
        out: set[int] = set()
        now = time.time()
        for r in self.traffic.query("SELECT start_at, end_at FROM label_pauses WHERE run_id = ?", [run_id]):
            end = r["end_at"] if r["end_at"] is not None else now
            first, last = math.floor((r["start_at"] - t0) / window_s), math.ceil((end - t0) / window_s) - 1
            out.update(range(max(first, 0), last + 1))
        return out

    # -- reads ------------------------------------------------------------------------------------
    def run(self, run_id: str) -> dict[str, Any]:
        rows = list(self.traffic.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        if not rows:
            raise StoreError(f"no run {run_id!r} in {self.root}")
        return rows[0]

    def snapshot_ids(self, run_id: str) -> dict[int, int]:
        return {r["window"]: r["id"] for r in self.traffic.query(
            "SELECT id, window FROM snapshots WHERE run_id = ?", [run_id])}

    def latest_run(self) -> str | None:
        """The run whose loop status was updated last, else the run started last."""
        rows = list(self.traffic.query("SELECT run_id FROM loop_status ORDER BY updated_at DESC LIMIT 1"))
        if not rows:
            rows = list(self.traffic.query("SELECT id AS run_id FROM runs ORDER BY started_at DESC LIMIT 1"))
        return rows[0]["run_id"] if rows else None

    def last_window(self, run_id: str) -> dict[str, Any] | None:
        rows = list(self.traffic.query(
            "SELECT * FROM snapshots WHERE run_id = ? ORDER BY window DESC LIMIT 1", [run_id]))
        return rows[0] if rows else None

    def close(self) -> None:
        for db in (self.traffic, self.labels, self.weights):
            db.close()
