"""The model operations' tables in weights.db, behind `OpsStore`: deployments (canary or shadow,
their thresholds and outcome) and every decision taken, with its evidence and evidence pack."""

from __future__ import annotations

import time
from typing import Any

from traffic.store import Stores


class OpsStore:
    def __init__(self, stores: Stores) -> None:
        self.db = stores.weights
        stores.create_once("apps.service.store", self._create)

    def _create(self) -> None:
        self.db.execute("""CREATE TABLE IF NOT EXISTS deployments (
            id TEXT PRIMARY KEY, uri TEXT, baseline TEXT, strategy TEXT, weight REAL, thresholds TEXT,
            status TEXT, created_at REAL, ended_at REAL)""")
        self.db.execute("""CREATE TABLE IF NOT EXISTS decisions (
            id TEXT PRIMARY KEY, at REAL, kind TEXT, subject TEXT, decision TEXT, evidence TEXT, pack TEXT)""")

    def add_decision(self, rec: dict[str, Any]) -> None:
        with self.db.conn:
            self.db["decisions"].insert(rec)

    def decisions(self, subject: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` decisions (about `subject`), oldest first."""
        q = "SELECT * FROM decisions" + (" WHERE subject = ?" if subject else "") + " ORDER BY at DESC LIMIT ?"
        return list(self.db.query(q, [subject, limit] if subject else [limit]))[::-1]

    def set_pack(self, subject: str, pack: str) -> None:
        """Name the evidence pack of the subject's decisions that have none yet."""
        with self.db.conn:
            self.db.execute("UPDATE decisions SET pack = ? WHERE subject = ? AND pack IS NULL", [pack, subject])

    def add_deployment(self, dep: dict[str, Any]) -> None:
        with self.db.conn:
            self.db["deployments"].insert(dep)

    def end_deployment(self, dep_id: str, status: str) -> None:
        with self.db.conn:
            self.db.execute("UPDATE deployments SET status = ?, ended_at = ? WHERE id = ?",
                            [status, time.time(), dep_id])

    def deployment(self, dep_id: str) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM deployments WHERE id = ?", [dep_id]))
        return rows[0] if rows else None

    def deployments(self, status: str | None = None) -> list[dict[str, Any]]:
        """Deployments (with that status), oldest first."""
        q = "SELECT * FROM deployments" + (" WHERE status = ?" if status else "") + " ORDER BY created_at"
        return list(self.db.query(q, [status] if status else []))
