"""The controller's REST API (FastAPI, JSON, 127.0.0.1:8080 by default), served by uvicorn in a
thread of the controller process. The OpenAPI document is at /openapi.json, browsable at /docs.

Endpoints: /health, /switches, /links (POST /links/{id} changes state or capacity), /hosts,
/path?src=&dst=, /flows, /ports, /topology. Unknown hosts give 404, malformed queries 400.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from topologies import TopologyError

if TYPE_CHECKING:
    from .app import NdtController


class LinkChange(BaseModel):
    up: bool | None = Field(None, description="take the link down (false) or up (true)")
    capacity_mbps: float | None = Field(None, gt=0, description="new capacity, Mbit/s")


def make_api(ctl: NdtController) -> FastAPI:
    api = FastAPI(title="ndt controller", version="1",
                  description="Switches, links, hosts, paths, flows and ports of the running lab.")
    net = ctl.net

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

    return api


def _unknown(net: Any, ref: str) -> bool:
    try:
        net.plan.resolve_host(ref)
        return False
    except (KeyError, TopologyError):
        return True


def serve_in_thread(ctl: NdtController, host: str, port: int) -> threading.Thread:
    config = uvicorn.Config(make_api(ctl), host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ndt-rest", daemon=True)
    thread.start()
    return thread
