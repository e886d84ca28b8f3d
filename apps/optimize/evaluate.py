"""Candidate routing configurations (link weights and pinned paths per node pair, the controller's
two northbound knobs) and their evaluation with the virtual twin: every candidate routed the
controller's way, all of a batch predicted in one call, scored on the objective's metrics in
order, candidates that break an intent behind every one that keeps them all.

The SLO is checked on the twin's point estimates here; the plan's what-if check reads the
intervals' upper ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from apps.whatif.engine import Predict
from apps.whatif.intents import Outcome
from apps.whatif.network import Network, WhatIfError, path_loss_pct, route, utilization

from .objective import Objective


@dataclass(frozen=True)
class Candidate:
    """A routing configuration: weights override links' delay weights, pins fix a pair's path."""

    weights: tuple[tuple[str, float], ...] = ()
    pins: tuple[tuple[tuple[int, int], tuple[int, ...]], ...] = ()

    @staticmethod
    def of(weights: dict[str, float], pins: dict[tuple[int, int], list[int] | tuple[int, ...]]) -> Candidate:
        return Candidate(tuple(sorted(weights.items())), tuple(sorted((k, tuple(v)) for k, v in pins.items())))

    @property
    def weight_map(self) -> dict[str, float]:
        return dict(self.weights)

    @property
    def pin_map(self) -> dict[tuple[int, int], list[int]]:
        return {k: list(v) for k, v in self.pins}

    @property
    def changes(self) -> int:
        return len(self.weights) + len(self.pins)

    def network(self, base: Network) -> Network:
        return replace(base, weights={**base.weights, **self.weight_map}, pins={**base.pins, **self.pin_map})


@dataclass
class Evaluated:
    candidate: Candidate
    outcome: Outcome
    metrics: dict[str, float]
    intents: list[dict[str, Any]]
    score: tuple[float, ...] = field(default=())

    @property
    def feasible(self) -> bool:
        return all(i["pass"] for i in self.intents)


def metrics(outcome: Outcome, objective: Objective, changes: int) -> dict[str, float]:
    slo = objective.slo
    loss = path_loss_pct(outcome.snapshot)
    delays = np.array([d for d, _ in outcome.predicted.values()]) if outcome.predicted else np.zeros(1)
    violations = len(outcome.lost)
    for key, (d, j) in outcome.predicted.items():
        if d > slo.budget(key, outcome.propagation_ms(key)) or (slo.jitter_ms is not None and j > slo.jitter_ms) \
                or (slo.loss_pct is not None and loss.get(key, 0.0) > slo.loss_pct):
            violations += 1
    return {"slo_violations": float(violations),
            "max_utilization": round(max(outcome.utilization.values(), default=0.0), 4),
            "mean_delay": round(float(np.mean(delays)), 3),
            "p95_delay": round(float(np.percentile(delays, 95)), 3),
            "lost_flows": float(len(outcome.lost)), "changes": float(changes)}


class Evaluator:
    """Scores candidates on one snapshot's network with the serving model; counts what it did."""

    def __init__(self, base: Network, predict: Predict, objective: Objective) -> None:
        self.base, self.predict, self.objective = base, predict, objective
        self.intents = objective.intents()
        self.evaluated = 0
        self.model_version = ""
        self.baseline: Evaluated | None = None
        self.baseline = self.evaluate([Candidate()])[0]

    def evaluate(self, candidates: list[Candidate]) -> list[Evaluated]:
        routed = []
        for c in candidates:
            net = c.network(self.base)
            try:
                routed.append((c, net, *route(net)))
            except WhatIfError:
                continue  # nothing routable: not a candidate
        if not routed:
            return []
        d, j, self.model_version = self.predict([r[2] for r in routed])
        self.evaluated += len(routed)
        out, at = [], 0
        for c, net, snap, paths, lost in routed:
            n = len(snap.flows)
            predicted = {f.key: (float(d[at + i]), float(j[at + i])) for i, f in enumerate(snap.flows)}
            at += n
            outcome = Outcome(net, snap, paths, lost, predicted, utilization(snap))
            pre = self.baseline.outcome if self.baseline is not None else outcome
            outcome.affected = {k for k in paths if pre.paths.get(k) != paths[k]}
            intents = [i.check(pre, outcome) for i in self.intents]
            m = metrics(outcome, self.objective, c.changes)
            ev = Evaluated(c, outcome, m, intents)
            ev.score = (0.0 if ev.feasible else 1.0, *(m[k] for k in self.objective.minimize), float(c.changes))
            out.append(ev)
        return out
