"""`ndt serve`: the twin's HTTP API (FastAPI), on 127.0.0.1:8000 by default.

Read endpoints are open; the model-operations endpoints that change what serves (POST /ml/*)
need `Authorization: Bearer <token>`, the token from the config file or $NDT_TOKEN (without
either, `ndt serve` makes one and writes it to <data>/service.token, mode 0600). Every error is
a JSON body {"error": "..."} with a 4xx status: 401 without a token, 403 with a wrong one, 404
for unknown ids, 409 when the state forbids it (a deployment or training under way, no active
model), 422 for malformed requests.

    GET  /twin/status                 lab, serving model and deployment, loop, detector, retraining, latest window
    GET  /twin/snapshots[?run=&limit=&offset=]   time-indexed network states from the traffic store
    GET  /twin/snapshots/{id}         one state: flows (with predictions and labels) and links
    POST /twin/whatif                 what-if question (see apps/whatif.py); its evidence page is drawn when asked for
    GET  /reports/whatif/{id}.html|json, /reports/deployments/{id}.html|json   evidence packs
    POST /ml/train | /ml/deploy | /ml/monitor | /ml/rollback     model operations (token)
    GET  /ml/models | /ml/deployments | /ml/deployments/{id} | /ml/decisions
    GET  /metrics                     Prometheus text format
"""

from __future__ import annotations

import pathlib
import re
import secrets
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from sync.sla import SlaStore
from sync.store import LoopStore, loop_status
from vtwin.registry import RegistryError

from .config import Config
from .evidence import render_whatif
from .metrics import CONTENT_TYPE, Metrics
from .modelops import Conflict, ModelOps, NotFound, OpsError, TrainRequest
from .service_models import (
    DeployBody,
    ErrorBody,
    MonitorBody,
    RollbackBody,
    SnapshotDetail,
    SnapshotList,
    TrainBody,
    TwinStatus,
    WhatIfRequest,
    WhatIfResponse,
)
from .serving import OBJECTIVE, ServingTwin
from .whatif import Answer, UnknownSnapshot, WhatIfError, answer, save_answer

ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)}
MAX_ID = 2 ** 53 - 1  # exact in JSON Schema (a float); SQLite takes up to 2 ** 63 - 1
PACK_NAME = {"whatif": re.compile(r"^[0-9a-f]{12}\.(html|json)$"),
             "deployments": re.compile(r"^dep-[0-9a-f]{10}\.(html|json)$")}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _one_line(exc: RequestValidationError) -> str:
    errs = exc.errors()
    if not errs:
        return "malformed request"
    e = errs[0]
    if e.get("type") == "json_invalid":
        return f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'decode error')})"
    where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    return f"{where}: {e.get('msg', 'invalid')}{more}"


class Twin:
    """What the service holds: the serving twin, model operations, metrics."""

    def __init__(self, root: pathlib.Path, config: Config) -> None:
        self.root = root
        self.config = config
        self.serving = ServingTwin(root)
        self.ops = ModelOps(self.serving)
        self.metrics = Metrics(self.serving)

    def warm(self) -> None:
        try:
            self.serving.active_predictor()
        except RegistryError:
            pass  # no model yet: what-if answers 409 until one is trained


