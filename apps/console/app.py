"""`ndt console`: a live terminal console (Textual) on the closed loop, read from the stores every
second, so it works beside a running `ndt run` (or on a finished run) and over SSH in 80x24.

    run, topology, phase and window; the run's change plans (by state, the newest open one with
    its predicted violations and the what-if verdict); serving model and shadow, the manager's (retraining) state,
    drift detections and swaps; SLA totals against measured delay (precision, recall, F1,
    accuracy beside always answering "compliant"); the predictions' intervals (coverage, width)
    and the anomalies (measured delays outside their interval at the stricter level), the newest
    named; the worst flows of the newest labeled window with predicted delay, its interval and
    measured delay against their budget ("at risk" where the interval crosses the budget); the
    newest events.

Keys: q quits, r refreshes now, a approves and x rejects the run's newest proposed change plan
(`apps.plans`: checked fresh against the controller, applied by the run), e explains the worst
flow: its predicted delay broken down along its path by the serving model (`vtwin.explain`:
propagation and queueing per link, the bottleneck and the flows weighing most on it; loading the
model takes a few seconds the first time).
"""

from __future__ import annotations

import time
from typing import Any

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from apps.plans import PlanStore
from sync.intervals import IntervalStore
from sync.sla import SlaMonitor, SlaPolicy, SlaStore, summary
from sync.store import LoopStore, loop_status
from traffic.store import Stores

