"""A corpus campaign: the runs of a corpus spec, one lab and one traffic run each, into one data
directory, resumable. What was built is recorded in DATA/campaign.json (written whole and
renamed); a run is `done` only once its traffic run finished and its lab is down. Run again, the
campaign skips done runs, and a run cut short (Ctrl-C, a crash, a failure) is deleted from the
stores and built again; if the lab it left is still up (recorded by its start time), it is taken
down first. A lab the campaign did not start is never touched.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from controller_app.client import ControllerClient
from ptwin.control import lab_down, lab_status, lab_up
from ptwin.lab import LabConfig
from topologies import DEFAULT_QUEUE_PKTS, Topology

from .corpus import CorpusError, CorpusRun, CorpusSpec
from .runner import TrafficError, TrafficRun
from .store import Stores

STATE_FILE = "campaign.json"
#: Seconds a lab of the corpus may take to come up (a 50-switch lab takes about a minute here).
LAB_READY_S = 300.0


class Campaign:
    def __init__(self, spec: CorpusSpec, stores: Stores, progress: Callable[[str], None] = lambda m: None,
                 bars: bool = True, lab: LabConfig | None = None) -> None:
        """`lab`: the emulation settings every run starts from (ports, daemons); each run sets its
        own capacity scale, buffers and start-up timeout."""
        self.spec = spec
        self.lab = lab or LabConfig()
        self.stores = stores
        self.progress = progress
        self.bars = bars
        self.path = stores.root / STATE_FILE
        self.state = self._read()

    # -- the record ---------------------------------------------------------------------------------
    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"spec": self.spec.name, "source": self.spec.source, "runs": {}}
        try:
            state = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CorpusError(f"{self.path}: unreadable campaign record ({exc}); move it away to start over") from None
        if state.get("spec") != self.spec.name:
            raise CorpusError(f"{self.stores.root} holds corpus {state.get('spec')!r}, not {self.spec.name!r}; "
                              "use another --data")
        for run in self.spec.runs:
            rec = state["runs"].get(run.key)
            if rec and rec.get("status") == "done" and rec.get("fingerprint") != run.fingerprint:
                raise CorpusError(f"run {run.key} was built from a different entry of the spec; "
                                  "use another --data or restore the spec")
        return state

    def _write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".part")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.path)

    def _set(self, run: CorpusRun, **fields: Any) -> None:
        self.state["runs"].setdefault(run.key, {}).update(fields)
        self._write()

    # -- building -----------------------------------------------------------------------------------
    def pending(self) -> list[CorpusRun]:
        return [r for r in self.spec.runs if self.state["runs"].get(r.key, {}).get("status") != "done"]

    def build(self, limit: int | None = None) -> dict[str, Any]:
        """Build the runs not done yet (at most `limit`); return the summary. Ctrl-C propagates
        once the lab is down and the run is recorded as interrupted."""
        todo = self.pending()[:limit] if limit is not None else self.pending()
        t0 = time.monotonic()
        for i, run in enumerate(todo):
            self.progress(f"run {run.key} ({i + 1}/{len(todo)} this time): {run.topology.name}, "
                          f"{len(run.topology.nodes)} nodes, {run.schedule.flows} flows, "
                          f"{len(run.schedule.phases)} phases, {run.schedule.duration_s:g} s")
            self._build_one(run)
        return self.summary(time.monotonic() - t0)

    def _build_one(self, run: CorpusRun) -> None:
        self._clear_previous(run)
        if lab_status().get("status") != "down":
            raise CorpusError("a lab is running that this campaign did not start; take it down "
                              "('ndt lab down') and run the campaign again")
        config = replace(self.lab, capacity_scale=run.capacity_scale(),
                         queue_pkts=run.queue or DEFAULT_QUEUE_PKTS, ready_timeout=LAB_READY_S)
        started = time.time()
        self._set(run, fingerprint=run.fingerprint, status="starting", run_id=None, started_at=started,
                  lab_started_at=None, error=None, **{"spec": run.describe()})
        try:
            st = lab_up(run.topology, config, progress=self.progress)
        except BaseException as exc:
            self._set(run, status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                      error=str(exc) or type(exc).__name__)
            raise
        self._set(run, lab_started_at=st.get("started_at"))
        status, error, result = "failed", None, None
        try:
            info = st["info"]
            client = ControllerClient(info["controller"]["rest"])
            topo = Topology.from_dict(client.topology())
            traffic = TrafficRun(run.schedule, self.stores, info["hosts"], topo, client, progress=self.bars)
            self._set(run, status="running", run_id=traffic.run_id)
            result = traffic.run()
            status = "done" if result["status"] == "finished" else result["status"]
        except KeyboardInterrupt:
            status, error = "interrupted", "interrupted (Ctrl-C)"
            raise
        except (TrafficError, OSError, RuntimeError, ValueError) as exc:
            error = str(exc)
        finally:
            try:
                lab_down()
            finally:
                fields: dict[str, Any] = {"status": status, "error": error, "ended_at": time.time(),
                                          "seconds": round(time.time() - started, 1)}
                if result is not None:
                    fields.update(windows=result["windows"], labels=result["labels"],
                                  failed_flows=result["flows_failed"],
                                  short_phases=[p["idx"] for p in result["phases"] if p.get("senders_short")],
                                  sent_share=[p.get("sent_share") for p in result["phases"]])
                self._set(run, **fields)
        if status != "done":
            self.progress(f"run {run.key} {status}: {error or 'see its logs'}")

    def _clear_previous(self, run: CorpusRun) -> None:
        """Whatever an earlier attempt of `run` left: its lab (if still the one it started) and its rows."""
        rec = self.state["runs"].get(run.key)
        if not rec:
            return
        st = lab_status()
        if st.get("status") != "down" and rec.get("lab_started_at") is not None \
                and st.get("started_at") == rec["lab_started_at"]:
            self.progress(f"run {run.key}: taking down the lab its last attempt left")
            lab_down()
        if rec.get("run_id") and rec["run_id"] in self.stores.run_ids():
            self.progress(f"run {run.key}: deleting the {rec.get('status')} attempt {rec['run_id']}")
            self.stores.delete_run(rec["run_id"])

    # -- reading ------------------------------------------------------------------------------------
    def summary(self, seconds: float | None = None) -> dict[str, Any]:
        rows = []
        for run in self.spec.runs:
            rec = self.state["runs"].get(run.key, {})
            rows.append({**run.describe(), "status": rec.get("status", "pending"), "run_id": rec.get("run_id"),
                         "windows": rec.get("windows"), "labels": rec.get("labels"),
                         "build_seconds": rec.get("seconds"), "short_phases": len(rec.get("short_phases") or []),
                         "error": rec.get("error")})
        done = [r for r in rows if r["status"] == "done"]
        return {"spec": self.spec.name, "source": self.spec.source, "data": str(self.stores.root),
                "runs": rows, "done": len(done), "total": len(rows),
                "labeled_flow_windows": sum(r["labels"] or 0 for r in done),
                "windows": sum(r["windows"] or 0 for r in done),
                "build_seconds": round(sum(r["build_seconds"] or 0 for r in done), 1),
                "planned_traffic_seconds": self.spec.duration_s,
                **({"seconds_this_time": round(seconds, 1)} if seconds is not None else {})}


def done_run_ids(root: Path) -> list[str] | None:
    """The run ids a campaign record in `root` lists as done; None without a record."""
    path = Path(root) / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return [r["run_id"] for r in state.get("runs", {}).values() if r.get("status") == "done" and r.get("run_id")]
