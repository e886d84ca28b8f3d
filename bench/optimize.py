"""The closed control loop measured on a real lab: an optimizer's plan and the LP's applied the same
way, and the twin as a change gate. Prints one JSON document.

    sudo .venv/bin/python bench/optimize.py [--topology diamond] [--flows 6] [--load 1.4] [--changes 30]
        [--windows 5] [--budget 5] [--margin 5] [--pairs-seed 2] [--pair-budgets] [--frames] [--gate-only] [--data DIR]

The SLO is the SLA policy's: each flow's budget is its path's propagation plus `--margin` ms
(written to each lab's `ndt.yaml`; a 50-switch lab's userspace switches add about 5 ms at light
load, so a larger margin there keeps the healthy network within its SLO); with `--pair-budgets`,
each host pair's delay-shortest propagation plus `--margin`, as flow rules, wherever a plan routes
it (a detour then spends its budget instead of moving it). `--frames` emulates the
links at the rate that keeps the congested phase within the frames per second two cores' switches
carry (`traffic.corpus.auto_max_mbps`, as corpus runs do): on a 50-switch lab at the lab's own
rates 40 flows at load 1.4 starve the switches of CPU and the delays measure the machine.
`--pairs-seed` draws other host pairs for the flows (and their pair budgets); a `--load` no routing
can carry (2.0 and more on germany_50) is where minimizing the highest utilization (the LP) and
minimizing SLO violations (the twin's objective) part ways.

Two labs, one after the other, each a steady phase under `ndt run` (its loop predicts every
window and the SLA monitor judges each labeled one):

- plans, on a congested run (`--load`, 1.4 of the busiest link): the twin's plan (`ndt optimize`'s
  search, the SLA policy's budgets as the SLO) and the min-max-utilization LP's, each applied
  through PUT /routing, measured for `--windows` labeled windows once the lab has settled (the
  plans' own test, `apps.plans.measure.settled_after`: full buffers drain for seconds after a
  change relieves their links; every measurement, before included, starts after it), and
  reverted; measured SLO violation rate and p95 delay before and after each, the twin's predicted
  against the measured improvement, the planning time.
- the change gate, on a healthy run (`--gate-load`, 0.6: a congested network already breaks its
  SLO, so every change would be held): `--changes` random changes (a link failure, a told
  capacity change, a weight change), each answered by the what-if engine on the newest snapshot
  (APPROVE, or not), then made on the lab, measured, and undone; the confusion matrix of the
  decision against the measured outcome (the change breaks the SLO when the violation rate gets
  worse than before by more than the plans' gate: 10 % plus 2 points); a break is measured again
  on the next windows before the change is undone, and the matrix is also given with the breaks
  that held in both measurements (`confusion_confirmed`).
Every measurement skips the windows in which the machine stalled (`apps.plans.measure.steady`;
each gate row's `stalls_skipped`: how many before and after the change).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apps.common.config import load_config  # noqa: E402
from apps.optimize import network_of, optimize  # noqa: E402
from apps.plans import Gate, merged_policy  # noqa: E402
from apps.plans.measure import STEADY_SPAN, labeled_windows, measured, settled_after, steady  # noqa: E402
from apps.plans.stage import loop_objective  # noqa: E402
from apps.whatif import WhatIfRequest, answer  # noqa: E402
from controller_app.client import ControllerClient  # noqa: E402
from ptwin.control import lab_status, request  # noqa: E402
from topologies import load  # noqa: E402
from traffic.flowset import choose_pairs  # noqa: E402
from traffic.store import Stores  # noqa: E402

BENCH_SEED = 2  # the schedule's seed by default: its host pairs (--pairs-seed)
LAG = 7  # windows until a window's labels are complete (live labels after 4 s, 1 s windows)


class Lab:
    """The running `ndt run` and what the bench reads and changes on it."""

    def __init__(self, data: Path, topo: str, flows: int, load_: float, duration_s: float, margin_ms: float,
                 scale: float | None = None, pair_budgets: bool = False, pairs_seed: int = BENCH_SEED) -> None:
        data.mkdir(parents=True, exist_ok=True)
        sla: dict[str, Any] = {"margin_ms": margin_ms}
        if pair_budgets:
            sla["flows"] = pair_budget_rules(load(topo), flows, margin_ms, pairs_seed)
        (data / "ndt.yaml").write_text(json.dumps({"sla": sla}))
        sched = data.parent / "bench-schedule.json"
        sched.write_text(json.dumps(bench_schedule(flows, load_, duration_s, pairs_seed)))
        self.proc = subprocess.Popen([sys.executable, "-m", "apps", "run", topo, "--schedule", str(sched),
                                      "--data", str(data), "--json", "--train-budget", "10",
                                      *(["--capacity-scale", f"{scale:.6g}"] if scale else [])], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.data = data
        self.stores: Stores | None = None
        self.run: str | None = None
        self.client = ControllerClient(actor="bench")
        self.sla = load_config(None, data).sla

    def wait_run(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: ndt run exited: {self.proc.stderr.read()[-500:]}")
            if (self.data / "traffic.db").exists():
                self.stores = self.stores or Stores(self.data)
                self.run = self.stores.newest_run()
                if self.run and len(labeled_windows(self.stores, self.run)) > LAG + 2:
                    return
            time.sleep(0.5)
        raise SystemExit("bench: no labeled windows in time")

    def newest(self) -> int:
        assert self.stores and self.run
        return (self.stores.last_window(self.run) or {"window": -1})["window"]

    def complete(self) -> int:
        """The newest window whose labels are complete."""
        return self.newest() - LAG

    def poll(self, check: Any, timeout: float, what: str) -> Any:
        """check() every half second until it returns something other than None; exits when the run
        ends or after `timeout` s, saying `what` it waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = check()
            if got is not None:
                return got
            if self.proc.poll() is not None:
                raise SystemExit("bench: ndt run ended before the bench")
            time.sleep(0.5)
        raise SystemExit(f"bench: {what} in time")

    def wait_windows(self, after: int, n: int, timeout: float = 120) -> list[int]:
        """The first n labeled, complete windows after `after` (a settled lab), the machine's stalls
        skipped (`apps.plans.measure.steady`)."""
        def check() -> list[int] | None:
            done = self.complete()
            ws = [r["window"] for r in labeled_windows(self.stores, self.run, after + 1) if r["window"] <= done]
            kept = steady(self.stores, self.run, ws, n) if len(ws) >= n else []
            return kept if len(kept) >= n else None
        return self.poll(check, timeout, f"no {n} labeled windows after {after}")

    def settled(self, start: int, timeout: float = 240) -> int:
        """The window after which the lab has settled since `start` (the plans' own test)."""
        gate = Gate()
        return self.poll(lambda: settled_after(self.stores, self.run, start, self.complete(), gate.steady_share,
                                               gate.max_settle_windows),
                         timeout, f"the lab did not settle after window {start}")

    def measure_from(self, n: int, settle: int = 1) -> dict[str, Any]:
        """n labeled windows once the lab has settled after the newest window + `settle`."""
        start = self.settled(self.newest() + settle)
        return {**measured(self.stores, self.run, self.wait_windows(start, n)), "settled_after": start}

    def window(self) -> Any:
        w = self.stores.window(self.run, self.complete(), labels=False)
        assert w is not None
        return w

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # our own run: it takes its lab down
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def pair_budget_rules(topo: Any, flows: int, margin_ms: float,
                      pairs_seed: int = BENCH_SEED) -> list[dict[str, Any]]:
    """SLA flow rules: each of the bench's host pairs may take its delay-shortest path's propagation
    (the path the controller starts it on) plus `margin_ms`, wherever a plan routes it."""
    return [{"match": f"{p.src}>{p.dst}",
             "latency_ms": round(sum(topo.link(lk).delay_ms for lk in p.links) + margin_ms, 3)}
            for p in choose_pairs(topo, flows, pairs_seed)]


