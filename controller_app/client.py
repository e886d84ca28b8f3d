"""Command-line side of the controller's REST API (requests): one call per endpoint, errors
turned into one-line `ControllerError`s. Routing changes carry the bearer token: $NDT_CONTROLLER_TOKEN,
else the running lab's controller.token (readable by root)."""

from __future__ import annotations

import os
from typing import Any

import requests

from ptwin.state import token_path
from topologies.addressing import CONTROL_HOST, REST_PORT

DEFAULT_URL = f"http://{CONTROL_HOST}:{REST_PORT}"


class ControllerError(RuntimeError):
    pass


class ControllerClient:
    def __init__(self, url: str | None = None, timeout: float = 5.0, token: str | None = None,
                 actor: str = "cli") -> None:
        self.url = (url or os.environ.get("NDT_CONTROLLER", DEFAULT_URL)).rstrip("/")
        self.timeout = timeout
        self._token = token
        self.actor = actor

    def token(self) -> str:
        if self._token:
            return self._token
        env = os.environ.get("NDT_CONTROLLER_TOKEN")
        if env:
            return env
        try:
            return token_path().read_text().strip()
        except FileNotFoundError:
            raise ControllerError(f"no controller token: set NDT_CONTROLLER_TOKEN or run as root beside the lab "
                                  f"({token_path()})") from None
        except PermissionError:
            raise ControllerError(f"cannot read the controller token {token_path()}: run as root or set "
                                  "NDT_CONTROLLER_TOKEN") from None

    def _change(self, method: str, path: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token()}", "X-NDT-Actor": self.actor}
        return self._call(method, path, headers=headers, **kw)

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

    # -- routing (northbound) ---------------------------------------------------------------------
    def routing(self, history: int = 20) -> dict[str, Any]:
        return self.get("/routing", history=history)

    def routing_at(self, version: int) -> dict[str, Any]:
        return self.get(f"/routing/versions/{version}")

    def set_weights(self, weights: dict[str, float | None], replace: bool = False, reason: str = "") -> dict[str, Any]:
        return self._change("POST", "/routing/weights", json={"weights": weights, "replace": replace, "reason": reason})

    def pin(self, links: list[str], src: str | None = None, dst: str | None = None, flow: int | None = None,
            reason: str = "") -> dict[str, Any]:
        return self._change("POST", "/routing/pins",
                            json={"src": src, "dst": dst, "flow": flow, "links": links, "reason": reason})

    def unpin(self, src: str | None = None, dst: str | None = None, flow: int | None = None) -> dict[str, Any]:
        params = {k: v for k, v in (("src", src), ("dst", dst), ("flow", flow)) if v is not None}
        return self._change("DELETE", "/routing/pins", params=params)

    def revert(self, version: int, reason: str = "") -> dict[str, Any]:
        return self._change("POST", "/routing/revert", json={"version": version, "reason": reason})

    def set_policy(self, weights: dict[str, float], pins: list[dict[str, Any]], reason: str = "") -> dict[str, Any]:
        return self._change("PUT", "/routing", json={"weights": weights, "pins": pins, "reason": reason})
