"""`ndt lab up|status|down|link|capacity|pingall` (the emulated network) and `ndt ctl` (the
controller's REST API)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from apps.common.table import emit, print_table
from controller_app.client import DEFAULT_URL, ControllerClient
from topologies import builtin as builtin_topos
from topologies.resolve import load

from .base import CliError, Parser
from .lab_args import add_emulation_args, lab_config
from .routing import add_args as add_routing_args
from .routing import cmd_routing

_T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"... [{time.monotonic() - _T0:5.1f} s] {msg}", file=sys.stderr, flush=True)

def cmd_lab_up(args: argparse.Namespace) -> None:
    from ptwin.control import lab_up

    topo = load(args.topo)
    config = lab_config(args, delay_backend=args.delay_backend, ready_timeout=args.timeout,
                        flow_idle_timeout=args.idle_timeout)
    state = lab_up(topo, config, progress=progress if not args.json else (lambda m: None))
    info = dict(state.get("info", {}), ready_seconds=round(state["ready_at"] - state["started_at"], 2))
    emit(info, args.json, render_lab_info)

def render_lab_info(info: dict[str, Any]) -> None:
    print(f"lab up: {info.get('topology')} with {info.get('switches')} switches, {info.get('links')} links"
          + (f", ready in {info['ready_seconds']} s" if "ready_seconds" in info else ""))
    print(f"datapath {info.get('datapath')}, delay backend {info.get('delay_backend')}, "
          f"capacity scale {info.get('capacity_scale')}")
    queue = info.get("queue_pkts")
    if queue:
        sizes = sorted(set(queue["links"].values()))
        span = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
        print(f"queue {span} packets per link direction ({queue['from_topology']} link(s) from the topology, "
              f"the rest --queue {queue['default']})")
    ctl = info.get("controller", {})
    print(f"controller REST {ctl.get('rest')}, OpenFlow port {ctl.get('ofp_port')}")
    if info.get("links_down"):
        print(f"links down: {', '.join(info['links_down'])}")

def cmd_lab_status(args: argparse.Namespace) -> None:
    from ptwin.control import lab_status

    st = lab_status()

    def render(s: dict[str, Any]) -> None:
        print(f"status: {s['status']}")
        if s.get("hint"):
            print(s["hint"])
        if s.get("error"):
            print(f"error: {s['error']}")
        if s.get("info"):
            render_lab_info(s["info"])

    emit(st, args.json, render)

def cmd_lab_down(args: argparse.Namespace) -> None:
    from ptwin.control import lab_down

    res = lab_down()

    def render(r: dict[str, Any]) -> None:
        if not r["was_running"] and not r.get("removed_leftovers"):
            print("no lab was running" if "removed_leftovers" not in r else "cleared a dead lab")
        else:
            print("lab down")
        for item in r.get("removed_leftovers", []):
            print(f"removed leftover {item}")

    emit(res, args.json, render)

def _link_id(ref: str) -> str:
    """A link id (L3) or a pair of node references 'A,B' resolved on the running lab's topology."""
    if "," not in ref:
        return ref
    from ptwin.control import request
    from topologies.resolve import load_json

    info = request("status")
    topo = load_json(__import__("pathlib").Path(info["topology_file"]))
    a, b = ref.split(",", 1)
    return topo.link_between(topo.node(a.strip()).id, topo.node(b.strip()).id).id

def cmd_lab_link(args: argparse.Namespace) -> None:
    from ptwin.control import request

    res = request("link", link=_link_id(args.link), up=args.state == "up")
    emit(res, args.json, lambda r: print(f"link {r['link']} {'up' if r['up'] else 'down'}"))

def cmd_lab_capacity(args: argparse.Namespace) -> None:
    from ptwin.control import request

    res = request("capacity", link=_link_id(args.link), capacity_mbps=args.mbps, tell=not args.untold)
    untold = "" if res.get("controller_told", True) else " (the controller was not told)"
    emit(res, args.json, lambda r: print(f"link {r['link']} shaped to {r['emulated_mbps']:g} Mbit/s{untold}"))

