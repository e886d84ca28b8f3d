"""`ndt demo` until the closed loop exists: bring up a lab, show its switches, links and a few
paths, run pingall, and take it down (also on error or Ctrl-C)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from controller_app.client import ControllerClient
from ptwin.control import lab_down, lab_up, request
from ptwin.lab import LabConfig
from topologies.resolve import load

from .table import print_table


def run(args: argparse.Namespace) -> None:
    topo = load(args.topo)
    out: dict[str, Any] = {"topology": topo.name}
    say = (lambda m: None) if args.json else (lambda m: print(m, flush=True))
    state = lab_up(topo, LabConfig(), progress=lambda m: say(f"... {m}"))
    try:
        info = state["info"]
        out["ready_seconds"] = round(state["ready_at"] - state["started_at"], 2)
        say(f"\nlab {topo.name} up in {out['ready_seconds']} s: {info['datapath']} datapath, "
            f"delay backend {info['delay_backend']}\n")
        ctl = ControllerClient(info["controller"]["rest"])
        out["switches"] = ctl.switches()
        out["links"] = ctl.links()
        if not args.json:
            print_table(out["switches"], ["dpid", "name", "node_name", "connected"])
            print()
            print_table(out["links"], ["id", "a_switch", "b_switch", "capacity_mbps", "delay_ms", "up"])
            print()
        hosts = [h["name"] for h in ctl.hosts()]
        pairs = [(hosts[0], hosts[-1]), (hosts[-1], hosts[0])]
        pairs += [(hosts[i], hosts[i + 2]) for i in range(min(2, len(hosts) - 2))]
        out["paths"] = [ctl.path(a, b) for a, b in pairs]
        for p in out["paths"]:
            say(f"path {p['src']} -> {p['dst']}: {' -> '.join(p['switch_names'])} "
                f"({', '.join(p['links'])}), {p['delay_ms']:g} ms")
        say("\nrunning pingall ...")
        out["pingall"] = request("pingall", timeout=1800)
        pa = out["pingall"]
        say(f"pingall: {pa['received']}/{pa['sent']} replies, {pa['loss_pct']}% loss in {pa['seconds']} s")
    finally:
        say("\ntaking the lab down ...")
        lab_down()
        say("done")
    if args.json:
        json.dump(out, sys.stdout, indent=1)
        print()
