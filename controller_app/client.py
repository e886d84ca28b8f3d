"""Command-line side of the controller's REST API (requests): one call per endpoint, errors
turned into one-line `ControllerError`s."""

from __future__ import annotations

import os
from typing import Any

import requests

from topologies.addressing import CONTROL_HOST, REST_PORT

DEFAULT_URL = f"http://{CONTROL_HOST}:{REST_PORT}"


class ControllerError(RuntimeError):
    pass


class ControllerClient:
    def __init__(self, url: str | None = None, timeout: float = 5.0) -> None:
        self.url = (url or os.environ.get("NDT_CONTROLLER", DEFAULT_URL)).rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = requests.request(method, self.url + path, timeout=self.timeout, **kw)
        except requests.ConnectionError:
            raise ControllerError(f"no controller at {self.url}; is a lab running? ('ndt lab up TOPO')") from None
        except requests.RequestException as exc:
            raise ControllerError(f"controller request failed: {exc}") from None
        try:
            body = r.json()
        except ValueError:
            body = {"error": r.text.strip()[:200]}
        if not r.ok:
            msg = body.get("error") if isinstance(body, dict) else None
            raise ControllerError(f"controller: {msg or r.reason} (HTTP {r.status_code})")
        return body

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params or None)

    def switches(self) -> list[dict[str, Any]]:
        return self.get("/switches")

    def links(self) -> list[dict[str, Any]]:
        return self.get("/links")

    def hosts(self) -> list[dict[str, Any]]:
        return self.get("/hosts")

    def flows(self, include_expired: bool = False) -> list[dict[str, Any]]:
        return self.get("/flows", all=str(include_expired).lower())

    def ports(self) -> list[dict[str, Any]]:
        return self.get("/ports")

    def path(self, src: str, dst: str) -> dict[str, Any]:
        return self.get("/path", src=src, dst=dst)

    def topology(self) -> dict[str, Any]:
        return self.get("/topology")

    def set_link(self, link_id: str, **change: Any) -> dict[str, Any]:
        return self._call("POST", f"/links/{link_id}", json=change)
