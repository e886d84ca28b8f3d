"""Answering a what-if request: the snapshot's network before and after the scenario, routed the
controller's way, predicted flow by flow by the serving model, checked against the SLO and the
intents, and decided.

Risk score, in [0, 1] and monotone in both terms:
    severity s = mean over flows of clip((delay / latency budget - 0.8) / 0.4, 0, 1)
                 (0 at 80 % of the budget or less, 1 at 120 % or more; a lost flow counts 1)
    blast    b = affected flows / all flows
    risk       = 1 - (1 - s) * (1 - b / 2)
Decision: REJECT when reachability or another intent fails or a flow compliant before violates
the SLO after; else REVIEW when risk >= 0.3; else APPROVE.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
#: A flow is affected when its path changes or its predicted delay moves by more than this share.
AFFECTED_CHANGE = 0.05

#: predict(snapshots) -> (delay, jitter, model version): the serving model's predictions.
Predict = Callable[[list[Snapshot]], tuple[np.ndarray, np.ndarray, str]]


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

    @property
    def result(self) -> dict[str, Any]:
        return self.response.model_dump(by_alias=True)


def question(stores: Stores, request: WhatIfRequest) -> Question:
    """The request's networks: every error a valid request can still have (an unknown snapshot,
    link, node or flow), before any model is loaded."""
    run_id, window, pre_net = baseline(stores, request.snapshot_id)
    return Question(request, run_id, window, pre_net, request.scenario.apply(pre_net))


def _outcome(net: Network, predict: Predict) -> tuple[Outcome, str]:
    snap, paths, lost = route(net)
    d, j, version = predict([snap])
    predicted = {f.key: (float(d[i]), float(j[i])) for i, f in enumerate(snap.flows)}
    return Outcome(net, snap, paths, lost, predicted, utilization(snap)), version


def answer(predict: Predict, stores: Stores, request: WhatIfRequest, asked: Question | None = None) -> Answer:
    """Answer one what-if request; `asked`: the request's `question`, if the caller built it already."""
    t0 = time.perf_counter()
    q = asked or question(stores, request)
    slo = request.slo
    budget = slo.latency_ms if slo.latency_ms is not None else float("inf")  # no SLO given: none applies
    pre, version = _outcome(q.pre_net, predict)
    post, _ = _outcome(q.post_net, predict)
    loss_pre, loss_post = path_loss_pct(pre.snapshot), path_loss_pct(post.snapshot)

    def violates(kpi: tuple[float, float] | None, loss: float | None) -> bool:
        if kpi is None:
            return True
        return kpi[0] > budget or (slo.jitter_ms is not None and kpi[1] > slo.jitter_ms) or (
            slo.loss_pct is not None and (loss or 0.0) > slo.loss_pct)

    flows = []
    for d in q.pre_net.demands:
        a, b = pre.predicted.get(d.key), post.predicted.get(d.key)
        changed = pre.paths.get(d.key) != post.paths.get(d.key) or (a is None) != (b is None) or (
            a is not None and b is not None and abs(b[0] - a[0]) > AFFECTED_CHANGE * max(a[0], 1e-9))
        if changed:
            post.affected.add(d.key)
        flows.append({"flow": d.key, "src": d.src, "dst": d.dst,
                      "pre_delay_ms": None if a is None else round(a[0], 3),
                      "post_delay_ms": None if b is None else round(b[0], 3),
                      "pre_jitter_ms": None if a is None else round(a[1], 3),
                      "post_jitter_ms": None if b is None else round(b[1], 3),
                      "pre_loss_pct": loss_pre.get(d.key), "post_loss_pct": loss_post.get(d.key),
                      "pre_violation": violates(a, loss_pre.get(d.key)),
                      "post_violation": violates(b, loss_post.get(d.key)), "affected": changed, "lost": b is None})
    intents = [intent.check(pre, post) for intent in request.intents()]
    affected = [f for f in flows if f["affected"]]
    sev = [1.0 if f["lost"] else 0.0 if budget == float("inf") else
           min(1.0, max(0.0, (f["post_delay_ms"] / budget - 0.8) / 0.4)) for f in flows]
    severity = float(np.mean(sev)) if sev else 0.0
    risk = 1 - (1 - severity) * (1 - 0.5 * len(affected) / max(len(flows), 1))
    down = post.net.down - pre.net.down
    changed_links = {lid for lid in set(pre.utilization) | set(post.utilization)
                     if abs(post.utilization.get(lid, 0.0) - pre.utilization.get(lid, 0.0)) > 0.01} | down
    devices = {n for f in affected for n in (pre.paths.get(f["flow"], []) + post.paths.get(f["flow"], []))}
    devices |= post.net.failed_nodes
    new_violations = [f["flow"] for f in flows if f["post_violation"] and not f["pre_violation"]]
    reasons = [f"intent failed: {i['policy']} ({i['detail']})" for i in intents if not i["pass"]]
    if new_violations:
        reasons.append(f"{len(new_violations)} flow(s) compliant now would violate the SLO")
    if reasons:
        decision = "REJECT"
    elif risk >= REVIEW_RISK:
        decision = "REVIEW"
        reasons.append(f"risk {risk:.2f} is at least {REVIEW_RISK}")
    else:
        decision = "APPROVE"
        reasons.append("all intents hold and no flow newly violates the SLO")
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
        blast_radius={"devices": len(devices), "links": len(changed_links), "flows": len(affected)},
        risk_score=round(risk, 4), decision=decision, reasons=reasons,
        evidence_pack_url=f"/reports/whatif/{wid}.html", seconds=round(time.perf_counter() - t0, 4))
    return Answer(response, post.net.topo, set(post.net.failed_nodes), down, changed_links - down, post.utilization)


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
