"""`ndt console`: a live terminal console (Textual) on the closed loop, read from the stores every
second, so it works beside a running `ndt run` (or on a finished run) and over SSH in 80x24.

    run, topology, phase and window; serving model and shadow, the manager's (retraining) state,
    drift detections and swaps; SLA totals against measured delay (precision, recall, F1,
    accuracy beside always answering "compliant"); the worst flows of the newest labeled window
    with predicted and measured delay against their budget; the newest events.

Keys: q quits, r refreshes now.
"""

from __future__ import annotations

import time
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from sync.sla import SlaMonitor, SlaPolicy, SlaStore, summary
from sync.store import LoopStore, loop_status
from traffic.store import Stores

FLOW_ROWS = 10
EVENT_ROWS = 5
SHOWN_EVENTS = ("drift", "drift_ignored", "training_started", "swapped", "candidate_rejected", "training_failed",
                "training_timeout", "swap_failed", "training_cancelled", "snapshot_error", "collector_died")


def _f(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


class ConsoleData:
    """What the console shows, read from the stores (no terminal needed)."""

    def __init__(self, stores: Stores, run: str | None = None, policy: SlaPolicy | None = None) -> None:
        self.stores = stores
        self.fixed_run = run
        self.policy = policy or SlaPolicy()
        self._monitor: SlaMonitor | None = None

    def run_id(self) -> str | None:
        return self.fixed_run or LoopStore(self.stores).latest_run()

    def read(self) -> dict[str, Any]:
        run = self.run_id()
        if run is None:
            return {"run": None}
        info = self.stores.run(run)
        status = loop_status(self.stores, run) or self._from_events(run)
        phases = {p["idx"]: p for p in self.stores.phases(run)}
        last = self.stores.last_window(run)
        if self._monitor is None or self._monitor.run_id != run:
            self._monitor = SlaMonitor(self.stores, run, self.policy)
        sla = summary(self.stores, run)
        labeled = SlaStore(self.stores).latest(run, labeled=True)
        window = labeled["window"] if labeled else None
        flows = [] if window is None else self._monitor.stored_flows(window)
        flows.sort(key=lambda f: -max(f.predicted_ms or 0.0, f.measured_ms or 0.0) / f.budget_ms)
        events = self.stores.events(run, SHOWN_EVENTS, newest=EVENT_ROWS)
        return {"run": run, "info": info, "status": status, "phases": phases, "last": last, "sla": sla,
                "window": window, "flows": flows, "events": events}

    def _from_events(self, run: str) -> dict[str, Any]:
        """A status for a run that stored none (made before the loop persisted it): from its events."""
        ev = [(e["kind"], e["detail"] if isinstance(e["detail"], dict) else {}) for e in self.stores.events(run)]
        swaps = [d for k, d in ev if k == "swapped"]
        shadow = next((d.get("version") for k, d in ev if k == "shadow"), None)
        return {"shadow": shadow, "detections": sum(k in ("drift", "drift_ignored") for k, _ in ev),
                "manager": {"serving": swaps[-1].get("version") if swaps else None, "swaps": len(swaps)}}

    @staticmethod
    def header(d: dict[str, Any]) -> str:
        if d["run"] is None:
            return "no run in this data directory yet: start one with 'ndt run'"
        s, info, last = d["status"], d["info"], d["last"] or {}
        phase_idx = last.get("phase_idx")
        phase = d["phases"].get(phase_idx) if phase_idx is not None else None
        ph = "-" if phase is None else f"{phase_idx + 1}/{len(d['phases'])} {phase['profile']} {phase['load']:g}"
        state = s.get("state") or info["status"]
        return f"{d['run']}  {info['topology']}  [{state}]  window {last.get('window', '-')}  phase {ph}"

    @staticmethod
    def model_line(d: dict[str, Any]) -> str:
        s = d["status"]
        m = s.get("manager") or {}
        det = s.get("detector") or {}
        return (f"model {m.get('serving') or '-'} (shadow {s.get('shadow') or '-'})  manager {m.get('state', '-')}  "
                f"drifts {s.get('detections', 0)}  swaps {m.get('swaps', 0)}  detector {det.get('filled', '-')}/"
                f"{det.get('window', '-')}  predict {_f(s.get('predict_ms'))} ms")

    @staticmethod
    def sla_line(d: dict[str, Any]) -> str:
        a = d["sla"]
        if not a["labeled_windows"]:
            return f"SLA: {a['predicted_violations']} predicted violations, no labels yet"
        return (f"SLA viol pred {a['predicted_violations']} meas {a['measured_violations']}  P {_f(a['precision'], 2)}"
                f" R {_f(a['recall'], 2)} F1 {_f(a['f1'], 2)}  acc {_f(a['accuracy'], 2)}"
                f" (always-ok {_f(a['always_compliant_accuracy'], 2)})")

    @staticmethod
    def flow_rows(d: dict[str, Any]) -> list[tuple[str, ...]]:
        out = []
        for f in d["flows"][:FLOW_ROWS]:
            pv, mv = f.predicted_violation, f.measured_violation
            verdict = ("VIOLATION" if mv else "ok") if pv == mv else ("missed" if mv else "false alarm")
            out.append((f"{f.src}>{f.dst} {f.proto}", str(f.hops), _f(f.budget_ms), _f(f.predicted_ms),
                        "lost" if f.lost else _f(f.measured_ms), verdict))
        return out

    @staticmethod
    def event_lines(d: dict[str, Any]) -> list[str]:
        out = []
        for e in d["events"]:
            detail = e["detail"] if isinstance(e["detail"], dict) else {}
            extra = " ".join(f"{k} {detail[k]}" for k in ("window", "job", "version", "seconds") if k in detail)
            out.append(f"{time.strftime('%H:%M:%S', time.localtime(e['at']))} {e['kind']} {extra}")
        return out


COLUMNS = ("flow", "hops", "budget ms", "predicted", "measured", "verdict")


class TwinConsole(App):
    CSS = """
    Screen { layout: vertical; }
    #header { background: $primary; color: $text; height: 1; }
    .line { height: 1; }
    #flows { height: 12; }
    #events { height: 6; border-top: solid $secondary; }
    """
    BINDINGS = [("q", "quit", "quit"), ("r", "refresh_now", "refresh")]

    def __init__(self, data: ConsoleData, interval: float = 1.0) -> None:
        super().__init__()
        self.data = data
        self.interval = interval

    def compose(self) -> ComposeResult:
        yield Static(id="header", markup=False)
        yield Static(id="model", classes="line", markup=False)
        yield Static(id="sla", classes="line", markup=False)
        yield Static(id="window", classes="line", markup=False)
        yield DataTable(id="flows", show_cursor=False, zebra_stripes=True)
        yield Static(id="events", markup=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.action_refresh_now()
        self.set_interval(self.interval, self.action_refresh_now)

    def action_refresh_now(self) -> None:
        d = self.data.read()
        self.query_one("#header", Static).update(ConsoleData.header(d))
        if d["run"] is None:
            return
        self.query_one("#model", Static).update(ConsoleData.model_line(d))
        self.query_one("#sla", Static).update(ConsoleData.sla_line(d))
        self.query_one("#window", Static).update(
            f"worst flows of window {d['window']} (newest with labels), by delay over budget"
            if d["window"] is not None else "no labeled window yet")
        table = self.query_one(DataTable)
        table.clear()
        table.add_rows(ConsoleData.flow_rows(d))
        self.query_one("#events", Static).update("\n".join(ConsoleData.event_lines(d)) or "(no events yet)")
