"""The optimizer: searches routing configurations (link weights, pinned paths) for one stored
snapshot with the virtual twin as its evaluator, beside two baselines computed on the same
snapshot: today's routing (delay-shortest paths) and the min-max-utilization linear program.

    objective   what to minimize, the SLO, the intents, the search budget (YAML or JSON)
    evaluate    candidates routed the controller's way, predicted in batches, scored
    search      local search from the current routing
    lp          the traffic-engineering baseline (HiGHS)

`optimize` returns the three configurations' predicted metrics, the twin's changes in the
controller's terms (weights by link id, pins by host pair and link ids, what `ndt ctl routing`
and PUT /routing take), the flows they move and how fast the search evaluated candidates.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from apps.whatif.engine import Predict
from apps.whatif.network import Network, UnknownSnapshot, WhatIfError, baseline
from topologies.routing import path_links
from traffic.store import Stores

from .evaluate import Candidate, Evaluated, Evaluator
from .lp import min_max_utilization
from .objective import METRICS, Objective, OptimizeError, parse_objective, read_objective
from .search import local_search

__all__ = ["METRICS", "Objective", "OptimizeError", "network_of", "optimize", "parse_objective", "read_objective"]

#: A flow counts as moved when its path changes or its predicted delay moves by more than this share.
CHANGED = 0.05


def network_of(stores: Stores, objective: Objective) -> tuple[str, int, Network]:
    """The snapshot's network (before any model loads): UnknownSnapshot for a snapshot the store
    does not have, OptimizeError for one that cannot be optimized."""
    if objective.snapshot_id is None:
        raise OptimizeError("give the snapshot to optimize (snapshot_id)")
    try:
        run_id, window, net = baseline(stores, objective.snapshot_id)
        return run_id, window, net if objective.routing is None else objective.routing.apply(net)
    except UnknownSnapshot:
        raise
    except WhatIfError as exc:
        raise OptimizeError(f"snapshot {objective.snapshot_id}: {exc}") from None


def changes(net: Network, c: Candidate) -> dict[str, Any]:
    """A configuration in the controller's terms (hosts h<node+1>, link ids)."""
    flows: dict[tuple[int, int], int] = {}
    for d in net.demands:
        flows[(d.src, d.dst)] = flows.get((d.src, d.dst), 0) + 1
    return {"weights": c.weight_map,
            "pins": [{"src": f"h{s + 1}", "dst": f"h{t + 1}", "links": path_links(net.topo, p),
                      "flows": flows.get((s, t), 0)} for (s, t), p in sorted(c.pin_map.items())]}


def _summary(ev: Evaluated, net: Network) -> dict[str, Any]:
    return {"metrics": ev.metrics, "intents": ev.intents, "feasible": ev.feasible,
            "changes": changes(net, ev.candidate)}


def moved_flows(before: Evaluated, after: Evaluated) -> list[dict[str, Any]]:
    out = []
    a, b = before.outcome, after.outcome
    for key, pa in a.paths.items():
        pb = b.paths.get(key)
        da, db = a.predicted.get(key, (None, None))[0], b.predicted.get(key, (None, None))[0]
        moved = pa != pb
        if moved or (da is not None and db is not None and abs(db - da) > CHANGED * max(da, 1e-9)):
            out.append({"flow": key, "src": f"h{pa[0] + 1}", "dst": f"h{pa[-1] + 1}", "moved": moved,
                        "pre_links": path_links(a.net.topo, pa), "post_links": None if pb is None else
                        path_links(b.net.topo, pb), "pre_delay_ms": None if da is None else round(da, 3),
                        "post_delay_ms": None if db is None else round(db, 3)})
    return out


def optimize(predict: Predict, stores: Stores, objective: Objective,
             network: tuple[str, int, Network] | None = None) -> dict[str, Any]:
    """Search the snapshot's routing with the twin; compare with today's and the LP's."""
    t0 = time.perf_counter()
    run_id, window, net = network or network_of(stores, objective)
    ev = Evaluator(net, predict, objective)
    current = ev.baseline
    assert current is not None
    lp = min_max_utilization(net, objective.search.k_paths)
    lp_eval = ev.evaluate([lp.candidate])[0]
    spent = time.perf_counter() - t0
    # the search starts from the better of today's routing and the LP's, by the twin's own score,
    # so its plan is never worse than the LP's as the twin sees it
    start = lp_eval if lp_eval.score < current.score else current
    found = local_search(ev, start, deadline_s=max(objective.search.budget_s - spent, 0.1))
    best = found.best
    improvement = {k: round(current.metrics[k] - best.metrics[k], 4) for k in objective.minimize}
    return {
        "id": uuid.uuid4().hex[:12], "snapshot_id": objective.snapshot_id, "run": run_id, "window": window,
        "model_version": ev.model_version, "objective": objective.model_dump(exclude_none=True),
        "current": _summary(current, net),
        "lp": _summary(lp_eval, net) | {"fractional_max_utilization": round(lp.fractional_max_utilization, 4),
                                        "pairs": lp.pairs, "paths": lp.paths, "seconds": round(lp.seconds, 3)},
        "twin": _summary(best, net),
        "better_than_current": best.score < current.score,
        "improvement": improvement,
        "flows": moved_flows(current, best),
        "search": {"candidates": found.evaluated, "rounds": found.rounds, "seconds": round(found.seconds, 3),
                   "candidates_per_s": round(found.per_second, 1), "stopped": found.stopped,
                   "started_from": "lp" if start is lp_eval else "current"},
        "seconds": round(time.perf_counter() - t0, 3),
    }