def bench_schedule(flows: int, load_: float, duration_s: float, pairs_seed: int = BENCH_SEED) -> dict[str, Any]:
    """One steady phase of deterministic UDP flows between the host pairs `pairs_seed` draws, the busiest
    link at `load_`."""
    return {"flows": flows, "seed": pairs_seed, "phases": [
        {"profile": "deterministic", "protocol": "udp", "load": load_, "duration_s": duration_s}]}


def frame_scale(topo: Any, flows: int, load_: float, pairs_seed: int = BENCH_SEED) -> float:
    """The capacity scale that keeps the bench's phase within the switches' frame budget."""
    from traffic.corpus import auto_max_mbps
    from traffic.schedule import parse

    sched = parse(bench_schedule(flows, load_, 60, pairs_seed), "bench")
    return auto_max_mbps(topo, sched) / max(lk.capacity_mbps for lk in topo.links)


def predictor(stores: Stores) -> Any:
    from vtwin.predictor import Predictor
    from vtwin.registry import Registry

    return Predictor(Registry(stores), xla=False)


def apply_policy(lab: Lab, policy: dict[str, Any], reason: str) -> int:
    return lab.client.set_policy(policy["weights"], policy["pins"], reason=reason)["version"]


def plans(lab: Lab, pred: Any, n: int, budget: float) -> dict[str, Any]:
    before = lab.measure_from(n, settle=0)
    w = lab.window()
    obj, version, base = loop_objective(w, lab.sla, lab.client, {}, budget)
    t0 = time.perf_counter()
    result = optimize(pred.predict, lab.stores, obj, network_of(lab.stores, obj))
    planning_s = time.perf_counter() - t0
    out: dict[str, Any] = {"snapshot_id": w.snapshot_id, "planning_s": round(planning_s, 2),
                           "search": result["search"], "before": before,
                           "predicted": {k: result[k]["metrics"] for k in ("current", "twin", "lp")}}
    for name in ("twin", "lp"):
        changes = result[name]["changes"]
        if not changes["weights"] and not changes["pins"]:
            out[name] = {"changes": changes, "applied": False}
            continue
        v = apply_policy(lab, merged_policy(base, changes), f"bench: {name} plan")
        after = lab.measure_from(n)
        lab.client.revert(version, reason="bench: undo")
        again = lab.measure_from(n)
        cur_p, new_p = result["current"]["metrics"], result[name]["metrics"]
        m_gain = before["p95_delay_ms"] - after["p95_delay_ms"]
        p_gain = cur_p["p95_delay"] - new_p["p95_delay"]
        err = None if abs(m_gain) < 1e-9 else round(abs(p_gain - m_gain) / abs(m_gain), 3)
        out[name] = {"changes": changes, "applied": True, "routing_version": v, "after": after, "reverted": again,
                     "violation_reduction": None if not before["violation_rate"] else
                     round(1 - after["violation_rate"] / before["violation_rate"], 3),
                     "p95_gain_ms": {"measured": round(m_gain, 3), "predicted": round(p_gain, 3),
                                     "error": err}}
    return out


