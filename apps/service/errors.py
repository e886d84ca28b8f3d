"""The service's errors, mapped to status codes in one place: every error is a JSON body
{"error": "..."} in one line, never a traceback.

    401 no bearer token, 403 a wrong one (ApiError from `deps.require_token`)
    404 an unknown snapshot, run, deployment, report or model
    409 what the state forbids (a deployment or a training under way, no active model, a plan's
        state or a stale plan, a controller that cannot be asked)
    422 a malformed request or one the engine cannot answer
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from apps.optimize import OptimizeError
from apps.plans import PlanError, UnknownPlan
from apps.whatif import UnknownSnapshot, WhatIfError, one_line
from controller_app.client import ControllerError
from vtwin.registry import RegistryError

from .modelops import Conflict, NotFound, OpsError


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


#: The domain errors' status codes; the first class that matches wins.
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UnknownSnapshot, 404), (NotFound, 404), (Conflict, 409), (WhatIfError, 422), (OpsError, 422),
    (OptimizeError, 422), (UnknownPlan, 404), (PlanError, 409), (ControllerError, 409))


def status_of(exc: Exception) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, RegistryError):
        return 404 if str(exc).startswith("no model ") else 409
    return next(code for cls, code in STATUS if isinstance(exc, cls))


def _body(exc: Exception, status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    """The application's exception handlers."""

    async def domain(request: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc)
        return _body(exc, status, {"WWW-Authenticate": "Bearer"} if status == 401 else None)

    for cls in (ApiError, WhatIfError, OpsError, RegistryError, OptimizeError, PlanError, ControllerError):
        app.add_exception_handler(cls, domain)

    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": one_line(list(exc.errors()))}, status_code=422)

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
