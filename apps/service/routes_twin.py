"""The twin's state and questions: health, status, snapshots, what-if and optimize."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from apps.optimize import Objective, optimize
from apps.whatif import WhatIfRequest, WhatIfResponse, answer, save_answer
from sync.sla import SlaStore
from sync.store import LoopStore, loop_status

from .deps import Twin, twin
from .errors import ApiError
from .models import ERRORS, OptimizeResponse, SnapshotDetail, SnapshotList, TwinStatus
from .serving import OBJECTIVE

MAX_ID = 2 ** 53 - 1  # exact in JSON Schema (a float); SQLite takes up to 2 ** 63 - 1

router = APIRouter()


@router.get("/health")
def health(t: Twin = Depends(twin)) -> dict[str, Any]:
    return {"ok": True, "active_model": t.serving.active_version()}


@router.get("/twin/status", response_model=TwinStatus)
def status(t: Twin = Depends(twin)) -> dict[str, Any]:
    from ptwin.control import lab_status

    stores = t.serving.stores()
    lab = lab_status()
    active = t.serving.active_version()
    model = {"active": f"registry://{OBJECTIVE}:{active}" if active else None,
             "serving": t.serving.predictor.version if t.serving.predictor else None,
             "deployment": t.serving.candidate_status()}
    run = LoopStore(stores).latest_run()
    loop = latest = None
    if run:
        loop = loop_status(stores, run)
        if loop is not None:
            loop.pop("pid", None)
        snap = stores.last_window(run)
        if snap:
            latest = {"run": run, "window": snap["window"], "snapshot_id": snap["id"], "flows": snap["n_flows"],
                      "phase": snap["phase_idx"], "sla": SlaStore(stores).latest(run)}
    return {"lab": {k: lab.get(k) for k in ("status", "topology", "datapath", "delay_backend", "switches",
                                             "hosts", "controller") if k in lab},
            "model": model, "loop": loop, "latest_window": latest}


@router.get("/twin/snapshots", response_model=SnapshotList, responses=ERRORS)
def snapshots(run: str | None = None, limit: int = Query(50, ge=1, le=1000),
              offset: int = Query(0, ge=0, le=10 ** 9), t: Twin = Depends(twin)) -> dict[str, Any]:
    stores = t.serving.stores()
    total = stores.window_count(run)
    if run and not total and run not in stores.run_ids():
        raise ApiError(404, f"no run {run!r}")
    return {"total": total, "snapshots": stores.snapshot_list(run, limit, offset)}


@router.get("/twin/snapshots/{snapshot_id}", response_model=SnapshotDetail, responses=ERRORS)
def snapshot(snapshot_id: int = Path(ge=0, le=MAX_ID), t: Twin = Depends(twin)) -> dict[str, Any]:
    stores = t.serving.stores()
    w = stores.window_by_id(snapshot_id)
    if w is None:
        raise ApiError(404, f"no snapshot {snapshot_id}")
    pred = {p["flow_key"]: p for p in LoopStore(stores).predictions(w.run, w.window)}
    flows = []
    for f in w.flows:
        p, m = pred.get(f.flow_key), w.labels.get(f.flow_key)
        flows.append({**f.to_dict(), "snapshot_id": w.snapshot_id,
                      "predicted": None if p is None else {k: p[k] for k in ("version", "delay_ms", "jitter_ms")},
                      "measured": None if m is None else {"delay_ms": m.delay_ms, "jitter_ms": m.jitter_ms,
                                                          "loss_pct": m.loss_pct}})
    links = [{**lk.to_dict(), "snapshot_id": w.snapshot_id} for lk in w.links]
    return {"id": w.snapshot_id, "run": w.run, "window": w.window, "t_start": w.t_start, "t_end": w.t_end,
            "phase": w.phase, "flows": len(w.flows), "links": len(w.links), "topology": w.topology,
            "routing_version": w.routing_version, "flow_rows": flows, "link_rows": links}


@router.post("/twin/whatif", response_model=WhatIfResponse, responses=ERRORS)
def whatif(body: WhatIfRequest, t: Twin = Depends(twin)) -> WhatIfResponse:
    chosen = t.serving.for_request()

    def predict(snaps: list) -> Any:
        t0 = time.perf_counter()
        out = chosen(snaps)
        t.metrics.latency.observe(time.perf_counter() - t0)
        return out

    ans = answer(predict, t.serving.stores(), body, explain=chosen.explain)
    t.metrics.whatif.labels(ans.response.decision).inc()
    save_answer(t.root, ans)  # its evidence page is drawn when first asked for
    return ans.response


#: The longest search the service runs for one request (seconds); a longer budget is a 422.
MAX_OPTIMIZE_S = 60.0


@router.post("/twin/optimize", response_model=OptimizeResponse, responses=ERRORS)
def optimize_routing(body: Objective, t: Twin = Depends(twin)) -> dict[str, Any]:
    """Search the snapshot's routing with the serving model, beside today's routing and the
    min-max-utilization LP; the answer's `twin.changes` are what PUT /routing on the controller takes."""
    if body.snapshot_id is None:
        raise ApiError(422, "snapshot_id: give the snapshot to optimize")
    if body.search.budget_s > MAX_OPTIMIZE_S:
        raise ApiError(422, f"search.budget_s: at most {MAX_OPTIMIZE_S:g} s here (ndt optimize has no cap)")
    chosen = t.serving.for_request()
    return optimize(chosen, t.serving.stores(), body)
