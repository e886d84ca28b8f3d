"""Answering a what-if request: the snapshot's network before and after the scenario, routed the
controller's way, predicted flow by flow by the serving model, checked against the SLO and the
intents, and decided.

Risk score, in [0, 1] and monotone in both terms:
    severity s = mean over flows of clip((after - max(before, 0.8)) / 0.4, 0, 1), with before and
                 after a flow's delay over its latency budget: what the scenario adds (0 when the
                 flow stays at 80 % of its budget or at its level before, 1 when it rises by 40 %
                 of its budget above that; a flow the scenario leaves without a path counts 1)
    harm     h = harmed flows / all flows: a flow the scenario leaves without a path, or whose delay
                 over its budget rises by more than 5 % (a flow moved onto a longer path whose budget
                 follows it, or one the change relieves, is affected but not harmed)
    risk       = 1 - (1 - s) * (1 - h / 2)
Decision: REJECT when reachability or another intent fails or a flow compliant before violates
the SLO after; else REVIEW when risk >= 0.3 or a link under its capacity before is at or past it
after (`OVERLOAD_UTILIZATION`); else APPROVE. A flow newly violates when it does on
the decided delays (below) or on the point estimates: where the intervals are wide, a flow's upper
end may cross its budget before the scenario as well as after, and one that jumps from well inside
its budget to ten times it must still count (germany_50, the change gate: 90 % intervals put 26 of
40 healthy flows over propagation + 15 ms, so a capacity cut that took one from 14 to 114 ms
predicted, and measured p95 from 15 to 313 ms, was approved at risk 0.15).

Uncertainty: when the answering model is calibrated on the snapshot's run (`uncertainty`), every
predicted delay and jitter has an interval at the request's `interval_level` (0.9 by default),
and the SLO, the severity and so the decision use the interval's upper end ("decided_on" says
so); without a calibration they use the point estimates and the reasons say why. Explanations:
the flows that decide the answer (those that would newly violate the SLO, else the worst after the
scenario) are broken down along their paths (`vtwin.explain`) when the caller can explain.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from topologies import Topology
from traffic.store import Stores
from vtwin.features import Snapshot

from .intents import Outcome
from .network import Network, baseline, path_loss_pct, route, utilization
from .request import WhatIfRequest, WhatIfResponse

REVIEW_RISK = 0.3
#: A scenario that loads a link the fluid model had under its capacity to at least this many times
#: it is held for review, whatever the predictions: the queue of a link just past its capacity
#: depends on how its flows react (UDP fills the buffer, TCP backs off), which the twin predicts
#: least well. germany_50, the change gate: a cut of L64 to 0.46 Mbit/s (computed 1.07 times
#: its capacity, under the twin's 1.1 UDP full-buffer floor) was approved at risk 0.001 and
#: measured p95 13 -> 308 ms; no harmless change of the run took a link past 0.8.
OVERLOAD_UTILIZATION = 1.0
#: A flow is affected when its path changes or its predicted delay moves by more than this share.
AFFECTED_CHANGE = 0.05

#: predict(snapshots) -> (delay, jitter, model version): the serving model's predictions.
Predict = Callable[[list[Snapshot]], tuple[np.ndarray, np.ndarray, str]]
#: explain(snapshot, flow keys) -> (flow key -> breakdown, model version) (`vtwin.explain.explain`).
Explain = Callable[[Snapshot, list[str]], tuple[dict[str, dict[str, Any]], str]]
#: How many deciding flows an answer explains.
EXPLAINED_FLOWS = 3


@dataclass
class Question:
    """A valid what-if request with its baseline network and the network after its scenario."""

    request: WhatIfRequest
    run_id: str
    window: int
    pre_net: Network
    post_net: Network


@dataclass
class Answer:
    """A what-if answer and what its evidence pack draws: the network after the scenario."""

    response: WhatIfResponse
    topo: Topology
    failed_nodes: set[int]
    failed_links: set[str]
    changed_links: set[str]
    utilization: dict[str, float]
    budgets: dict[str, float] = field(default_factory=dict)  # flow key -> latency budget after (ms)
    pre_utilization: dict[str, float] = field(default_factory=dict)  # link -> computed utilization before

    def post_budget(self, key: str) -> float:
        return self.budgets.get(key, float("inf"))

    @property
    def result(self) -> dict[str, Any]:
        return self.response.model_dump(by_alias=True)


def question(stores: Stores, request: WhatIfRequest) -> Question:
    """The request's networks: every error a valid request can still have (an unknown snapshot,
    link, node or flow), before any model is loaded."""
    run_id, window, pre_net = baseline(stores, request.snapshot_id)
    if request.routing is not None:
        pre_net = request.routing.apply(pre_net)
    return Question(request, run_id, window, pre_net, request.scenario.apply(pre_net))


def _outcome(net: Network, predict: Predict) -> tuple[Outcome, str]:
    snap, paths, lost = route(net)
    d, j, version = predict([snap])
    predicted = {f.key: (float(d[i]), float(j[i])) for i, f in enumerate(snap.flows)}
    return Outcome(net, snap, paths, lost, predicted, utilization(snap)), version


Bounds = dict[str, tuple[float, float, float, float]]  # flow key -> delay low, high, jitter low, high


def _bounds(cal: Any, outcome: Outcome, level: float) -> Bounds:
    from vtwin.features import graph_tensors
    from vtwin.intervals import categories

    keys = [f.key for f in outcome.snapshot.flows]
    cats = categories(graph_tensors([outcome.snapshot]))
    d = np.array([outcome.predicted[k][0] for k in keys])
    j = np.array([outcome.predicted[k][1] for k in keys])
    dl, dh = cal.interval(d, cats, level, "delay")
    jl, jh = cal.interval(j, cats, level, "jitter")
    return {k: (float(dl[i]), float(dh[i]), float(jl[i]), float(jh[i])) for i, k in enumerate(keys)}


def _intervals(predict: Predict, version: str, stores: Stores, q: Question, pre: Outcome,
               post: Outcome) -> tuple[Bounds | None, Bounds | None, str | None, str]:
    """Both outcomes' intervals, the calibration's source, and what the decision rests on."""
    from vtwin.errors import IntervalError

    from .uncertainty import calibration

    level = q.request.interval_level
    try:
        cal = calibration(predict, version, stores, q.run_id, q.window)
        return _bounds(cal, pre, level), _bounds(cal, post, level), cal.source, \
            f"the upper end of each flow's {100 * level:g} % interval"
    except IntervalError as exc:
        return None, None, None, f"point estimates: {exc}"


def _interval(bounds: Bounds | None, key: str, delay: bool = True) -> list[float] | None:
    if bounds is None or key not in bounds:
        return None
    b = bounds[key]
    return [round(b[0], 3), round(b[1], 3)] if delay else [round(b[2], 3), round(b[3], 3)]


def answer(predict: Predict, stores: Stores, request: WhatIfRequest, asked: Question | None = None,
           explain: Explain | None = None) -> Answer:
    """Answer one what-if request; `asked`: the request's `question`, if the caller built it
    already; `explain`: break the deciding flows' predictions down (else they are not)."""
    t0 = time.perf_counter()
    q = asked or question(stores, request)
    slo = request.slo
    pre, version = _outcome(q.pre_net, predict)
    post, _ = _outcome(q.post_net, predict)
    loss_pre, loss_post = path_loss_pct(pre.snapshot), path_loss_pct(post.snapshot)
    pre_b, post_b, cal_source, decided_on = _intervals(predict, version, stores, q, pre, post)

    def upper(kpi: tuple[float, float] | None, bounds: Bounds | None, key: str) -> tuple[float, float] | None:
        if kpi is None or bounds is None or key not in bounds:
            return kpi
        return bounds[key][1], bounds[key][3]

    def violates(key: str, kpi: tuple[float, float] | None, loss: float | None, o: Outcome) -> bool:
        if kpi is None:
            return True
        return kpi[0] > slo.budget(key, o.propagation_ms(key)) or (
            slo.jitter_ms is not None and kpi[1] > slo.jitter_ms) or (
            slo.loss_pct is not None and (loss or 0.0) > slo.loss_pct)

    flows = []
    new_violations: list[str] = []  # compliant before, violating after: on the decided delays or the point estimates
    decide: dict[str, float] = {}  # flow -> the delay the decision reads
    decide_pre: dict[str, float] = {}  # ... and before the scenario
    for d in q.pre_net.demands:
        a, b = pre.predicted.get(d.key), post.predicted.get(d.key)
        ua, ub = upper(a, pre_b, d.key), upper(b, post_b, d.key)
        if ub is not None:
            decide[d.key] = ub[0]
        if ua is not None:
            decide_pre[d.key] = ua[0]
        changed = pre.paths.get(d.key) != post.paths.get(d.key) or (a is None) != (b is None) or (
            a is not None and b is not None and abs(b[0] - a[0]) > AFFECTED_CHANGE * max(a[0], 1e-9))
        if changed:
            post.affected.add(d.key)
        pre_v, post_v = violates(d.key, ua, loss_pre.get(d.key), pre), violates(d.key, ub, loss_post.get(d.key), post)
        if (post_v and not pre_v) or (
                violates(d.key, b, loss_post.get(d.key), post) and not violates(d.key, a, loss_pre.get(d.key), pre)):
            new_violations.append(d.key)
        flows.append({"flow": d.key, "src": d.src, "dst": d.dst,
                      "pre_delay_ms": None if a is None else round(a[0], 3),
                      "post_delay_ms": None if b is None else round(b[0], 3),
                      "pre_jitter_ms": None if a is None else round(a[1], 3),
                      "post_jitter_ms": None if b is None else round(b[1], 3),
                      "pre_loss_pct": loss_pre.get(d.key), "post_loss_pct": loss_post.get(d.key),
                      "pre_delay_interval_ms": _interval(pre_b, d.key),
                      "post_delay_interval_ms": _interval(post_b, d.key),
                      "post_jitter_interval_ms": _interval(post_b, d.key, delay=False),
                      "pre_violation": pre_v, "post_violation": post_v, "affected": changed,
                      "lost": b is None})
    intents = [intent.check(pre, post) for intent in request.intents()]
    affected = [f for f in flows if f["affected"]]
    budgets = {f["flow"]: slo.budget(f["flow"], post.propagation_ms(f["flow"])) for f in flows}

    # each flow's decided delay over its budget, after the scenario and before it (budgets follow the path)
    after = {k: v / budgets[k] for k, v in decide.items()}
    before = {k: v / slo.budget(k, pre.propagation_ms(k)) for k, v in decide_pre.items()}

    def severity(key: str, lost: bool) -> float:
        if lost:
            return 0.0 if key in pre.lost else 1.0
        return min(1.0, max(0.0, (after[key] - max(before.get(key, 0.0), 0.8)) / 0.4))

    def harms(key: str, lost: bool) -> bool:
        if lost or key not in after:
            return lost and key not in pre.lost
        if budgets[key] == float("inf"):
            return False
        return key not in before or after[key] > (1 + AFFECTED_CHANGE) * before[key]

    sev = [0.0 if budgets[f["flow"]] == float("inf") and not f["lost"] else severity(f["flow"], f["lost"])
           for f in flows]
    severity = float(np.mean(sev)) if sev else 0.0
    harmed = [f for f in affected if harms(f["flow"], f["lost"])]
    risk = 1 - (1 - severity) * (1 - 0.5 * len(harmed) / max(len(flows), 1))
    down = post.net.down - pre.net.down
    changed_links = {lid for lid in set(pre.utilization) | set(post.utilization)
                     if abs(post.utilization.get(lid, 0.0) - pre.utilization.get(lid, 0.0)) > 0.01} | down
    devices = {n for f in affected for n in (pre.paths.get(f["flow"], []) + post.paths.get(f["flow"], []))}
    devices |= post.net.failed_nodes
    reasons = [f"intent failed: {i['policy']} ({i['detail']})" for i in intents if not i["pass"]]
    if new_violations:
        reasons.append(f"{len(new_violations)} flow(s) compliant now would violate the SLO")
    overloaded = sorted((lid, u) for lid, u in post.utilization.items()
                        if u >= OVERLOAD_UTILIZATION > pre.utilization.get(lid, 0.0))
    if reasons:
        decision = "REJECT"
    elif risk >= REVIEW_RISK or overloaded:
        decision = "REVIEW"
        if risk >= REVIEW_RISK:
            reasons.append(f"risk {risk:.2f} is at least {REVIEW_RISK}")
        reasons += [f"link {lid} would carry {u:.2f} times its capacity (under it now): its queue depends on "
                    f"how its flows react, which the twin predicts least well" for lid, u in overloaded]
    else:
        decision = "APPROVE"
        reasons.append("all intents hold and no flow newly violates the SLO")
    reasons.append(f"decided on {decided_on}" + (f" (calibrated on {cal_source})" if cal_source else ""))
    explanations = _explain(explain, post, flows, new_violations, decide, budgets)
    wid = uuid.uuid4().hex[:12]
    response = WhatIfResponse(
        id=wid, snapshot_id=request.snapshot_id, run=q.run_id, window=q.window, model_version=version,
        scenario=request.scenario.model_dump(), slo=slo.model_dump(exclude_none=True), policies=request.policies,
        pre_state={"flows": len(pre.predicted), "violations": sum(f["pre_violation"] for f in flows),
                   "max_utilization": round(max(pre.utilization.values(), default=0.0), 3),
                   "mean_delay_ms": round(float(np.mean([v[0] for v in pre.predicted.values()])), 3)},
        post_state={"flows": len(post.predicted), "lost": len(post.lost),
                    "violations": sum(f["post_violation"] for f in flows),
                    "max_utilization": round(max(post.utilization.values(), default=0.0), 3),
                    "mean_delay_ms": round(float(np.mean([v[0] for v in post.predicted.values()])), 3)},
        flows=flows, intent_results=intents,
        blast_radius={"devices": len(devices), "links": len(changed_links), "flows": len(affected),
                      "harmed_flows": len(harmed)},
        risk_score=round(risk, 4), decision=decision, reasons=reasons,
        interval_level=request.interval_level if post_b is not None else None, decided_on=decided_on,
        explanations=explanations,
        evidence_pack_url=f"/reports/whatif/{wid}.html", seconds=round(time.perf_counter() - t0, 4))
    return Answer(response, post.net.topo, set(post.net.failed_nodes), down, changed_links - down, post.utilization,
                  budgets, pre.utilization)