def cmd_lab_pingall(args: argparse.Namespace) -> None:
    from ptwin.control import request

    res = request("pingall", timeout=1800, count=args.count)

    def render(r: dict[str, Any]) -> None:
        print(f"pingall: {r['pairs']} pairs, {r['received']}/{r['sent']} received, "
              f"{r['loss_pct']}% loss, {r['seconds']} s")
        if r["failed"]:
            print(f"failed: {', '.join(r['failed'][:20])}")

    emit(res, args.json, render)
    if res["loss_pct"] > 0:
        raise CliError(f"pingall lost {res['loss_pct']}% of pings")

CTL_COLUMNS = {
    "switches": ["dpid", "name", "node_name", "connected", "ready"],
    "links": ["id", "a_switch", "b_switch", "capacity_mbps", "delay_ms", "up", "load_bps", "utilization"],
    "hosts": ["name", "ip", "mac", "switch", "dpid", "port", "node_name"],
    "flows": ["id", "src", "dst", "proto", "sport", "dport", "links", "packets", "bytes", "rate_bps"],
    "ports": ["dpid", "port", "name", "link", "host", "up", "tx_bytes", "rx_bytes", "tx_bps", "tx_dropped"],
}


def cmd_ctl(args: argparse.Namespace) -> None:
    client = ControllerClient(args.url)
    if args.what == "routing":
        cmd_routing(client, args)
        return
    if args.what == "path":
        if len(args.args) != 2:
            raise CliError("usage: ndt ctl path SRC DST")
        info = client.path(*args.args)
        emit(info, args.json, lambda p: print(
            f"{p['src']} -> {p['dst']}: {' -> '.join(p['switch_names'])} "
            f"via {', '.join(p['links']) or '(same switch)'}; {p['hops']} hops, {p['delay_ms']:g} ms"))
        return
    if args.args:
        raise CliError(f"ndt ctl {args.what} takes no arguments")
    data = client.flows(include_expired=args.all) if args.what == "flows" else getattr(client, args.what)()
    emit(data, args.json, lambda rows: print_table(rows, CTL_COLUMNS[args.what]))


def register(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser("lab", help="the emulated network")
    lsub = lab.add_subparsers(dest="sub", required=True, parser_class=Parser)
    t = lsub.add_parser("up", help="build and start the lab; returns when it is ready")
    t.add_argument("topo", metavar="TOPO", nargs="?", default=builtin_topos.DEFAULT)
    t.add_argument("--delay-backend", default="auto", choices=["auto", "netem", "relay", "none"])
    add_emulation_args(t)
    t.add_argument("--idle-timeout", type=int, default=30, help="seconds before an idle flow expires")
    t.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the lab")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_lab_up)
    for name, func, hlp in (("status", cmd_lab_status, "what is running"),
                            ("down", cmd_lab_down, "remove everything the lab created")):
        t = lsub.add_parser(name, help=hlp)
        t.add_argument("--json", action="store_true")
        t.set_defaults(func=func)
    t = lsub.add_parser("link", help="take a link down or up (LINK is an id like L3 or 'A,B')")
    t.add_argument("link", metavar="LINK")
    t.add_argument("state", choices=["up", "down"])
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_lab_link)
    t = lsub.add_parser("capacity", help="reshape a link to a new capacity (Mbit/s, topology units)")
    t.add_argument("link", metavar="LINK")
    t.add_argument("mbps", type=float)
    t.add_argument("--untold", action="store_true",
                   help="do not tell the controller: a fault the twin does not know about (anomaly tests)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_lab_capacity)
    t = lsub.add_parser("pingall", help="ping between every pair of hosts")
    t.add_argument("--count", type=int, default=1)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_lab_pingall)

    ctl = sub.add_parser("ctl", help="query the controller's REST API; change its routing")
    ctl.add_argument("what", choices=["switches", "links", "hosts", "flows", "ports", "path", "routing"])
    ctl.add_argument("args", nargs="*", metavar="ARG", help="path: SRC DST; routing: show|set|pin|unpin|revert ...")
    add_routing_args(ctl)
    ctl.add_argument("--all", action="store_true", help="flows: include expired ones")
    ctl.add_argument("--url", default=None, help="controller URL (default $NDT_CONTROLLER or "
                                                 f"{DEFAULT_URL})")
    ctl.add_argument("--json", action="store_true")
    ctl.set_defaults(func=cmd_ctl)
