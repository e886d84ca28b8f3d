"""What-if questions to the virtual twin.

A request names a stored snapshot (`snapshot_id`, the traffic store's snapshot row id), a
scenario, an SLO and intents. The twin applies the scenario to the snapshot's topology and
traffic, recomputes routing the way the controller does (delay-weighted shortest paths, hop
count breaking ties), predicts every flow before and after with the serving model, checks the
SLO per flow and the intents, and decides.

Scenarios (`scenario.type`): link_failure (targets: link ids), node_failure (targets: node ids
or names; the node's own traffic is lost), capacity_change (changes: {link, capacity_mbps}),
traffic_growth (changes: {factor}; targets: flow keys, or none for all flows), add_link
(changes: {a, b, capacity_mbps, delay_ms}), routing_weight (changes: {link, weight}).

Intents (`policies`): intent:reachability (every pair reachable before still is),
intent:routing-redundancy (every affected pair still has two link-disjoint paths),
intent:max-utilization[:X] (no link over X of its capacity, computed from offered rates; 0.9).

The VTwin predicts delay and jitter; loss is estimated from the computed loads with a fluid
model: a flow loses 1 - 1/u of its packets where u > 1 is the highest utilization on its path.

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
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx
import numpy as np

from topologies import Link, Topology
from topologies.routing import path_links, shortest_path
from traffic.store import Stores
from vtwin.dataset import negligible, packet_size
from vtwin.features import FlowSpec, Snapshot

SCENARIOS = ("link_failure", "node_failure", "capacity_change", "traffic_growth", "add_link", "routing_weight")
REVIEW_RISK = 0.3


class WhatIfError(ValueError):
    """A request that cannot be answered (one clear message)."""


class UnknownSnapshot(WhatIfError):
    """The request names a snapshot the traffic store does not have."""


@dataclass
class Answer:
    """A what-if answer and what its evidence pack draws: the network after the scenario."""

    result: dict[str, Any]
    topo: Topology
    failed_nodes: set[int]
    failed_links: set[str]
    changed_links: set[str]
    utilization: dict[str, float]


@dataclass(frozen=True)
class Demand:
    key: str
    src: int
    dst: int
    offered_bps: float
    pkt_size: float
    proto: str


@dataclass
class Network:
    topo: Topology
    demands: list[Demand]
    down: set[str] = field(default_factory=set)
    weights: dict[str, float] = field(default_factory=dict)
    capacity: dict[str, float] = field(default_factory=dict)
    failed_nodes: set[int] = field(default_factory=set)


def baseline(stores: Stores, snapshot_id: int) -> tuple[str, int, Network]:
    window = stores.window_by_id(snapshot_id)
    if window is None:
        raise UnknownSnapshot(f"no snapshot {snapshot_id}")
    topo = stores.topology(window.run)
    demands = [Demand(f.flow_key, int(f.src[1:]) - 1, int(f.dst[1:]) - 1, f.rate_bps, packet_size(f), f.proto or "udp")
               for f in window.flows if f.links and not negligible(f)]
    if not demands:
        raise WhatIfError(f"snapshot {snapshot_id} has no flow crossing a link")
    return window.run, window.window, Network(topo, demands)


def _link(topo: Topology, ref: Any) -> str:
    try:
        return topo.link(str(ref)).id
    except Exception:
        raise WhatIfError(f"unknown link {ref!r}") from None


def _node(topo: Topology, ref: Any) -> int:
    try:
        return topo.node(ref if isinstance(ref, int) else str(ref)).id
    except Exception:
        raise WhatIfError(f"unknown node {ref!r}") from None


def _number(change: dict[str, Any], key: str, positive: bool = True) -> float:
    try:
        value = float(change[key])
    except (KeyError, TypeError, ValueError):
        raise WhatIfError(f"change {change!r} needs a number '{key}'") from None
    if positive and not value > 0:
        raise WhatIfError(f"'{key}' must be positive, got {value}")
    return value


def apply(net: Network, scenario: dict[str, Any]) -> Network:
    """The network after the scenario (the input is not changed)."""
    kind = scenario.get("type")
    if kind not in SCENARIOS:
        raise WhatIfError(f"unknown scenario type {kind!r}; use one of {', '.join(SCENARIOS)}")
    targets, changes = scenario.get("targets") or [], scenario.get("changes") or []
    if not isinstance(targets, list) or not isinstance(changes, list):
        raise WhatIfError("scenario targets and changes must be lists")
    out = replace(net, demands=list(net.demands), down=set(net.down), weights=dict(net.weights),
                  capacity=dict(net.capacity), failed_nodes=set(net.failed_nodes))
    if kind == "link_failure":
        if not targets:
            raise WhatIfError("link_failure needs targets: the link ids that fail")
        out.down |= {_link(net.topo, t) for t in targets}
    elif kind == "node_failure":
        if not targets:
            raise WhatIfError("node_failure needs targets: the nodes that fail")
        nodes = {_node(net.topo, t) for t in targets}
        out.failed_nodes |= nodes
        out.down |= {lk.id for lk in net.topo.links if lk.a in nodes or lk.b in nodes}
    elif kind == "capacity_change":
        if not changes:
            raise WhatIfError("capacity_change needs changes: [{link, capacity_mbps}]")
        for c in changes:
            out.capacity[_link(net.topo, c.get("link"))] = _number(c, "capacity_mbps")
    elif kind == "traffic_growth":
        factor = _number(changes[0] if changes else {}, "factor")
        keys = set(targets)
        unknown = keys - {d.key for d in net.demands}
        if unknown:
            raise WhatIfError(f"unknown flow(s): {', '.join(sorted(unknown))}")
        out.demands = [replace(d, offered_bps=d.offered_bps * factor) if not keys or d.key in keys else d
                       for d in net.demands]
    elif kind == "add_link":
        if not changes:
            raise WhatIfError("add_link needs changes: [{a, b, capacity_mbps, delay_ms}]")
        links = list(net.topo.links)
        for c in changes:
            a, b = sorted((_node(net.topo, c.get("a")), _node(net.topo, c.get("b"))))
            if a == b:
                raise WhatIfError("add_link needs two different nodes")
            links.append(Link(f"L{len(links)}", a, b, _number(c, "capacity_mbps"), _number(c, "delay_ms")))
        out.topo = replace(net.topo, links=tuple(links))
    else:  # routing_weight
        if not changes:
            raise WhatIfError("routing_weight needs changes: [{link, weight}]")
        for c in changes:
            out.weights[_link(net.topo, c.get("link"))] = _number(c, "weight")
    return out


def route(net: Network) -> tuple[Snapshot, dict[str, list[int]], list[str]]:
    """Route every demand; the snapshot of the routed flows, their node paths, the lost keys."""
    flows, paths, lost = [], {}, []
    for d in net.demands:
        nodes = None
        if d.src not in net.failed_nodes and d.dst not in net.failed_nodes:
            nodes = shortest_path(net.topo, d.src, d.dst, net.down, net.weights)
        if nodes is None or len(nodes) < 2:
            lost.append(d.key)
            continue
        paths[d.key] = nodes
        flows.append(FlowSpec(d.key, tuple(path_links(net.topo, nodes)), d.src, d.offered_bps, d.pkt_size, d.proto))
    if not flows:
        raise WhatIfError("no flow is left routable in this scenario")
    return Snapshot(net.topo, flows, dict(net.capacity), frozenset(net.down)), paths, lost


def directed_utilization(snap: Snapshot) -> dict[tuple[str, int], float]:
    """Computed utilization of every used link direction (link id, from node): offered rates
    with their header overhead over the capacity."""
    from vtwin.features import HEADER_BYTES

    load: dict[tuple[str, int], float] = {}
    for f in snap.flows:
        wire = f.offered_bps * (f.pkt_size + HEADER_BYTES) / f.pkt_size
        for hop in snap.directed_hops(f):
            load[hop] = load.get(hop, 0.0) + wire
    return {hop: bps / (snap.capacity(hop[0]) * 1e6) for hop, bps in load.items()}


def utilization(snap: Snapshot) -> dict[str, float]:
    """Highest direction's computed utilization per link."""
    out: dict[str, float] = {}
    for (lid, _), u in directed_utilization(snap).items():
        out[lid] = max(out.get(lid, 0.0), u)
    return out