FLOW_ROWS = 9  # 80x24: header, model, SLA, trust, plans, window lines, 10 of table, 2 explain, 6 events
EVENT_ROWS = 5
SHOWN_EVENTS = ("plan", "drift", "drift_ignored", "training_started", "swapped", "candidate_rejected",
                "training_failed", "training_timeout", "swap_failed", "training_cancelled", "snapshot_error",
                "collector_died")


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
        intervals = IntervalStore(self.stores)
        return {"run": run, "info": info, "status": status, "phases": phases, "last": last, "sla": sla,
                "window": window, "flows": flows, "events": events, "intervals": intervals.summary(run),
                "anomalies": intervals.anomalies(run, newest=1), "plans": PlanStore(self.stores).list(run, limit=50)}

    def decide_newest(self, d: dict[str, Any], verdict: str) -> str:
        """Approve or reject the newest proposed plan of the shown run as `operator:console` (opens
        its own stores: it runs in a worker thread)."""
        from apps.plans import PlanError
        from apps.plans.actions import decide
        from controller_app.client import ControllerClient, ControllerError

        proposed = [p for p in d.get("plans") or [] if p["state"] == "proposed"]
        if not proposed:
            return "no proposed plan to decide on"
        pid = proposed[0]["id"]
        try:
            p = decide(Stores(self.stores.root), pid, verdict, "operator:console", f"{verdict} in the console",
                       lambda: ControllerClient(actor="operator:console"))
        except (PlanError, ControllerError) as exc:
            return f"plan {pid}: {exc}"
        return f"plan {pid} {p['state']}"

    @staticmethod
    def plan_line(d: dict[str, Any]) -> str:
        plans = d.get("plans") or []
        if not plans:
            return "plans: none (ndt run --optimize proposes them)"
        counts: dict[str, int] = {}
        for p in plans:
            counts[p["state"]] = counts.get(p["state"], 0) + 1
        line = "plans " + " ".join(f"{k} {v}" for k, v in counts.items())
        open_ = next((p for p in plans if p["state"] in ("proposed", "approved", "applied")), None)
        if open_:
            pred, w = open_.get("predicted") or {}, open_.get("whatif") or {}
            line += (f" | {open_['id']} {open_['state']}: viol {(pred.get('before') or {}).get('violations')}->"
                     f"{(pred.get('after') or {}).get('violations')} what-if {w.get('decision')} "
                     f"{_f(w.get('risk_score'), 2)}")
            if open_["state"] == "proposed":
                line += "  a approve, x reject"
        return line

    def explain_worst(self, d: dict[str, Any]) -> str:
        """The worst flow of the shown window broken down by the active model (loads TensorFlow;
        opens its own stores: it runs in a worker thread)."""
        from vtwin.dataset import window_snapshot
        from vtwin.explain import explain, sentence
        from vtwin.registry import Registry

        if not d.get("flows") or d.get("window") is None:
            return "no labeled window to explain yet"
        worst = d["flows"][0]
        stores = Stores(self.stores.root)
        reg = Registry(stores)
        version = reg.active("delay")
        if version is None:
            return "no active model to explain with"
        w = stores.window(d["run"], d["window"])
        snap = None if w is None else window_snapshot(stores.topology(d["run"]), w)
        if snap is None or worst.flow_key not in {f.key for f in snap.flows}:
            return f"flow {worst.src}>{worst.dst} is not in window {d['window']}'s snapshot"
        e = explain(reg.twin("delay", version, xla=False), snap, [worst.flow_key])[worst.flow_key]
        hops = ", ".join(f"{h['link']} {h['queueing_ms']:.1f}+{h['propagation_ms']:.1f}" for h in e["hops"])
        return (f"{sentence(e, f'{worst.src}>{worst.dst}', worst.budget_ms)} [{version}]\n"
                f"per hop, queueing+propagation ms: {hops}")

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
    def trust_line(d: dict[str, Any]) -> str:
        iv = d["intervals"]
        if not iv["labeled"]:
            return "intervals: not calibrated yet (they come with the first labeled windows)"
        line = (f"intervals {100 * iv['level']:g} %: coverage {_f(iv['coverage'], 3)} of {iv['labeled']}, "
                f"width {_f(iv['mean_width_rel'], 2)}x  anomalies {iv['anomalies']}")
        if d["anomalies"]:
            a = d["anomalies"][0]
            line += f" (w{a['window']} {a['flow_key'].split('/')[0]} {a['miss_ms']:+.1f} ms)"
        return line

    @staticmethod
    def flow_rows(d: dict[str, Any]) -> list[tuple[str, ...]]:
        out = []
        for f in d["flows"][:FLOW_ROWS]:
            pv, mv = f.predicted_violation, f.measured_violation
            verdict = ("VIOLATION" if mv else "ok") if pv == mv else ("missed" if mv else "false alarm")
            if f.at_risk:
                verdict += " at risk"
            interval = "-" if f.low_ms is None else f"{f.low_ms:.1f}-{f.high_ms:.1f}"
            out.append((f"{f.src}>{f.dst} {f.proto}", str(f.hops), _f(f.budget_ms), _f(f.predicted_ms), interval,
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


COLUMNS = ("flow", "hops", "budget ms", "predicted", "interval", "measured", "verdict")


class TwinConsole(App):
    CSS = """
    Screen { layout: vertical; }
    #header { background: $primary; color: $text; height: 1; }
    .line { height: 1; }
    #flows { height: 10; }
    #explain { height: 2; }
    #events { height: 6; border-top: solid $secondary; }
    """
    BINDINGS = [("q", "quit", "quit"), ("r", "refresh_now", "refresh"), ("e", "explain", "explain the worst flow"),
                ("a", "approve", "approve the newest proposed plan"), ("x", "reject", "reject it")]

    def __init__(self, data: ConsoleData, interval: float = 1.0) -> None:
        super().__init__()
        self.data = data
        self.interval = interval
        self.last: dict[str, Any] = {"run": None}

    def compose(self) -> ComposeResult:
        yield Static(id="header", markup=False)
        yield Static(id="model", classes="line", markup=False)
        yield Static(id="sla", classes="line", markup=False)
        yield Static(id="trust", classes="line", markup=False)
        yield Static(id="plans", classes="line", markup=False)
        yield Static(id="window", classes="line", markup=False)
        yield DataTable(id="flows", show_cursor=False, zebra_stripes=True)
        yield Static("press e to explain the worst flow", id="explain", markup=False)
        yield Static(id="events", markup=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.action_refresh_now()
        self.set_interval(self.interval, self.action_refresh_now)

    def action_explain(self) -> None:
        self.query_one("#explain", Static).update("explaining the worst flow (loading the model)...")
        self.run_worker(self._explain, thread=True, exclusive=True, group="explain")

    def _explain(self) -> None:
        try:
            text = self.data.explain_worst(self.last)
        except Exception as exc:  # noqa: BLE001 - shown, the console stays up
            text = f"cannot explain: {exc}"
        self.call_from_thread(self.query_one("#explain", Static).update, text)

    def action_approve(self) -> None:
        self.run_worker(lambda: self._decide("approve"), thread=True, exclusive=True, group="plan")

    def action_reject(self) -> None:
        self.run_worker(lambda: self._decide("reject"), thread=True, exclusive=True, group="plan")

    def _decide(self, verdict: str) -> None:
        text = self.data.decide_newest(self.last, verdict)
        self.call_from_thread(self.query_one("#explain", Static).update, text)

    def action_refresh_now(self) -> None:
        d = self.last = self.data.read()
        self.query_one("#header", Static).update(ConsoleData.header(d))
        if d["run"] is None:
            return
        self.query_one("#model", Static).update(ConsoleData.model_line(d))
        self.query_one("#sla", Static).update(ConsoleData.sla_line(d))
        self.query_one("#trust", Static).update(ConsoleData.trust_line(d))
        self.query_one("#plans", Static).update(ConsoleData.plan_line(d))
        self.query_one("#window", Static).update(
            f"worst flows of window {d['window']} (newest with labels), by delay over budget"
            if d["window"] is not None else "no labeled window yet")
        table = self.query_one(DataTable)
        table.clear()
        table.add_rows(ConsoleData.flow_rows(d))
        self.query_one("#events", Static).update("\n".join(ConsoleData.event_lines(d)) or "(no events yet)")