def create_app(root: pathlib.Path, config: Config) -> FastAPI:
    twin = Twin(root, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=twin.warm, name="warm", daemon=True).start()
        yield

    app = FastAPI(title="ndt twin service", version="0.1.0", lifespan=lifespan, description=__doc__,
                  responses={400: {"model": ErrorBody}, 422: {"model": ErrorBody}})
    app.state.twin = twin
    bearer = HTTPBearer(auto_error=False, description="the service token (config file or $NDT_TOKEN)")

    def require_token(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if creds is None or creds.scheme.lower() != "bearer":
            raise ApiError(401, "this endpoint needs 'Authorization: Bearer <token>'")
        if not config.token or not secrets.compare_digest(creds.credentials.encode(), config.token.encode()):
            raise ApiError(403, "wrong token")

    # -- errors: always {"error": ...}, never a traceback -----------------------------------------
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _one_line(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    def mapped(exc: Exception) -> ApiError:
        if isinstance(exc, (UnknownSnapshot, NotFound)):
            return ApiError(404, str(exc))
        if isinstance(exc, Conflict):
            return ApiError(409, str(exc))
        if isinstance(exc, (WhatIfError, OpsError)):
            return ApiError(422, str(exc))
        if isinstance(exc, RegistryError):
            return ApiError(404 if str(exc).startswith("no model ") else 409, str(exc))
        raise exc

    def guarded(fn, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (WhatIfError, OpsError, RegistryError) as exc:
            raise mapped(exc) from None

    # -- twin --------------------------------------------------------------------------------------
    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "active_model": twin.serving.active_version()}

    @app.get("/twin/status", response_model=TwinStatus)
    def status() -> dict[str, Any]:
        from ptwin.control import lab_status

        stores = twin.serving.stores()
        lab = lab_status()
        active = twin.serving.active_version()
        model = {"active": f"registry://{OBJECTIVE}:{active}" if active else None,
                 "serving": twin.serving.predictor.version if twin.serving.predictor else None,
                 "deployment": twin.serving.candidate_status()}
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

    @app.get("/twin/snapshots", response_model=SnapshotList, responses=ERRORS)
    def snapshots(run: str | None = None, limit: int = Query(50, ge=1, le=1000),
                  offset: int = Query(0, ge=0, le=10 ** 9)) -> dict[str, Any]:
        stores = twin.serving.stores()
        total = stores.window_count(run)
        if run and not total and run not in stores.run_ids():
            raise ApiError(404, f"no run {run!r}")
        return {"total": total, "snapshots": stores.snapshot_list(run, limit, offset)}

    @app.get("/twin/snapshots/{snapshot_id}", response_model=SnapshotDetail, responses=ERRORS)
    def snapshot(snapshot_id: int = Path(ge=0, le=MAX_ID)) -> dict[str, Any]:
        stores = twin.serving.stores()
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

    @app.post("/twin/whatif", response_model=WhatIfResponse, responses=ERRORS)
    def whatif(body: WhatIfRequest) -> dict[str, Any]:
        request = body.model_dump()
        request["slo"] = {k: v for k, v in request["slo"].items() if v is not None}

        chosen = guarded(twin.serving.for_request)

        def predict(snaps: list) -> Any:
            t0 = time.perf_counter()
            out = chosen(snaps)
            twin.metrics.latency.observe(time.perf_counter() - t0)
            return out

        ans: Answer = guarded(answer, predict, twin.serving.stores(), request)
        twin.metrics.whatif.labels(ans.result["decision"]).inc()
        save_answer(root, ans)  # its evidence page is drawn when first asked for
        return ans.result

    @app.get("/reports/{kind}/{name}", responses=ERRORS, response_class=FileResponse)
    def report(kind: str, name: str) -> FileResponse:
        pattern = PACK_NAME.get(kind)
        if pattern is None or not pattern.match(name):
            raise ApiError(404, f"no report {kind}/{name}")
        ident = name.rsplit(".", 1)[0]
        path = root / "reports" / kind / name
        if kind == "whatif" and name.endswith(".html") and not path.is_file() and path.with_suffix(".json").is_file():
            render_whatif(root, ident)
        if not path.is_file():
            raise ApiError(404, f"no report {kind}/{name}")
        return FileResponse(path, media_type="text/html" if name.endswith(".html") else "application/json")

    # -- model operations --------------------------------------------------------------------------
    @app.get("/ml/models")
    def models() -> list[dict[str, Any]]:
        return twin.serving.registry().list(OBJECTIVE)

    @app.get("/ml/deployments")
    def deployments() -> list[dict[str, Any]]:
        return twin.ops.deployments()

    @app.get("/ml/deployments/{deployment_id}", responses=ERRORS)
    def deployment(deployment_id: str) -> dict[str, Any]:
        return {**guarded(twin.ops.deployment, deployment_id), "decisions": twin.ops.decisions(deployment_id)}

    @app.get("/ml/decisions")
    def decisions(limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
        return twin.ops.decisions(limit=limit)

    @app.post("/ml/train", dependencies=[Depends(require_token)], responses=ERRORS)
    def ml_train(body: TrainBody) -> dict[str, Any]:
        d = body.dataset
        return guarded(twin.ops.train, TrainRequest(runs=d.runs, from_window=d.from_window, to_window=d.to_window,
                                                    objective=body.objective, metrics=tuple(body.metrics),
                                                    budget_s=body.budget_s, warm_start=body.warm_start,
                                                    held_out=body.held_out, promote=body.promote))

    @app.post("/ml/deploy", dependencies=[Depends(require_token)], responses=ERRORS)
    def ml_deploy(body: DeployBody) -> dict[str, Any]:
        return guarded(twin.ops.deploy, body.model_uri, body.strategy, body.weight,
                       body.rollback_thresholds.model_dump())

    @app.post("/ml/monitor", dependencies=[Depends(require_token)], responses=ERRORS)
    def ml_monitor(body: MonitorBody) -> dict[str, Any]:
        return guarded(twin.ops.monitor, body.deployment_id, body.windows, body.promote)

    @app.post("/ml/rollback", dependencies=[Depends(require_token)], responses=ERRORS)
    def ml_rollback(body: RollbackBody) -> dict[str, Any]:
        return guarded(twin.ops.rollback, body.deployment_id, body.reason)

    @app.get("/metrics", response_class=Response)
    def metrics() -> Response:
        return Response(twin.metrics.render(), media_type=CONTENT_TYPE)

    return app