def path_loss_pct(snap: Snapshot) -> dict[str, float]:
    """Per flow: the fluid model's loss (%) at the most loaded link direction of its path."""
    util = directed_utilization(snap)
    out = {}
    for f in snap.flows:
        u = max((util[hop] for hop in snap.directed_hops(f)), default=0.0)
        out[f.key] = round(100.0 * max(0.0, 1.0 - 1.0 / u), 3) if u > 1.0 else 0.0
    return out


def _graph(net: Network) -> nx.MultiGraph:
    g = nx.MultiGraph()
    g.add_nodes_from(n.id for n in net.topo.nodes if n.id not in net.failed_nodes)
    g.add_edges_from((lk.a, lk.b) for lk in net.topo.links if lk.id not in net.down)
    return g


def _policy(pol: Any) -> tuple[str, float | None]:
    """An intent's name and its limit (max-utilization's X); one clear error for anything else."""
    kind, _, rest = str(pol).partition(":")
    name, _, arg = rest.partition(":")
    if kind == "intent" and name in ("reachability", "routing-redundancy") and not arg:
        return name, None
    if kind == "intent" and name == "max-utilization":
        try:
            limit = float(arg) if arg else 0.9
        except ValueError:
            limit = -1.0
        if limit > 0:
            return name, limit
    raise WhatIfError(f"unknown policy {pol!r}; use intent:reachability, intent:routing-redundancy "
                      "or intent:max-utilization[:X] with X > 0")


