"""`ndt run` (the closed loop on its own lab, with a live status line; the SLA monitor is one of its stages),
`ndt drift score` (replay a stored run through the detector and score it), `ndt sla` (a run's
SLA results under a policy) and `ndt report` (the with/without-sync report)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from apps.common.config import load_config
from apps.common.table import emit, print_table
from controller_app.client import ControllerClient
from ptwin.control import lab_down, lab_status, lab_up
from ptwin.errors import LabError
from topologies import Topology
from topologies.resolve import load
from traffic.flowset import check_flow_count
from traffic.schedule import load_schedule
from traffic.store import Stores

from .base import CliError, Parser
from .lab_args import add_emulation_args, lab_config
from .model import add_base_model_arg, serve_base_model_first


def drift_config(args: argparse.Namespace):
    from sync.drift import DriftConfig, DriftConfigError

    try:
        return DriftConfig(alpha=args.alpha, window=args.drift_window, stat=args.drift_stat,
                           min_change=args.min_change, features=tuple(args.features.split(",")),
                           smooth=args.drift_smooth)
    except DriftConfigError as exc:
        raise LabError(f"drift detector: {exc}") from None


class StatusLine:
    """One status line, redrawn in place on a terminal, printed every 10 s otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.t0 = time.monotonic()

    def __call__(self, s: dict[str, Any]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.tty and now - self.last < 10:
            return
        self.last = now
        m = s["manager"]
        phase = "-" if s["phase"] is None else f"{s['phase'] + 1}/{s['phases']}"
        line = (f"{now - self.t0:5.0f} s  window {s['window']:>4}  phase {phase}  serving {m['serving'] or '-'}"
                f" (shadow {s['shadow'] or '-'})  drifts {s['detections']}  {m['state']}  swaps {m['swaps']}"
                f"  training {m['training_s']:.0f} s")
        if self.tty:
            sys.stderr.write("\r\033[K" + line[:200])
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")


def serving_line(manager: Any) -> str:
    if not manager.serving:
        return "none yet: bootstrap on the first labels"
    if manager.job is not None and manager.job.kind == "adapt":
        return f"{manager.serving} (the base model; adapting it on the first labels)"
    return manager.serving


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> None:
    from sync.loop import LoopConfig, TwinLoop
    from sync.manager import ManagerConfig
    from vtwin.errors import IntervalError
    from vtwin.intervals import check_level

    topo = load(args.topo)
    schedule = load_schedule(args.schedule)
    if args.duration is not None:
        schedule = schedule.scaled_to(args.duration)
    stores = Stores(args.data)
    config = LoopConfig(window_s=args.window, drift=drift_config(args), sla=load_config(args.config, stores.root).sla,
                        manager=ManagerConfig(budget_s=args.train_budget, timeout_s=args.train_timeout,
                                              min_post_windows=args.post_windows),
                        interval_level=check_level(args.interval_level), anomaly_level=check_level(args.anomaly_level))
    if config.anomaly_level < config.interval_level:
        raise IntervalError(f"--anomaly-level {config.anomaly_level:g} must be at least --interval-level "
                            f"{config.interval_level:g}")
    check_flow_count(topo, schedule.flows)  # before a lab is built for it
    opt = optimize_config(args)
    serve_base_model_first(stores, args)
    if lab_status().get("status") not in ("down", None):
        raise LabError("a lab is already running; 'ndt run' brings up its own (take it down with 'ndt lab down')")
    say = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    lab = lab_config(args)
    # SIGTERM ends the run like Ctrl-C: the lab is taken down either way
    signal.signal(signal.SIGTERM, _interrupt)
    state = lab_up(topo, lab, progress=lambda m: say(f"... {m}"))
    status = StatusLine(not args.json)
    try:
        info = state["info"]
        client = ControllerClient(info["controller"]["rest"])
        loop = TwinLoop(schedule, stores, info["hosts"], Topology.from_dict(client.topology()), client, config,
                        status=status)
        plans = None
        if opt is not None:
            plans = plan_stage(loop, stores, ControllerClient(info["controller"]["rest"], actor="loop"), config, opt,
                               say)
            loop.stages.append(plans)
        say(f"run {loop.run_id}: {topo.name}, schedule {schedule.name} ({len(schedule.phases)} phases, "
            f"{schedule.duration_s:g} s), model {serving_line(loop.manager)}, "
            f"data in {stores.root}")
        try:
            result = loop.run()
            if plans is not None:
                plans.finish()
                from apps.plans import PlanStore

                result["plans"] = PlanStore(stores).counts(loop.run_id)
        finally:
            status.done()
    finally:
        say("... taking the lab down")
        # a second Ctrl-C must not leave the lab half up: the teardown runs to its end (bounded by lab_down)
        handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            lab_down()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    from sync.report import write

    rep = write(stores, result["run"])
    result["report"] = rep["files"]

    def render(r: dict[str, Any]) -> None:
        print(f"run {r['run']} {r.get('status')}: {r.get('windows')} windows, {r['predicted_windows']} predicted, "
              f"{r.get('labels')} labels")
        print(f"drifts detected at windows {r['detections'] or 'none'}; {r['swaps']} swap(s); serving {r['serving']}"
              f" (shadow {r['shadow']}); {r['training_s']} s training")
        iv = r.get("intervals") or {}
        if iv.get("labeled"):
            print(f"intervals at {iv['level']:g}: coverage {iv['coverage']:.3f} over {iv['labeled']} labeled "
                  f"predictions, mean width {iv['mean_width_rel']:.2f} x the prediction; {iv['anomalies']} anomalies")
        if r.get("plans"):
            print("plans: " + ", ".join(f"{n} {s}" for s, n in r["plans"].items() if n) or "plans: none")
        print(f"report: {r['report']['json']}" + (f", plot {r['report']['plot']}" if r["report"]["plot"] else ""))

    emit(result, args.json, render)


def optimize_config(args: argparse.Namespace) -> Any:
    """`ndt run --optimize`'s configuration (None when off), checked before a lab comes up."""
    if getattr(args, "optimize", "off") == "off":
        return None
    from apps.optimize import OptimizeError, read_objective
    from apps.plans.stage import OptimizeConfig

    if not 0 < args.auto_risk <= 1:
        raise CliError(f"--auto-risk must be in (0, 1], not {args.auto_risk:g}")
    if not args.optimize_budget > 0:
        raise CliError(f"--optimize-budget must be above 0 seconds, not {args.optimize_budget:g}")
    objective: dict[str, Any] = {}
    if args.objective:
        try:
            obj = read_objective(args.objective)
        except OptimizeError as exc:
            raise CliError(str(exc)) from None
        objective = obj.model_dump(exclude_none=True, include={"minimize", "policies", "search"})
    return OptimizeConfig(mode=args.optimize, auto_risk=args.auto_risk, budget_s=args.optimize_budget,
                          objective=objective)


def plan_stage(loop: Any, stores: Stores, client: Any, config: Any, opt: Any, say: Any) -> Any:
    """The loop's optimization stage, on the loop's serving model and the lab's controller."""
    import math

    from apps.plans.stage import PlanStage

    def predict() -> Any:
        p = loop.prediction.predictor
        return None if p is None else p.predict

    def explain() -> Any:
        p = loop.prediction.predictor
        return None if p is None else p.explain

    lag = math.ceil(config.live_labels_s / config.window_s) + 2
    stores.event(loop.run_id, time.time(), "optimize_config", opt.to_dict())
    return PlanStage(Stores(stores.root), loop.run_id, loop.topo, client, predict, explain, config.sla, opt, lag,
                     say=say)


def cmd_drift_score(args: argparse.Namespace) -> None:
    from sync.scoring import replay

    stores = Stores(args.data)
    res = replay(stores, args.run, drift_config(args))

    def render(r: dict[str, Any]) -> None:
        print(f"{r['run']}: {r['windows']} windows, {r['changes']} changes, {r['detected']} detected, "
              f"{r['missed']} missed, {r['false_alarms']} false alarm(s), mean delay {r['mean_delay']} windows")
        print_table(r["per_change"], ["change", "detected", "delay"])

    emit(res, args.json, render)


def cmd_report(args: argparse.Namespace) -> None:
    from pathlib import Path

    from sync.report import write

    stores = Stores(args.data)
    rep = write(stores, args.run, Path(args.out) if args.out else None)

    def render(r: dict[str, Any]) -> None:
        print(f"{r['run']}: {r['topology']}, schedule {r['schedule']}, {r['duration_s']} s, {r['samples']} "
              f"labeled predictions")
        o = r["overall"]
        print(f"overall delay NMSE with / without sync: {o['nmse_power_db_with']} / {o['nmse_power_db_without']} dB "
              f"(paper's, / mean y^2), {o['nmse_var_db_with']} / {o['nmse_var_db_without']} dB (ours, / variance); "
              f"MAPE {o['mape_with']} / {o['mape_without']} %")
        print("per segment, NMSE in dB with / without sync (power: the paper's, / mean y^2; var: ours); floor: "
              "power / var of predicting each flow by its mean label (the labels' window-to-window noise):")
        print_table([{"segment": f"{g['segment']} {g['profile']} {g['load']:g}",
                      "delay_power": f"{g['delay']['nmse_power_db_with']} / {g['delay']['nmse_power_db_without']}",
                      "delay_var": f"{g['delay']['nmse_var_db_with']} / {g['delay']['nmse_var_db_without']}",
                      "delay_mape": f"{g['delay']['mape_with']} / {g['delay']['mape_without']}",
                      "delay_floor": f"{g['delay']['floor_nmse_power_db']} / {g['delay']['floor_nmse_var_db']}",
                      "jitter_power": f"{g['jitter']['nmse_power_db_with']} / {g['jitter']['nmse_power_db_without']}",
                      "sla_f1": "-" if not g["sla"] else f"{g['sla']['f1']} / {g['sla']['without_sync']['f1']}"}
                     for g in r["segments"]],
                    ["segment", "delay_power", "delay_var", "delay_mape", "delay_floor", "jitter_power", "sla_f1"])
        print("per drift, NMSE in dB (ours, / variance):")
        print_table(r["drifts"], ["drift", "from", "to", "detection_delay", "pre_nmse_with", "pre_nmse_without",
                                  "post_nmse_with", "post_nmse_without", "post_gain_db",
                                  "post_nmse_power_db_with", "post_nmse_power_db_without"])
        print(f"detections {r['detections']}, false alarms {r['false_alarms']}, swaps {r['swaps']}, "
              f"retraining {r['retraining_s']} s ({100 * r['retraining_share']:.1f} % of the run; "
              f"{r['training_s']} s with the bootstrap model)")
        print(f"wrote {r['files']['json']}" + (f" and {r['files']['plot']}" if r["files"]["plot"] else ""))

    emit(rep, args.json, render)


def cmd_sla(args: argparse.Namespace) -> None:
    from sync.intervals import IntervalStore
    from sync.sla import SlaMonitor, SlaStore, summary

    stores = Stores(args.data)
    monitor = SlaMonitor(stores, args.run, load_config(args.config, stores.root).sla)
    monitor.replay()
    res = summary(stores, args.run)
    latest = SlaStore(stores).latest(args.run, labeled=True)
    window = args.window if args.window is not None else (latest["window"] if latest else None)
    flows = [] if window is None else sorted(
        (f.to_dict() for f in monitor.stored_flows(window)),
        key=lambda f: -max(f["predicted_ms"] or 0, f["measured_ms"] or 0) / f["budget_ms"])
    res.update({"window": window, "flow_states": flows, "policy": monitor.policy.to_dict(),
                "intervals": IntervalStore(stores).summary(args.run),
                "anomalies": IntervalStore(stores).anomalies(args.run, newest=10)})

    def render(r: dict[str, Any]) -> None:
        print(f"{r['run']}: {r['windows']} windows evaluated ({r['labeled_windows']} with labels); "
              f"{r['predicted_violations']} predicted and {r['measured_violations']} measured violations")
        print(f"against measured delay: precision {r['precision']}, recall {r['recall']}, F1 {r['f1']}, "
              f"accuracy {r['accuracy']} (always answering compliant: {r['always_compliant_accuracy']})")
        iv = r["intervals"]
        if iv["labeled"]:
            print(f"{r['at_risk']} flow-windows at risk (interval across the budget); intervals at {iv['level']:g} "
                  f"covered {iv['coverage']:.3f} of {iv['labeled']} measured delays; {iv['anomalies']} anomalies")
        if r["window"] is not None:
            print(f"window {r['window']}, worst flows first:")
            print_table(r["flow_states"], ["flow_key", "budget_ms", "budget_from", "predicted_ms", "low_ms", "high_ms",
                                           "measured_ms", "predicted_violation", "at_risk", "measured_violation"])
        if r["anomalies"]:
            print("newest anomalies (measured delay outside its interval at "
                  f"{r['anomalies'][0]['level']:g}):")
            print_table(r["anomalies"], ["window", "flow_key", "path", "measured_ms", "predicted_ms", "low_ms",
                                         "high_ms", "miss_ms"])

    emit(res, args.json, render)


def add_drift_args(p: argparse.ArgumentParser) -> None:
    """The detector's options; their defaults are `sync.drift.DriftConfig`'s."""
    from sync.drift import DriftConfig

    d = DriftConfig()
    p.add_argument("--alpha", type=float, default=d.alpha, help=f"KSWIN significance level (default {d.alpha})")
    p.add_argument("--drift-window", type=int, default=d.window,
                   help=f"KSWIN window size (windows, default {d.window})")
    p.add_argument("--drift-stat", type=int, default=d.stat, help=f"KSWIN statistic size (windows, default {d.stat})")
    p.add_argument("--min-change", type=float, default=d.min_change,
                   help=f"smallest relative change of the mean that counts (default {d.min_change})")
    p.add_argument("--features", default=",".join(d.features), help="comma-separated: rate,spread,size "
                   f"(default {','.join(d.features)})")
    p.add_argument("--drift-smooth", type=int, default=d.smooth,
                   help=f"feed the detector the mean of this many windows (default {d.smooth})")


def run_parser_defaults() -> dict[str, Any]:
    """The defaults of every `ndt run` option (for `ndt demo`)."""
    p = argparse.ArgumentParser()
    _run_args(p)
    return vars(p.parse_args([]))


def _run_args(t: argparse.ArgumentParser) -> None:
    from topologies import builtin as builtin_topos

    t.add_argument("topo", metavar="TOPO", nargs="?", default=builtin_topos.DEFAULT)
    t.add_argument("--schedule", default="paper-drift")
    t.add_argument("--duration", type=float, default=None, help="scale the phases to last this many seconds")
    t.add_argument("--window", type=float, default=1.0, help="measurement window, seconds")
    t.add_argument("--train-budget", type=float, default=30.0, help="seconds of training per retraining")
    t.add_argument("--train-timeout", type=float, default=180.0, help="a trainer running longer is killed")
    t.add_argument("--post-windows", type=int, default=10, help="labeled post-drift windows before retraining")
    t.add_argument("--interval-level", type=float, default=0.9,
                   help="level of the predictions' intervals, in (0, 1) (default 0.9)")
    t.add_argument("--anomaly-level", type=float, default=0.99,
                   help="a measured delay outside its interval at this level is an anomaly (default 0.99)")
    t.add_argument("--optimize", choices=("off", "propose", "auto"), default="off",
                   help="when the SLA monitor predicts violations, optimize the routing with the twin and propose a "
                        "plan (propose: an operator approves with 'ndt plan approve'; auto: what-if APPROVE under "
                        "--auto-risk is approved by policy)")
    t.add_argument("--auto-risk", type=float, default=0.3, help="auto mode approves plans under this risk (0.3)")
    t.add_argument("--optimize-budget", type=float, default=3.0, help="the optimizer's search seconds (3)")
    t.add_argument("--objective", default=None,
                   help="objective file for --optimize (minimize, policies, search; the SLO is the SLA policy's)")
    add_emulation_args(t)
    t.add_argument("--data", default=None)
    t.add_argument("--config", default=None, help="configuration file with the SLA policy (see apps/common/config.py)")
    add_base_model_arg(t)
    t.add_argument("--json", action="store_true")
    add_drift_args(t)


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("run", help="the closed loop: lab, traffic, predictions, drift detection, retraining")
    _run_args(t)
    t.set_defaults(func=cmd_run)

    d = sub.add_parser("drift", help="drift detection on stored runs")
    dsub = d.add_subparsers(dest="sub", required=True, parser_class=Parser)
    t = dsub.add_parser("score", help="replay a run through the detector; delays, misses, false alarms")
    t.add_argument("run", metavar="RUN")
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    add_drift_args(t)
    t.set_defaults(func=cmd_drift_score)

    t = sub.add_parser("sla", help="SLA monitoring of a run: budgets from policy, predicted and measured violations")
    t.add_argument("run", metavar="RUN")
    t.add_argument("--window", type=int, default=None, help="show this window's flows (default: the latest labeled)")
    t.add_argument("--config", default=None, help="configuration file with the SLA policy")
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_sla)

    t = sub.add_parser("report", help="the closed-loop report of a run: NMSE with and without sync, drifts")
    t.add_argument("run", metavar="RUN")
    t.add_argument("--out", default=None, help="directory (default: the run's directory)")
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_report)