def _explain(explain: Explain | None, post: Outcome, flows: list[dict[str, Any]], new_violations: list[str],
             decide: dict[str, float], budgets: dict[str, float]) -> list[dict[str, Any]]:
    """The breakdown of the flows that decide the answer: those that would newly violate the SLO,
    else the worst after the scenario (by the delay the decision read), at most EXPLAINED_FLOWS."""
    if explain is None:
        return []
    from vtwin.explain import sentence

    chosen = [k for k in new_violations if k in post.predicted] or sorted(decide, key=lambda k: -decide[k])
    chosen = chosen[:EXPLAINED_FLOWS]
    if not chosen:
        return []
    names = {f["flow"]: f"h{f['src'] + 1}->h{f['dst'] + 1}" for f in flows}
    parts, _ = explain(post.snapshot, chosen)
    out = []
    for k in chosen:
        e = parts[k]
        budget = budgets.get(k, float("inf"))
        line = sentence(e, names.get(k), None if budget == float("inf") else budget)
        out.append({**e, "name": names.get(k), "summary": line})
    return out


def save_answer(root: Path, ans: Answer) -> Path:
    """The answer as JSON under <data>/reports/whatif/, with what its evidence page draws; the
    page itself is rendered from it when first asked for (drawing takes longer than answering)."""
    from .evidence import save_whatif

    return save_whatif(Path(root), ans.result, {
        "topology": ans.topo.to_dict(), "failed_nodes": sorted(ans.failed_nodes),
        "failed_links": sorted(ans.failed_links), "changed_links": sorted(ans.changed_links),
        "utilization": ans.utilization})


def write_evidence(root: Path, ans: Answer) -> dict[str, str]:
    """The answer's evidence pack: its JSON and its HTML page, under <data>/reports/whatif/."""
    from .evidence import render_whatif

    save_answer(root, ans)
    return render_whatif(Path(root), ans.response.id)