def random_change(rng: random.Random, topo: Any) -> dict[str, Any]:
    lk = rng.choice(topo.links)
    kind = rng.choice(["link_failure", "capacity_change", "routing_weight"])
    if kind == "link_failure":
        return {"type": "link_failure", "targets": [lk.id]}
    if kind == "capacity_change":
        return {"type": "capacity_change", "changes": [{"link": lk.id, "capacity_mbps":
                                                        round(lk.capacity_mbps * rng.choice([0.3, 0.5, 1.5, 2.0]), 2)}]}
    weight = round(lk.delay_ms * rng.choice([0.2, 3, 10]), 2)
    return {"type": "routing_weight", "changes": [{"link": lk.id, "weight": weight}]}


def make(lab: Lab, topo: Any, change: dict[str, Any], version: int, scale: float) -> Any:
    """Make the change on the lab; returns how to undo it. `topo` and the change are in the run's
    units (the emulated rates the twin sees); the lab takes topology units (emulated / `scale`)."""
    t = change["type"]
    if t == "link_failure":
        lid = change["targets"][0]
        request("link", link=lid, up=False)
        return lambda: request("link", link=lid, up=True)
    if t == "capacity_change":
        c = change["changes"][0]
        was = topo.link(c["link"]).capacity_mbps
        request("capacity", link=c["link"], capacity_mbps=c["capacity_mbps"] / scale, tell=True)
        return lambda: request("capacity", link=c["link"], capacity_mbps=was / scale, tell=True)
    c = change["changes"][0]
    lab.client.set_weights({c["link"]: c["weight"]}, reason="bench: gate")
    return lambda: lab.client.revert(version, reason="bench: undo")


