"""The data directory, its three SQLite stores (sqlite-utils, WAL mode, schema version), and the
traffic layer's own tables behind `Stores`, the one class that reads and writes them:

- traffic.db: what is known live, no labels: runs, phases, the flows each phase started,
  one snapshot per measurement window with every active flow and every link, events, and label
  pauses (the times a training job shared the lab's cores: their windows get no labels);
- labels.db: per-flow per-window delay, jitter, loss and received bitrate decoded from D-ITG
  logs, keyed to the traffic store's (run, window) and flow key;
- weights.db: created here, its tables belong to the layers above.

Windows are read back as `traffic.window.Window` objects, never as rows. The layers above own
their tables in these files behind classes of their own: the closed loop's predictions and status
(`sync.store.LoopStore`), the SLA results and the model operations' deployments and decisions
(`sync.sla.SlaStore`, `apps.service.store.OpsStore`), the model registry (`vtwin.registry.Registry`).

Every write that belongs together happens in one transaction, and windows and labels have
natural primary keys, so a writer that crashes and restarts neither loses committed rows nor
duplicates them.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

from topologies import Topology

from .window import Label, Window, WindowFlow, WindowLink

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
    """The three stores of one data directory, and the traffic layer's tables in them."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = data_dir(root)
        self.traffic = _open(self.root / "traffic.db")
        self.labels = _open(self.root / "labels.db")
        self.weights = _open(self.root / "weights.db")
        for db in (self.traffic, self.labels, self.weights):
            _check_version(db, Path(db.conn.execute("PRAGMA database_list").fetchone()[2]).name)
        self._created: set[str] = set()
        self._create()

    def create_once(self, owner: str, create: Callable[[], None]) -> None:
        """Run `create` (the CREATE TABLE statements of a class that owns tables in these files)
        once per `Stores`: those classes are made per request or per window, their tables once."""
        if owner not in self._created:
            create()
            self._created.add(owner)

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
        t.execute("""CREATE TABLE IF NOT EXISTS label_pauses (
            id INTEGER PRIMARY KEY, run_id TEXT, start_at REAL, end_at REAL, reason TEXT)""")
        self.labels.execute("""CREATE TABLE IF NOT EXISTS labels (
            run_id TEXT, window INTEGER, flow_key TEXT, snapshot_id INTEGER, flow_no INTEGER,
            delay_ms REAL, jitter_ms REAL, loss_pct REAL, sent INTEGER, received INTEGER,
            rx_bps REAL, PRIMARY KEY (run_id, window, flow_key))""")

    # -- writes -----------------------------------------------------------------------------------
    def event(self, run_id: str, at: float, kind: str, detail: Any = None) -> None:
        with self.traffic.conn:
            self.traffic["events"].insert({"run_id": run_id, "at": at, "kind": kind,
                                           "detail": json.dumps(detail) if detail is not None else None})

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
        before = self.labels.conn.total_changes
        with self.labels.conn:
            self.labels["labels"].insert_all(rows, ignore=True)
        return self.labels.conn.total_changes - before

    def pause_labels(self, run_id: str, at: float, reason: str) -> int:
        """From `at` on, the run's windows get no labels (until `resume_labels`): what the lab
        measures while a training job shares its cores is not the network's alone."""
        with self.traffic.conn:
            return self.traffic["label_pauses"].insert({"run_id": run_id, "start_at": at, "end_at": None,
                                                        "reason": reason}).last_pk

    def resume_labels(self, pause_id: int, at: float) -> None:
        with self.traffic.conn:
            self.traffic.execute("UPDATE label_pauses SET end_at = ? WHERE id = ? AND end_at IS NULL", [at, pause_id])

    def pauses(self, run_id: str) -> list[dict[str, Any]]:
        """The run's label pauses (start_at, end_at: None while open, reason), oldest first."""
        return list(self.traffic.query("SELECT start_at, end_at, reason FROM label_pauses WHERE run_id = ? "
                                       "ORDER BY id", [run_id]))

    def paused_windows(self, run_id: str, t0: float, window_s: float) -> set[int]:
        """The windows that overlap a label pause (an open one lasts until now)."""
        out: set[int] = set()
        now = time.time()
        for r in self.traffic.query("SELECT start_at, end_at FROM label_pauses WHERE run_id = ?", [run_id]):
            end = r["end_at"] if r["end_at"] is not None else now
            first, last = math.floor((r["start_at"] - t0) / window_s), math.ceil((end - t0) / window_s) - 1
            out.update(range(max(first, 0), last + 1))
        return out

    def add_run(self, row: dict[str, Any]) -> None:
        with self.traffic.conn:
            self.traffic["runs"].insert(row)

    def end_run(self, run_id: str, status: str) -> None:
        with self.traffic.conn:
            self.traffic["runs"].update(run_id, {"status": status, "ended_at": time.time()})

    def delete_run(self, run_id: str) -> None:
        """Remove every row of the run (a campaign's run cut short, built again on resume)."""
        with self.traffic.conn:
            ids = "SELECT id FROM snapshots WHERE run_id = ?"
            self.traffic.execute(f"DELETE FROM snapshot_flows WHERE snapshot_id IN ({ids})", [run_id])
            self.traffic.execute(f"DELETE FROM snapshot_links WHERE snapshot_id IN ({ids})", [run_id])
            for table in ("snapshots", "run_flows", "phases", "events", "label_pauses"):
                self.traffic.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            self.traffic.execute("DELETE FROM runs WHERE id = ?", [run_id])
        with self.labels.conn:
            self.labels.execute("DELETE FROM labels WHERE run_id = ?", [run_id])

    def start_phase(self, row: dict[str, Any]) -> None:
        """A phase, as it starts (windows from now on belong to it)."""
        with self.traffic.conn:
            self.traffic["phases"].insert(row, replace=True)

    def add_run_flows(self, rows: list[dict[str, Any]]) -> None:
        """The flows a phase started."""
        with self.traffic.conn:
            self.traffic["run_flows"].insert_all(rows, replace=True)

    def end_phase(self, run_id: str, idx: int, outcomes: dict[int, dict[str, Any]]) -> None:
        """The phase's end and its flows' outcomes (flow number -> status, error)."""
        with self.traffic.conn:
            for no, row in outcomes.items():
                self.traffic["run_flows"].update((run_id, idx, no), row)
            self.traffic["phases"].update((run_id, idx), {"end_at": time.time()})

    def update_run_flows(self, run_id: str, idx: int, rows: dict[int, dict[str, Any]]) -> None:
        """What the logs told about the phase's flows (key, source port, achieved rate)."""
        with self.traffic.conn:
            for no, row in rows.items():
                self.traffic["run_flows"].update((run_id, idx, no), row)

    # -- reads: runs ------------------------------------------------------------------------------
    def run(self, run_id: str) -> dict[str, Any]:
        rows = list(self.traffic.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        if not rows:
            raise StoreError(f"no run {run_id!r} in {self.root}")
        return rows[0]

    def topology(self, run_id: str) -> Topology:
        """The topology the run's lab was built from (as the controller reported it)."""
        return Topology.from_dict(json.loads(self.run(run_id)["topology_json"]))

    def runs(self, run_id: str | None = None) -> list[dict[str, Any]]:
        """Every run (or the one named; an unknown one is an error), oldest first."""
        rows = list(self.traffic.query("SELECT * FROM runs" + (" WHERE id = ?" if run_id else "")
                                       + " ORDER BY started_at", [run_id] if run_id else []))
        if run_id and not rows:
            raise StoreError(f"no run {run_id!r} in {self.root}")
        return rows

    def run_ids(self) -> set[str]:
        return {r for (r,) in self.traffic.execute("SELECT id FROM runs")}

    def newest_run(self) -> str | None:
        rows = list(self.traffic.query("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1"))
        return rows[0]["id"] if rows else None

    def phases(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.traffic.query("SELECT * FROM phases WHERE run_id = ? ORDER BY idx", [run_id]))

    def phase_windows(self, run_id: str) -> dict[int, tuple[int, int]]:
        """Phase -> (first, last) window measured in it."""
        return {p: (lo, hi) for p, lo, hi in self.traffic.execute(
            "SELECT phase_idx, min(window), max(window) FROM snapshots WHERE run_id = ? AND phase_idx IS NOT NULL "
            "GROUP BY phase_idx", [run_id])}

    def phase_at(self, run_id: str, t: float) -> int | None:
        """The phase running at time `t`, if any."""
        rows = list(self.traffic.query(
            "SELECT idx FROM phases WHERE run_id = ? AND start_at <= ? AND (end_at IS NULL OR end_at > ?) "
            "ORDER BY idx DESC LIMIT 1", [run_id, t, t]))
        return rows[0]["idx"] if rows else None

    def run_flows(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.traffic.query("SELECT * FROM run_flows WHERE run_id = ? ORDER BY phase_idx, flow_no",
                                       [run_id]))

    def flow_status_counts(self, run_id: str, phase_idx: int | None = None) -> dict[str, int]:
        q = "SELECT status, count(*) AS n FROM run_flows WHERE run_id = ?"
        args: list[Any] = [run_id]
        if phase_idx is not None:
            q, args = q + " AND phase_idx = ?", [*args, phase_idx]
        return {r["status"]: r["n"] for r in self.traffic.query(q + " GROUP BY status", args)}

    def events(self, run_id: str, kinds: tuple[str, ...] | None = None, newest: int | None = None
               ) -> list[dict[str, Any]]:
        """The run's events (detail decoded), oldest first; `newest`: only the last so many."""
        q = "SELECT id, at, kind, detail FROM events WHERE run_id = ?"
        args: list[Any] = [run_id]
        if kinds:
            q += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += list(kinds)
        if newest is not None:
            q = f"SELECT * FROM ({q} ORDER BY id DESC LIMIT ?)"
            args.append(newest)
        rows = self.traffic.query(q + " ORDER BY id", args)
        return [{**r, "detail": json.loads(r["detail"]) if r["detail"] else None} for r in rows]

    def event_count(self, run_id: str, kinds: tuple[str, ...]) -> int:
        return self.traffic.execute(f"SELECT count(*) FROM events WHERE run_id = ? AND kind IN "
                                    f"({','.join('?' * len(kinds))})", [run_id, *kinds]).fetchone()[0]

    # -- reads: windows ---------------------------------------------------------------------------
    def snapshot_ids(self, run_id: str, from_window: int = 0) -> dict[int, int]:
        """Window -> snapshot id, from `from_window` on."""
        return {r["window"]: r["id"] for r in self.traffic.query(
            "SELECT id, window FROM snapshots WHERE run_id = ? AND window >= ?", [run_id, from_window])}

    def last_window(self, run_id: str) -> dict[str, Any] | None:
        """The newest window's snapshot row."""
        rows = list(self.traffic.query(
            "SELECT * FROM snapshots WHERE run_id = ? ORDER BY window DESC LIMIT 1", [run_id]))
        return rows[0] if rows else None

    def window_count(self, run_id: str | None = None) -> int:
        where, args = (" WHERE run_id = ?", [run_id]) if run_id else ("", [])
        return self.traffic.execute("SELECT count(*) FROM snapshots" + where, args).fetchone()[0]

    def snapshot_list(self, run_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        """Snapshot rows, newest first (the service's listing)."""
        where, args = (" WHERE run_id = ?", [run_id]) if run_id else ("", [])
        return list(self.traffic.query(
            "SELECT id, run_id AS run, window, t_start, t_end, phase_idx AS phase, n_flows AS flows, "
            "n_links AS links FROM snapshots" + where + " ORDER BY t_start DESC, id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset]))

    def counters(self, snapshot_id: int) -> dict[str, tuple[int, int]]:
        """Flow key -> (packets, bytes) the switches had counted at the end of a window."""
        return {r["flow_key"]: (r["packets"], r["bytes"]) for r in self.traffic.query(
            "SELECT flow_key, packets, bytes FROM snapshot_flows WHERE snapshot_id = ?", [snapshot_id])}

    def run_flow_keys(self, run_id: str, from_window: int = 0) -> set[tuple[int, str]]:
        """(window, flow key) of every run flow the traffic store has features for, from `from_window` on."""
        return {(w, k) for w, k in self.traffic.execute(
            "SELECT s.window, f.flow_key FROM snapshot_flows f JOIN snapshots s ON s.id = f.snapshot_id "
            "WHERE s.run_id = ? AND s.window >= ? AND f.flow_no IS NOT NULL", [run_id, from_window])}

    def windows(self, run_id: str, *, after: int = -1, upto: int | None = None, labels: bool = False,
                links: bool = False, labeled_only: bool = False, run_flows_only: bool = False,
                phase: int | None = None) -> list[Window]:
        """The run's windows after `after` (up to `upto`), oldest first, with their flows and, as
        asked, their links and labels (`labeled_only`: only windows with at least one label)."""
        cond, args = "s.run_id = ? AND s.window > ?", [run_id, after]
        if upto is not None:
            cond, args = cond + " AND s.window <= ?", [*args, upto]
        if phase is not None:
            cond, args = cond + " AND s.phase_idx = ?", [*args, phase]
        out: dict[int, Window] = {}
        for s in self.traffic.query(f"SELECT * FROM snapshots s WHERE {cond} ORDER BY s.window", args):
            out[s["id"]] = _window(s)
        if not out:
            return []
        run = list(self.traffic.query("SELECT schedule_json FROM runs WHERE id = ?", [run_id]))
        schedule = json.loads(run[0]["schedule_json"] or "null") if run else None
        for w in out.values():
            w.schedule = schedule
        fcond = cond + (" AND f.flow_no IS NOT NULL" if run_flows_only else "")
        for f in self.traffic.query(f"SELECT f.* FROM snapshot_flows f JOIN snapshots s ON s.id = f.snapshot_id "
                                    f"WHERE {fcond}", args):
            out[f["snapshot_id"]].flows.append(WindowFlow.from_row(f))
        if links:
            for lk in self.traffic.query(f"SELECT l.* FROM snapshot_links l JOIN snapshots s "
                                         f"ON s.id = l.snapshot_id WHERE {cond}", args):
                out[lk["snapshot_id"]].links.append(WindowLink.from_row(lk))
        windows = sorted(out.values(), key=lambda w: w.window)
        if labels or labeled_only:
            by_window = {w.window: w for w in windows}
            lo, hi = windows[0].window, windows[-1].window
            for r in self.labels.query("SELECT * FROM labels WHERE run_id = ? AND window BETWEEN ? AND ?",
                                       [run_id, lo, hi]):
                w = by_window.get(r["window"])
                if w is not None:
                    w.labels[r["flow_key"]] = Label.from_row(r)
        if labeled_only:
            windows = [w for w in windows if w.labeled]
        return windows

    def window(self, run_id: str, window: int, *, links: bool = False, labels: bool = True) -> Window | None:
        """One window with its flows and, as asked, its labels and links."""
        found = self.windows(run_id, after=window - 1, upto=window, labels=labels, links=links)
        return found[0] if found else None

    def window_by_id(self, snapshot_id: int, *, links: bool = True, labels: bool = True) -> Window | None:
        """The window of a snapshot id, with its flows and, as asked, its links and labels."""
        rows = list(self.traffic.query("SELECT run_id, window FROM snapshots WHERE id = ?", [snapshot_id]))
        return self.window(rows[0]["run_id"], rows[0]["window"], links=links, labels=labels) if rows else None

    # -- reads: labels ----------------------------------------------------------------------------
    def label_count(self, run_id: str) -> int:
        return self.labels.execute("SELECT count(*) FROM labels WHERE run_id = ?", [run_id]).fetchone()[0]

    def label_counts(self, run_id: str, from_window: int = 0) -> dict[int, int]:
        """Window -> how many labels it has, from `from_window` on."""
        return dict(self.labels.execute("SELECT window, count(*) FROM labels WHERE run_id = ? AND window >= ? "
                                        "GROUP BY window", [run_id, from_window]).fetchall())

    def labeled_windows_from(self, run_id: str, window: int) -> int:
        """How many windows from `window` on have at least one delay label."""
        return self.labels.execute(
            "SELECT count(DISTINCT window) FROM labels WHERE run_id = ? AND window >= ? AND delay_ms IS NOT NULL",
            [run_id, window]).fetchone()[0]

    def labels_of(self, run_id: str, from_window: int = 0) -> dict[tuple[int, str], Label]:
        """(window, flow key) -> label, from `from_window` on."""
        return {(r["window"], r["flow_key"]): Label.from_row(r) for r in self.labels.query(
            "SELECT * FROM labels WHERE run_id = ? AND window >= ?", [run_id, from_window])}

    def last_labeled_run(self) -> str | None:
        """The run of the label written last."""
        rows = list(self.labels.query("SELECT run_id FROM labels ORDER BY rowid DESC LIMIT 1"))
        return rows[0]["run_id"] if rows else None

    def flow_rows(self, run_id: str) -> int:
        """How many run-flow window rows the run has (what could be labeled)."""
        return self.traffic.execute("SELECT count(*) FROM snapshot_flows sf JOIN snapshots s ON s.id = sf.snapshot_id "
                                    "WHERE s.run_id = ? AND sf.flow_no IS NOT NULL", [run_id]).fetchone()[0]

    def phase_rates(self, run_id: str, phase_idx: int) -> list[float]:
        """The measured rates (bit/s) of the phase's run flows, every window."""
        return [r for (r,) in self.traffic.execute(
            "SELECT sf.measured_bps FROM snapshot_flows sf JOIN snapshots s ON s.id = sf.snapshot_id "
            "WHERE s.run_id = ? AND s.phase_idx = ? AND sf.flow_no IS NOT NULL AND sf.measured_bps IS NOT NULL",
            [run_id, phase_idx])]

    def sent_ratios(self, run_id: str) -> list[tuple[int, float]]:
        """(phase, achieved over asked packet rate) of every sender whose log told its rate."""
        return [(idx, sent / asked) for idx, sent, asked in self.traffic.execute(
            "SELECT phase_idx, sent_pps, rate_pps FROM run_flows WHERE run_id = ? AND sent_pps IS NOT NULL "
            "AND rate_pps > 0", [run_id])]

    def close(self) -> None:
        for db in (self.traffic, self.labels, self.weights):
            db.close()


def _window(s: dict[str, Any]) -> Window:
    return Window(s["run_id"], s["window"], s["id"], s["t_start"], s["t_end"], s["phase_idx"], s["topology"],
                  s["routing_version"])
