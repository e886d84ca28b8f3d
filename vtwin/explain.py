"""Why the twin predicts what it predicts: each flow's delay broken down along its path.

The model reads its delay out hop by hop (`vtwin.model.RouteNet.hops`), so a prediction is
exactly a sum: each link's propagation delay plus the queueing delay the model attributes to the
flow on that link. `explain` returns those parts per flow (they sum to the prediction, up to
float32 rounding), names the link with the most queueing (the bottleneck) and, on it, the flows
that weigh most on its state: the model's attention in its last iteration, a softmax over the
flows crossing the link. `sentence` says it in one line, as the what-if and the console show it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .features import LINK_COLUMNS, Snapshot, graph_tensors
from .model import to_tensors
from .twin import Twin

#: How many of the flows weighing most on a bottleneck an explanation names.
TOP_FLOWS = 3
_UTIL, _NFLOWS = LINK_COLUMNS.index("utilization"), LINK_COLUMNS.index("n_flows")


def explain(twin: Twin, snap: Snapshot, keys: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Flow key -> its breakdown, for `keys` (default: every flow of the snapshot):
    delay_ms, jitter_ms, propagation_ms, queueing_ms, hops (link, from node, propagation_ms,
    queueing_ms, jitter_ms, utilization, flows crossing it, the flow's attention share there)
    and bottleneck (the hop with the most queueing, its share of the delay and the flows weighing
    most on it)."""
    if twin.norm is None:
        raise ValueError("this twin has no normalization: train it or load a version first")
    raw = graph_tensors([snap])
    terms = {k: v.numpy() for k, v in twin.model.hops(to_tensors(twin.norm.apply(raw)), training=False).items()}
    path, mask = raw["path"], raw["mask"]
    wanted = set(keys) if keys is not None else None
    on_link: dict[int, list[tuple[float, str]]] = {}
    for i, f in enumerate(snap.flows):
        for p in np.flatnonzero(mask[i]):
            on_link.setdefault(int(path[i, p]), []).append((float(terms["attention"][i, p]), f.key))
    out = {}
    for i, f in enumerate(snap.flows):
        if wanted is not None and f.key not in wanted:
            continue
        hops = []
        for p, (link, node) in enumerate(snap.directed_hops(f)):
            d = int(path[i, p])
            hops.append({"link": link, "from": node, "propagation_ms": _r(terms["propagation_ms"][i, p]),
                         "queueing_ms": _r(terms["queueing_ms"][i, p]), "jitter_ms": _r(terms["jitter_ms"][i, p]),
                         "utilization": round(float(raw["link_x"][d, _UTIL]), 3),
                         "flows": int(raw["link_x"][d, _NFLOWS]), "attention": _r(terms["attention"][i, p], 4)})
        prop = float(terms["propagation_ms"][i].sum())
        queue = float(terms["queueing_ms"][i].sum())
        top = int(np.argmax(terms["queueing_ms"][i][: len(hops)]))
        weighing = sorted(on_link[int(path[i, top])], reverse=True)[:TOP_FLOWS]
        out[f.key] = {
            "flow": f.key, "delay_ms": _r(prop + queue), "jitter_ms": _r(terms["jitter_ms"][i].sum()),
            "propagation_ms": _r(prop), "queueing_ms": _r(queue), "hops": hops,
            "bottleneck": {**{k: hops[top][k] for k in ("link", "from", "queueing_ms", "utilization", "flows")},
                           "share": round(hops[top]["queueing_ms"] / max(prop + queue, 1e-9), 3),
                           "weighing_most": [{"flow": k, "attention": _r(a, 4)} for a, k in weighing]}}
    return out


def sentence(e: dict[str, Any], name: str | None = None, budget_ms: float | None = None) -> str:
    """One line: 'flow h3->h9 breaks its 40 ms budget: 31.0 ms of its 45.2 ms queueing on L7, shared
    with 5 flows' (without a budget: 'flow ... is predicted 45.2 ms: ...')."""
    b = e["bottleneck"]
    who = f"flow {name or e['flow']}"
    if budget_ms is None:
        head = f"{who} is predicted {e['delay_ms']:.1f} ms"
    elif e["delay_ms"] > budget_ms:
        head = f"{who} breaks its {budget_ms:g} ms budget ({e['delay_ms']:.1f} ms)"
    else:
        head = f"{who} keeps its {budget_ms:g} ms budget ({e['delay_ms']:.1f} ms)"
    others = b["flows"] - 1
    shared = f", shared with {others} other flow{'s' if others != 1 else ''}" if others > 0 else ", its own"
    return (f"{head}: {b['queueing_ms']:.1f} ms of it queueing on {b['link']} (utilization {b['utilization']:.2f}"
            f"{shared}), {e['propagation_ms']:.1f} ms propagation")


def _r(x: Any, digits: int = 3) -> float:
    return round(float(x), digits)