@dataclass
class Question:
    """A valid what-if request, its baseline network and the network after its scenario."""

    snapshot_id: int
    scenario: dict[str, Any]
    slo: dict[str, Any]
    budget: float | None
    jitter_budget: float | None
    loss_budget: float | None
    policies: list[Any]
    run_id: str
    window: int
    pre_net: Network
    post_net: Network


def question(stores: Stores, request: Any) -> Question:
    """Check a what-if request and build its networks: every error a bad request can have, before
    any model is loaded."""
    if not isinstance(request, dict):
        raise WhatIfError("the request must be a JSON object")
    try:
        snapshot_id = int(request["snapshot_id"])
    except (KeyError, TypeError, ValueError):
        raise WhatIfError("the request needs an integer 'snapshot_id' (see ndt data summary)") from None
    if not 0 <= snapshot_id < 2 ** 63:
        raise UnknownSnapshot(f"no snapshot {snapshot_id}")
    scenario = request.get("scenario")
    if not isinstance(scenario, dict):
        raise WhatIfError("the request needs a 'scenario' object with a 'type'")
    slo = request.get("slo") or {}
    budget = _number(slo, "latency_ms") if "latency_ms" in slo else None
    jitter_budget = _number(slo, "jitter_ms") if slo.get("jitter_ms") is not None else None
    loss_budget = _number(slo, "loss_pct", positive=False) if slo.get("loss_pct") is not None else None
    if loss_budget is not None and loss_budget < 0:
        raise WhatIfError(f"'loss_pct' must not be negative, got {loss_budget}")
    policies = request.get("policies") or ["intent:reachability"]
    if not isinstance(policies, list):
        raise WhatIfError("policies must be a list such as [\"intent:reachability\"]")
    for pol in policies:
        _policy(pol)
    run_id, window, pre_net = baseline(stores, snapshot_id)
    return Question(snapshot_id, scenario, slo, budget, jitter_budget, loss_budget, policies, run_id, window, pre_net,
                    apply(pre_net, scenario))