def lab_scale() -> float:
    """The running lab's capacity scale (emulated Mbit/s per topology Mbit/s), from its status'
    `info`. Reading it anywhere else once gave 1.0 on a lab at 0.01: every capacity change, and its
    undo, then shaped the link to a hundredth of the rate meant, and the undone links stayed there."""
    scale = (lab_status().get("info") or {}).get("capacity_scale")
    if not scale:
        raise SystemExit("bench: the lab's status has no capacity scale")
    return float(scale)


def gate(lab: Lab, pred: Any, n_changes: int, n: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    topo = lab.stores.topology(lab.run)  # the run's: capacities as emulated, as the twin reads them
    scale = lab_scale()
    g = Gate()
    rows = []
    before = lab.measure_from(n, settle=0)
    for i in range(n_changes):
        change = random_change(rng, topo)
        w = lab.window()
        obj, version, base = loop_objective(w, lab.sla, lab.client, {}, 1.0)
        req = WhatIfRequest.model_validate({"snapshot_id": w.snapshot_id, "scenario": change,
                                            "slo": obj.slo.model_dump(), "routing": obj.routing.model_dump()
                                            if obj.routing else None})
        try:
            answered = answer(pred.predict, lab.stores, req)
            ans = answered.response
        except Exception as exc:  # noqa: BLE001 - recorded; the change is not made
            rows.append({"change": change, "error": str(exc)})
            before = lab.measure_from(n, settle=0)
            continue
        def worse(m: dict[str, Any], before: dict[str, Any] = before) -> bool:
            return m["violation_rate"] > before["violation_rate"] * (1 + g.margin) + g.violation_slack

        undo = make(lab, topo, change, version, scale)
        try:
            after = lab.measure_from(n, settle=1)
            # a break is measured again on the next steady windows: a burst of a few windows does not last
            again = lab.measure_from(n, settle=0) if worse(after) else None
        finally:
            undo()
        returned = lab.measure_from(n, settle=1)  # the network back as it was: the next change's before
        was = answered.pre_utilization
        rising = {lid: [round(was.get(lid, 0.0), 3), round(u, 3)]
                  for lid, u in answered.utilization.items() if u > was.get(lid, 0.0) + 0.01}
        rows.append({"change": change, "snapshot_id": w.snapshot_id, "decision": ans.decision,
                     "risk": ans.risk_score, "reasons": ans.reasons,
                     "rising_utilization": rising,
                     "before": before["violation_rate"], "after": after["violation_rate"],
                     "p95_before": before["p95_delay_ms"], "p95_after": after["p95_delay_ms"],
                     "breaks_slo": worse(after), "after_again": again and again["violation_rate"],
                     "breaks_slo_confirmed": bool(again and worse(again)),
                     "undone": returned["violation_rate"],
                     "stalls_skipped": [len(before["skipped_windows"]), len(after["skipped_windows"])]})
        print(f"change {i + 1}/{n_changes}: {change['type']} {ans.decision} risk {ans.risk_score:.2f}; violation "
              f"rate {before['violation_rate']:.2f} -> {after['violation_rate']:.2f}"
              + (f", again {again['violation_rate']:.2f}" if again else "") + " (undone: "
              f"{returned['violation_rate']:.2f})", file=sys.stderr, flush=True)
        before = returned
    done = [r for r in rows if "decision" in r]
    out: dict[str, Any] = {"changes": len(rows), "answered": len(done)}
    # one measurement after the change, and the break confirmed by a second one
    for suffix, key in (("", "breaks_slo"), ("_confirmed", "breaks_slo_confirmed")):
        cm = {"approved_and_broke": sum(r["decision"] == "APPROVE" and r[key] for r in done),
              "approved_and_harmless": sum(r["decision"] == "APPROVE" and not r[key] for r in done),
              "held_and_broke": sum(r["decision"] != "APPROVE" and r[key] for r in done),
              "held_and_harmless": sum(r["decision"] != "APPROVE" and not r[key] for r in done)}
        harmless = cm["approved_and_harmless"] + cm["held_and_harmless"]
        out.update({f"confusion{suffix}": cm, f"broke_and_approved{suffix}": cm["approved_and_broke"],
                    f"harmless_approved_share{suffix}": None if not harmless else
                    round(cm["approved_and_harmless"] / harmless, 3)})
    return {**out, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topology", default="diamond")
    ap.add_argument("--flows", type=int, default=6)
    ap.add_argument("--load", type=float, default=1.4)
    ap.add_argument("--gate-load", type=float, default=0.6)
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--changes", type=int, default=30)
    ap.add_argument("--budget", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1, help="the change gate's random changes")
    ap.add_argument("--pairs-seed", type=int, default=BENCH_SEED,
                    help="the schedule's seed: which host pairs the flows run between")
    ap.add_argument("--margin", type=float, default=5.0, help="SLO: each flow's path propagation + this (ms)")
    ap.add_argument("--pair-budgets", action="store_true",
                    help="SLO: each host pair's shortest propagation + --margin, wherever it is routed")
    ap.add_argument("--gate-only", action="store_true", help="only the change gate (no plans lab)")
    ap.add_argument("--frames", action="store_true",
                    help="links at the rate that keeps the congested phase within the switches' frame budget")
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    # stopped with SIGTERM (a job killed from outside), the labs' finally blocks still take them down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (a lab)")
    if lab_status().get("status") not in ("down", None):
        raise SystemExit("bench: a lab is already up; take it down first ('ndt lab down')")
    root = Path(args.data or tempfile.mkdtemp(prefix="ndt-bench-optimize-"))
    topo = load(args.topology)
    out: dict[str, Any] = {"topology": args.topology, "switches": len(topo.nodes), "flows": args.flows,
                           "load": args.load, "gate_load": args.gate_load, "windows_measured": args.windows,
                           "margin_ms": args.margin, "pair_budgets": args.pair_budgets,
                           "pairs_seed": args.pairs_seed}
    up_s = 180 + 6 * len(topo.nodes)  # a lab of 50 switches takes 2-3 minutes to come up
    scale = frame_scale(topo, args.flows, args.load, args.pairs_seed) if args.frames else None
    out["capacity_scale"] = scale
    t0 = time.monotonic()
    if not args.gate_only:
        lab = Lab(root / "plans" / "data", args.topology, args.flows, args.load,
                  60 + 5 * (Gate().max_settle_windows + args.windows + LAG), args.margin, scale,
                  args.pair_budgets, args.pairs_seed)
        try:
            lab.wait_run(up_s)
            out["plans"] = plans(lab, predictor(lab.stores), args.windows, args.budget)
            out["plans"]["run"] = lab.run
        finally:
            lab.stop()
        print(json.dumps({"plans": out["plans"]}, default=str), file=sys.stderr, flush=True)
    if args.changes:
        n = min(args.windows, 3)
        lab = Lab(root / "gate" / "data", args.topology, args.flows, args.gate_load,
                  60 + args.changes * 2 * (4 * STEADY_SPAN + n + LAG), args.margin, scale,
                  args.pair_budgets, args.pairs_seed)
        try:
            lab.wait_run(up_s)
            out["gate"] = gate(lab, predictor(lab.stores), args.changes, n, args.seed)
            out["gate"]["run"] = lab.run
        finally:
            lab.stop()
    out["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
