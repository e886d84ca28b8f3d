"""The service's FastAPI application: its state, its routers and its error handlers."""

from __future__ import annotations

import pathlib
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from apps.common.config import Config

from . import errors, routes_ml, routes_plans, routes_reports, routes_twin
from .deps import Twin
from .models import ErrorBody


def create_app(root: pathlib.Path, config: Config) -> FastAPI:
    from . import __doc__ as description

    twin = Twin(root, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=twin.warm, name="warm", daemon=True).start()
        yield

    app = FastAPI(title="ndt twin service", version="0.1.0", lifespan=lifespan, description=description,
                  responses={400: {"model": ErrorBody}, 422: {"model": ErrorBody}})
    app.state.twin = twin
    errors.install(app)
    app.include_router(routes_twin.router)
    app.include_router(routes_reports.router)
    app.include_router(routes_ml.router)
    app.include_router(routes_ml.guarded)
    app.include_router(routes_plans.router)
    app.include_router(routes_plans.guarded)
    return app
