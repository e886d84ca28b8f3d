"""The controller's REST API (FastAPI, JSON, 127.0.0.1:8080 by default), served by uvicorn in a
thread of the controller process. The OpenAPI document is at /openapi.json, browsable at /docs.

Endpoints: /health, /switches, /links (POST /links/{id} changes state or capacity), /hosts,
/path?src=&dst=, /flows, /ports, /topology, and the northbound routing API (`controller_app.routing`):
GET /routing, GET /routing/versions/{v}, and with `Authorization: Bearer <token>` (the lab's
controller.token) POST /routing/weights, POST /routing/pins, DELETE /routing/pins, POST
/routing/revert and PUT /routing (a whole policy). Unknown hosts give 404, malformed queries and
routing changes that cannot be applied 400 (the routing is left as it was), a missing token 401,
a wrong one 403.
"""

from __future__ import annotations

import secrets
import threading
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from topologies import TopologyError

from .routing import Pin, Policy, RoutingError

if TYPE_CHECKING:
    from .app import NdtController


class LinkChange(BaseModel):
    up: bool | None = Field(None, description="take the link down (false) or up (true)")
    capacity_mbps: float | None = Field(None, gt=0, description="new capacity, Mbit/s")


class WeightsChange(BaseModel):
    weights: dict[str, float | None] = Field(..., description="link id -> routing weight (> 0); null drops it")
    replace: bool = Field(False, description="drop every weight not given")
    reason: str = ""


class PinChange(BaseModel):
    src: str | None = Field(None, description="source host (name, IP or node); with dst: every flow of the pair")
    dst: str | None = None
    flow: int | None = Field(None, description="pin this flow (its id) only")
    links: list[str] = Field(..., description="link ids in order from the source's switch")
    reason: str = ""


class Revert(BaseModel):
    version: int
    reason: str = ""


class PolicyBody(BaseModel):
    weights: dict[str, float] = Field(default_factory=dict)
    pins: list[PinChange] = Field(default_factory=list)
    reason: str = ""


bearer = HTTPBearer(auto_error=False, description="the lab's controller token (controller.token)")


