"""The closed loop's tables in traffic.db, behind `LoopStore`: the per-window predictions of the
serving model (with their intervals) and of the frozen shadow, and the loop's latest status (one
row per run, replaced at most once a second). `loop_status` is the one reading of a run's status that the console, the
service and the metrics share.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from traffic.store import Stores

#: The prediction rows' interval columns (`sync.intervals`): None until the run is calibrated.
INTERVAL_COLUMNS = {"category": int, "level": float, "delay_lo": float, "delay_hi": float, "jitter_lo": float,
                    "jitter_hi": float, "anomaly_lo": float, "anomaly_hi": float}


class LoopStore:
    """Predictions and status of the runs of one data directory."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.db = stores.traffic
        stores.create_once("sync.store", self._create)

    def _create(self) -> None:
        self.db.execute("""CREATE TABLE IF NOT EXISTS predictions (
            run_id TEXT, window INTEGER, flow_key TEXT, version TEXT, delay_ms REAL, jitter_ms REAL,
            shadow_version TEXT, shadow_delay_ms REAL, shadow_jitter_ms REAL, predicted_at REAL,
            category INTEGER, level REAL, delay_lo REAL, delay_hi REAL, jitter_lo REAL, jitter_hi REAL,
            anomaly_lo REAL, anomaly_hi REAL, PRIMARY KEY (run_id, window, flow_key))""")
        cols = self.db["predictions"].columns_dict
        for col, kind in INTERVAL_COLUMNS.items():  # tables from before the intervals
            if col not in cols:
                self.db["predictions"].add_column(col, kind)
        self.db.execute("""CREATE TABLE IF NOT EXISTS loop_status (
            run_id TEXT PRIMARY KEY, updated_at REAL, pid INTEGER, status TEXT)""")

    # -- writes -----------------------------------------------------------------------------------
    def write_predictions(self, rows: list[dict[str, Any]]) -> None:
        """One window's predictions (a window predicted twice keeps the first)."""
        with self.db.conn:
            self.db["predictions"].insert_all(rows, ignore=True)

    def write_status(self, run_id: str, status: dict[str, Any]) -> None:
        """The loop's latest status (one row per run, replaced)."""
        with self.db.conn:
            self.db["loop_status"].insert({"run_id": run_id, "updated_at": time.time(), "pid": os.getpid(),
                                           "status": json.dumps(status, default=str)}, replace=True)

    # -- reads ------------------------------------------------------------------------------------
    def status(self, run_id: str) -> dict[str, Any] | None:
        """The run's latest status, with when it was written (`updated_at`) and by which process (`pid`)."""
        rows = list(self.db.query("SELECT * FROM loop_status WHERE run_id = ?", [run_id]))
        if not rows:
            return None
        return {**json.loads(rows[0]["status"]), "updated_at": rows[0]["updated_at"], "pid": rows[0]["pid"]}

    def latest_run(self) -> str | None:
        """The run whose loop status was updated last, else the run started last."""
        rows = list(self.db.query("SELECT run_id FROM loop_status ORDER BY updated_at DESC LIMIT 1"))
        return rows[0]["run_id"] if rows else self.stores.newest_run()

    def predictions(self, run_id: str, window: int | None = None) -> list[dict[str, Any]]:
        """The run's predictions (of one window), by window and flow."""
        q, args = "SELECT * FROM predictions WHERE run_id = ?", [run_id]
        if window is not None:
            q, args = q + " AND window = ?", [*args, window]
        return list(self.db.query(q + " ORDER BY window, flow_key", args))

    def recent_predictions(self, run_id: str, n: int) -> list[dict[str, Any]]:
        """The newest `n` predictions, newest window first."""
        return list(self.db.query("SELECT * FROM predictions WHERE run_id = ? ORDER BY window DESC LIMIT ?",
                                  [run_id, n]))

    def prediction_counts(self, run_id: str) -> dict[int, int]:
        """Window -> how many flows were predicted."""
        return dict(self.db.execute("SELECT window, count(*) FROM predictions WHERE run_id = ? GROUP BY window",
                                    [run_id]).fetchall())

    def first_windows(self, run_id: str) -> dict[str, int]:
        """Model version -> the first window it predicted (when a swap took effect)."""
        return dict(self.db.execute("SELECT version, min(window) FROM predictions WHERE run_id = ? GROUP BY version",
                                    [run_id]).fetchall())


def loop_status(stores: Stores, run_id: str) -> dict[str, Any] | None:
    """A run's loop status as the console, the service and the metrics show it: the stored status
    with `updated_at`, `retraining` (the manager's state) and `alive` (a running status whose
    process still runs)."""
    st = LoopStore(stores).status(run_id)
    if st is None:
        return None
    return {**st, "retraining": (st.get("manager") or {}).get("state"),
            "alive": st.get("state") == "running" and pid_alive(st.get("pid"))}


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
