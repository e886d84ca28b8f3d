"""What the routes depend on: the service's state (`Twin`) and the bearer token of the endpoints
that change what serves."""

from __future__ import annotations

import pathlib
import secrets

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from apps.common.config import Config
from vtwin.registry import RegistryError

from .errors import ApiError
from .metrics import Metrics
from .modelops import ModelOps
from .serving import ServingTwin


class Twin:
    """What the service holds: the data directory, its configuration, the serving twin, model
    operations and metrics."""

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


def twin(request: Request) -> Twin:
    return request.app.state.twin


bearer = HTTPBearer(auto_error=False, description="the service token (config file or $NDT_TOKEN)")


def require_token(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
    if creds is None or creds.scheme.lower() != "bearer":
        raise ApiError(401, "this endpoint needs 'Authorization: Bearer <token>'")
    token = twin(request).config.token
    if not token or not secrets.compare_digest(creds.credentials.encode(), token.encode()):
        raise ApiError(403, "wrong token")