def make_api(ctl: NdtController, token: str | None = None) -> FastAPI:
    api = FastAPI(title="ndt controller", version="1",
                  description="Switches, links, hosts, paths, flows and ports of the running lab, "
                              "and its routing policy.")
    net = ctl.net

    def authorized(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if creds is None:
            raise HTTPException(401, "routing changes need 'Authorization: Bearer <token>' (the lab's "
                                     "controller.token)")
        if not token:
            raise HTTPException(403, "this controller was started without a token: it takes no routing changes")
        if not secrets.compare_digest(creds.credentials.encode(), token.encode()):
            raise HTTPException(403, "wrong token")

    def host_name(ref: str) -> str:
        try:
            return net.plan.resolve_host(ref).name
        except (KeyError, TopologyError):
            raise RoutingError(f"unknown host {ref!r}") from None

    def pin_of(body: PinChange, down: set[str]) -> Pin:
        if body.flow is not None:
            f = net.by_id.get(body.flow)
            if f is None:
                raise RoutingError(f"unknown flow {body.flow}")
            for given, real in ((body.src, f.src), (body.dst, f.dst)):
                if given is not None and host_name(given) != real:
                    raise RoutingError(f"flow {body.flow} runs {f.src}->{f.dst}, not {body.src}->{body.dst}")
            return net.routing.check_pin(f.src, f.dst, body.links, down, body.flow)
        if body.src is None or body.dst is None:
            raise RoutingError("a pin needs src and dst, or a flow id")
        return net.routing.check_pin(body.src, body.dst, body.links, down)

    def change(make_policy, by: str, reason: str) -> dict[str, Any]:
        """Build the new policy (RoutingError: 400, nothing changed), then apply it as one version."""
        with ctl.route_lock, net.lock:
            try:
                policy = make_policy(set(net.down_links()))
            except RoutingError as exc:
                raise HTTPException(400, str(exc)) from None
            moves = ctl.reroute(by or "api", reason, policy)
            return {"version": net.routing_version, "moved": moves,
                    "routing": net.routing.view(set(net.down_links()), history=5)}

    @api.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "body"))
        return JSONResponse(status_code=400, content={"error": f"{where}: {first.get('msg', 'invalid')}"})

    @api.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"error": exc.detail})

    @api.get("/health", summary="The controller is up")
    def health() -> dict[str, Any]:
        return {"ok": True, "topology": net.topo.name, "routing_version": net.routing_version}

    @api.get("/topology", summary="The topology the controller routes (capacities as emulated)")
    def topology() -> dict[str, Any]:
        return net.topo.to_dict()

    @api.get("/switches", summary="Switches with 16-hex-digit datapath ids and connection state")
    def switches() -> list[dict[str, Any]]:
        return net.switches_view()

    @api.get("/links", summary="Links with capacity, state and live load from port counters")
    def links() -> list[dict[str, Any]]:
        return net.links_view()

    @api.post("/links/{link_id}", summary="Set a link up/down or change its capacity")
    def change_link(link_id: str, change: LinkChange) -> dict[str, Any]:
        if link_id not in net.link_up:
            raise HTTPException(404, f"unknown link {link_id}")
        if change.up is None and change.capacity_mbps is None:
            raise HTTPException(400, "give 'up' and/or 'capacity_mbps'")
        moved = ctl.set_link(link_id, up=change.up, capacity_mbps=change.capacity_mbps)
        return {"link": link_id, "up": net.link_up[link_id], "capacity_mbps": net.capacity[link_id],
                "rerouted_flows": moved}

    @api.get("/hosts", summary="Hosts with IP, MAC and attachment switch/port")
    def hosts() -> list[dict[str, Any]]:
        return net.hosts_view()

    @api.get("/path", summary="Current path between two hosts (name, IP or node)")
    def path(src: str = Query(..., min_length=1), dst: str = Query(..., min_length=1)) -> dict[str, Any]:
        try:
            info = net.path_info(src, dst)
        except (KeyError, TopologyError):
            bad = src if _unknown(net, src) else dst
            raise HTTPException(404, f"unknown host {bad!r}") from None
        if not info["reachable"]:
            raise HTTPException(409, f"no path from {info['src']} to {info['dst']} (links down)")
        return info

    @api.get("/flows", summary="Flows with path, packet/byte counters and current rate")
    def flows(all: bool = Query(False, description="include expired flows")) -> list[dict[str, Any]]:
        return net.flows_view(active_only=not all)

    @api.get("/flows/{flow_id}", summary="One flow")
    def flow(flow_id: int) -> dict[str, Any]:
        f = net.by_id.get(flow_id)
        if f is None:
            raise HTTPException(404, f"unknown flow {flow_id}")
        return net.flow_dict(f)

    @api.get("/ports", summary="Port counters and rates of every switch port")
    def ports() -> list[dict[str, Any]]:
        return net.ports_view()

    @api.get("/routing", summary="The routing policy: its version, weights, pins and recent versions")
    def routing(history: int = Query(20, ge=1, le=500)) -> dict[str, Any]:
        with net.lock:
            return net.routing.view(set(net.down_links()), history)

    @api.get("/routing/versions/{version}", summary="One version's policy")
    def routing_version(version: int) -> dict[str, Any]:
        with net.lock:
            try:
                v = net.routing.at_version(version)
            except RoutingError as exc:
                raise HTTPException(404, str(exc)) from None
            return v.summary() | v.policy.to_dict()

    @api.post("/routing/weights", summary="Set link weights (one new version)", dependencies=[Depends(authorized)])
    def set_weights(body: WeightsChange, x_ndt_actor: str = Header("api")) -> dict[str, Any]:
        def make(_down: set[str]) -> Policy:
            return net.routing.with_weights(net.routing.check_weights(body.weights), body.replace)
        what = ", ".join(f"{k}={v:g}" if v is not None else f"{k} default" for k, v in sorted(body.weights.items()))
        return change(make, x_ndt_actor, body.reason or f"weights {what}" + (" (replacing)" if body.replace else ""))

    @api.post("/routing/pins", summary="Pin a host pair's or a flow's path (one new version)",
              dependencies=[Depends(authorized)])
    def pin(body: PinChange, x_ndt_actor: str = Header("api")) -> dict[str, Any]:
        def make(down: set[str]) -> Policy:
            return net.routing.with_pin(pin_of(body, down))
        who = f"flow {body.flow}" if body.flow is not None else f"{body.src}->{body.dst}"
        return change(make, x_ndt_actor, body.reason or f"pin {who} on {','.join(body.links)}")

    @api.delete("/routing/pins", summary="Drop a pin (one new version)", dependencies=[Depends(authorized)])
    def unpin(src: str | None = None, dst: str | None = None, flow: int | None = None,
              x_ndt_actor: str = Header("api")) -> dict[str, Any]:
        def make(_down: set[str]) -> Policy:
            if flow is not None:
                return net.routing.without_pin(f"flow:{flow}")
            if src is None or dst is None:
                raise RoutingError("give src and dst, or flow")
            return net.routing.without_pin(f"{host_name(src)}>{host_name(dst)}")
        return change(make, x_ndt_actor, f"unpin {f'flow {flow}' if flow is not None else f'{src}->{dst}'}")

    @api.post("/routing/revert", summary="Restore an earlier version's policy (one new version)",
              dependencies=[Depends(authorized)])
    def revert(body: Revert, x_ndt_actor: str = Header("api")) -> dict[str, Any]:
        def make(_down: set[str]) -> Policy:
            return net.routing.at_version(body.version).policy.copy()
        return change(make, x_ndt_actor, body.reason or f"revert to version {body.version}")

    @api.put("/routing", summary="Replace the whole policy: weights and pins (one new version)",
             dependencies=[Depends(authorized)])
    def put_routing(body: PolicyBody, x_ndt_actor: str = Header("api")) -> dict[str, Any]:
        def make(down: set[str]) -> Policy:
            weights = net.routing.check_weights(body.weights)
            pins = [pin_of(p, down) for p in body.pins]
            return Policy({k: v for k, v in weights.items() if v is not None}, {p.key: p for p in pins})
        return change(make, x_ndt_actor, body.reason or "policy replaced")

    return api


def _unknown(net: Any, ref: str) -> bool:
    try:
        net.plan.resolve_host(ref)
        return False
    except (KeyError, TopologyError):
        return True


def serve_in_thread(ctl: NdtController, host: str, port: int, token: str | None = None) -> threading.Thread:
    config = uvicorn.Config(make_api(ctl, token), host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ndt-rest", daemon=True)
    thread.start()
    return thread