def answer(predict, stores: Stores, request: dict[str, Any], asked: Question | None = None) -> Answer:
    """Answer one what-if request; `predict(snapshots) -> (delay, jitter, version)`. `asked`: the
    request's `question`, if the caller checked it already."""
    t0 = time.perf_counter()
    q = asked or question(stores, request)
    snapshot_id, scenario, slo, policies = q.snapshot_id, q.scenario, q.slo, q.policies
    budget, jitter_budget, loss_budget = q.budget, q.jitter_budget, q.loss_budget
    run_id, window, pre_net, post_net = q.run_id, q.window, q.pre_net, q.post_net
    pre_snap, pre_paths, pre_lost = route(pre_net)
    post_snap, post_paths, post_lost = route(post_net)
    pre_d, pre_j, version = predict([pre_snap])
    post_d, post_j, _ = predict([post_snap])
    pre = {f.key: (float(pre_d[i]), float(pre_j[i])) for i, f in enumerate(pre_snap.flows)}
    post = {f.key: (float(post_d[i]), float(post_j[i])) for i, f in enumerate(post_snap.flows)}
    if budget is None:  # no SLO given: the policy default of ndt's SLA monitor would apply; here, none
        budget = float("inf")
    util_pre, util_post = utilization(pre_snap), utilization(post_snap)
    loss_pre, loss_post = path_loss_pct(pre_snap), path_loss_pct(post_snap)

    def violates(kpi: tuple[float, float] | None, loss: float | None) -> bool:
        if kpi is None:
            return True
        return kpi[0] > budget or (jitter_budget is not None and kpi[1] > jitter_budget) or (
            loss_budget is not None and (loss or 0.0) > loss_budget)

    flows = []
    for d in pre_net.demands:
        a, b = pre.get(d.key), post.get(d.key)
        changed = pre_paths.get(d.key) != post_paths.get(d.key) or (a is None) != (b is None) or (
            a is not None and b is not None and abs(b[0] - a[0]) > 0.05 * max(a[0], 1e-9))
        flows.append({"flow": d.key, "src": d.src, "dst": d.dst,
                      "pre_delay_ms": None if a is None else round(a[0], 3),
                      "post_delay_ms": None if b is None else round(b[0], 3),
                      "pre_jitter_ms": None if a is None else round(a[1], 3),
                      "post_jitter_ms": None if b is None else round(b[1], 3),
                      "pre_loss_pct": loss_pre.get(d.key), "post_loss_pct": loss_post.get(d.key),
                      "pre_violation": violates(a, loss_pre.get(d.key)),
                      "post_violation": violates(b, loss_post.get(d.key)), "affected": changed, "lost": b is None})
    intents = []
    graph = _graph(post_net)
    for pol in policies:
        name, limit = _policy(pol)
        if name == "reachability":
            cut = [f for f in flows if f["lost"] and f["flow"] not in pre_lost]
            intents.append({"policy": pol, "pass": not cut,
                            "detail": f"{len(cut)} pair(s) cut off" if cut else "every pair still reachable",
                            "cut_pairs": [[pre_net.topo.nodes[f["src"]].name, pre_net.topo.nodes[f["dst"]].name]
                                          for f in cut]})
        elif name == "routing-redundancy":
            weak = sorted({(f["src"], f["dst"]) for f in flows if f["affected"] and not f["lost"]
                           and nx.edge_connectivity(graph, f["src"], f["dst"]) < 2})
            intents.append({"policy": pol, "pass": not weak, "detail": f"{len(weak)} affected pair(s) without a "
                            "second disjoint path" if weak else "every affected pair keeps two disjoint paths",
                            "pairs": [[pre_net.topo.nodes[a].name, pre_net.topo.nodes[b].name] for a, b in weak]})
        else:  # max-utilization
            worst = max(util_post.values(), default=0.0)
            intents.append({"policy": pol, "pass": worst <= limit,
                            "detail": f"highest link utilization {worst:.2f} (limit {limit:g})"})
    affected = [f for f in flows if f["affected"]]
    sev = [1.0 if f["lost"] else 0.0 if budget == float("inf") else
           min(1.0, max(0.0, (f["post_delay_ms"] / budget - 0.8) / 0.4)) for f in flows]
    severity = float(np.mean(sev)) if sev else 0.0
    blast_flows = len(affected)
    risk = 1 - (1 - severity) * (1 - 0.5 * blast_flows / max(len(flows), 1))
    changed_links = {lid for lid in set(util_pre) | set(util_post)
                     if abs(util_post.get(lid, 0.0) - util_pre.get(lid, 0.0)) > 0.01} | post_net.down - pre_net.down
    devices = {n for f in affected for n in (pre_paths.get(f["flow"], []) + post_paths.get(f["flow"], []))}
    devices |= post_net.failed_nodes
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
    result = {
        "id": wid, "snapshot_id": snapshot_id, "run": run_id, "window": window, "model_version": version,
        "scenario": scenario, "slo": slo, "policies": policies,
        "pre_state": {"flows": len(pre), "violations": sum(f["pre_violation"] for f in flows),
                      "max_utilization": round(max(util_pre.values(), default=0.0), 3),
                      "mean_delay_ms": round(float(np.mean([v[0] for v in pre.values()])), 3)},
        "post_state": {"flows": len(post), "lost": len(post_lost),
                       "violations": sum(f["post_violation"] for f in flows),
                       "max_utilization": round(max(util_post.values(), default=0.0), 3),
                       "mean_delay_ms": round(float(np.mean([v[0] for v in post.values()])), 3)},
        "flows": flows, "intent_results": intents,
        "blast_radius": {"devices": len(devices), "links": len(changed_links), "flows": blast_flows},
        "risk_score": round(risk, 4), "decision": decision, "reasons": reasons,
        "evidence_pack_url": f"/reports/whatif/{wid}.html", "seconds": round(time.perf_counter() - t0, 4),
    }
    return Answer(result, post_net.topo, set(post_net.failed_nodes), post_net.down - pre_net.down,
                  changed_links - (post_net.down - pre_net.down), util_post)


def save_answer(root: Any, ans: Answer) -> Any:
    """The answer as JSON under <data>/reports/whatif/, with what its evidence page draws; the
    page itself is rendered from it when first asked for (drawing takes longer than answering)."""
    from pathlib import Path

    from .evidence import save_whatif

    return save_whatif(Path(root), ans.result, {
        "topology": ans.topo.to_dict(), "failed_nodes": sorted(ans.failed_nodes),
        "failed_links": sorted(ans.failed_links), "changed_links": sorted(ans.changed_links),
        "utilization": ans.utilization})


def write_evidence(root: Any, ans: Answer) -> dict[str, str]:
    """The answer's evidence pack: its JSON and its HTML page, under <data>/reports/whatif/."""
    from pathlib import Path

    from .evidence import render_whatif

    save_answer(root, ans)
    return render_whatif(Path(root), ans.result["id"])
