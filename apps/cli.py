"""The `ndt` command line: one entry point, subcommands per part of the data flow.

Every command that prints data has --json. Every error is one line on stderr and a non-zero
exit code, never a traceback.
"""

from __future__ import annotations

import os

# TensorFlow's C++ start-up chatter would break the one-line error rule.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import faulthandler
import json
import signal
import sys
import time
from typing import Any, NoReturn

from controller_app.client import DEFAULT_URL, ControllerClient, ControllerError
from ptwin.errors import LabError
from topologies import Topology, TopologyError
from topologies import builtin as builtin_topos
from topologies.resolve import load, search_dirs, zoo_files
from traffic.runner import TrafficError
from traffic.schedule import ScheduleError
from traffic.store import StoreError
from vtwin.errors import RegistryError, SnapshotError

from . import closed_loop, serve_cli, whatif_cli
from . import demo as demo_mod
from .config import ConfigError
from .lab_args import add_emulation_args, lab_config
from .table import emit, print_table


class CliError(Exception):
    """A user-facing error raised by a command."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


# -- topo ---------------------------------------------------------------------------------------
def topo_summary(topo: Topology) -> dict[str, Any]:
    caps = [lk.capacity_mbps for lk in topo.links]
    delays = [lk.delay_ms for lk in topo.links]
    return {
        "name": topo.name,
        "nodes": [{"id": n.id, "name": n.name, "lat": n.lat, "lon": n.lon} for n in topo.nodes],
        "links": [{"id": lk.id, "a": lk.a, "b": lk.b, "a_name": topo.nodes[lk.a].name,
                   "b_name": topo.nodes[lk.b].name, "capacity_mbps": lk.capacity_mbps,
                   "delay_ms": round(lk.delay_ms, 4), "queue_pkts": lk.queue_pkts} for lk in topo.links],
        "capacity_mbps": {"min": min(caps), "max": max(caps)},
        "delay_ms": {"min": round(min(delays), 4), "max": round(max(delays), 4)},
        "diameter": topo.diameter(),
        "notes": list(topo.notes),
        "sources": [{"value": v, "source": s, "links": n} for v, s, n in topo.sources],
    }


def cmd_topo_list(args: argparse.Namespace) -> None:
    from topologies import topohub_source

    if args.group:
        group = args.group.removeprefix(topohub_source.PREFIX).strip("/")
        if group not in topohub_source.catalogue():
            raise CliError(f"no topohub group {args.group!r}; groups: "
                           f"{', '.join(topohub_source.catalogue()) or '(topohub is not installed)'}")
        rows = [{"name": topohub_source.PREFIX + k, "kind": "topohub"} for k in topohub_source.names(group)]
        emit(rows, args.json, lambda r: print_table(r, ["name", "kind"]))
        return
    rows = [{"name": name, "kind": "built-in", "nodes": len(m().nodes), "links": len(m().links)}
            for name, m in builtin_topos.CATALOGUE.items()]
    rows += [{"name": alias, "kind": f"alias of {target}", "nodes": None, "links": None}
             for alias, target in builtin_topos.ALIASES.items()]
    for path in zoo_files():
        rows.append({"name": path.stem, "kind": f"file {path}", "nodes": None, "links": None})
    rows.append({"name": "random:N:M:SEED", "kind": "generator", "nodes": None, "links": None})
    for group, n in topohub_source.catalogue().items():
        example = topohub_source.names(group)[0]
        rows.append({"name": f"topohub:{group}/...", "kind": f"topohub, {n} topologies (e.g. topohub:{example})",
                     "nodes": None, "links": None})
    emit(rows, args.json, lambda r: print_table(r, ["name", "kind", "nodes", "links"]))
    if not args.json:
        print(f"\nfiles are searched in: {', '.join(str(d) for d in search_dirs()) or '(none)'}"
              " (NDT_TOPOLOGY_PATH); any .gml/.graphml/.json path works too;\n"
              "'ndt topo list topohub:GROUP' lists a topohub group")


def cmd_topo_show(args: argparse.Namespace) -> None:
    info = topo_summary(load(args.topo))

    def render(d: dict[str, Any]) -> None:
        print(f"{d['name']}: {len(d['nodes'])} nodes, {len(d['links'])} links, "
              f"diameter {d['diameter']['hops']} hops / {d['diameter']['delay_ms']} ms")
        print(f"capacity {d['capacity_mbps']['min']:g}-{d['capacity_mbps']['max']:g} Mbit/s, "
              f"delay {d['delay_ms']['min']:g}-{d['delay_ms']['max']:g} ms")
        for src in d["sources"]:
            print(f"{src['value']}: {src['links']} link(s) from {src['source']}")
        for note in d["notes"]:
            print(f"note: {note}")
        print()
        print_table(d["nodes"], ["id", "name", "lat", "lon"])
        print()
        print_table(d["links"], ["id", "a", "b", "a_name", "b_name", "capacity_mbps", "delay_ms", "queue_pkts"])

    emit(info, args.json, render)


# -- lab ----------------------------------------------------------------------------------------
_T0 = time.monotonic()


def _progress(msg: str) -> None:
    print(f"... [{time.monotonic() - _T0:5.1f} s] {msg}", file=sys.stderr, flush=True)


def cmd_lab_up(args: argparse.Namespace) -> None:
    from ptwin.control import lab_up

    topo = load(args.topo)
    config = lab_config(args, delay_backend=args.delay_backend, ready_timeout=args.timeout,
                        flow_idle_timeout=args.idle_timeout)
    state = lab_up(topo, config, progress=_progress if not args.json else (lambda m: None))
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

    res = request("capacity", link=_link_id(args.link), capacity_mbps=args.mbps)
    emit(res, args.json, lambda r: print(f"link {r['link']} shaped to {r['emulated_mbps']:g} Mbit/s"))


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


# -- ctl ----------------------------------------------------------------------------------------
CTL_COLUMNS = {
    "switches": ["dpid", "name", "node_name", "connected", "ready"],
    "links": ["id", "a_switch", "b_switch", "capacity_mbps", "delay_ms", "up", "load_bps", "utilization"],
    "hosts": ["name", "ip", "mac", "switch", "dpid", "port", "node_name"],
    "flows": ["id", "src", "dst", "proto", "sport", "dport", "links", "packets", "bytes", "rate_bps"],
    "ports": ["dpid", "port", "name", "link", "host", "up", "tx_bytes", "rx_bytes", "tx_bps", "tx_dropped"],
}


def cmd_ctl(args: argparse.Namespace) -> None:
    client = ControllerClient(args.url)
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


# -- traffic and data ---------------------------------------------------------------------------
def cmd_traffic_run(args: argparse.Namespace) -> None:
    from ptwin.control import lab_status
    from traffic.runner import SHORT_SHARE, TrafficRun
    from traffic.schedule import load_schedule
    from traffic.store import Stores

    schedule = load_schedule(args.schedule)
    if args.duration is not None:
        schedule = schedule.scaled_to(args.duration)
    if args.flows is not None or args.seed is not None:
        from dataclasses import replace

        schedule = replace(schedule, flows=args.flows or schedule.flows,
                           seed=args.seed if args.seed is not None else schedule.seed)
    st = lab_status()
    if st.get("status") != "ready":
        raise CliError("no lab is running; start one with 'ndt lab up TOPO'")
    info = st["info"]
    client = ControllerClient(info["controller"]["rest"])
    topo = Topology.from_dict(client.topology())
    stores = Stores(args.data)
    run = TrafficRun(schedule, stores, info["hosts"], topo, client, window_s=args.window,
                     progress=not args.json)
    if not args.json:
        print(f"run {run.run_id}: schedule {schedule.name}, {len(schedule.phases)} phase(s), "
              f"{schedule.duration_s:g} s, {len(run.pairs)} flows, data in {stores.root}", file=sys.stderr)
    result = run.run()

    def render(r: dict[str, Any]) -> None:
        print(f"run {r['run']} {r['status']}: {r['windows']} windows, {r['labels']} labels, "
              f"{r['flows_failed']} failed flow(s)")
        for p in r["phases"]:
            share = "" if p["sent_share"] is None else f", senders sent {p['sent_share']:.0%} of the asked rate"
            print(f"  phase {p['idx'] + 1} {p['profile']} load {p['load']:g}: "
                  f"{p['finished']} finished, {p['failed']} failed{share}")

    emit(result, args.json, render)
    for p in result["phases"]:
        if p["senders_short"]:
            print(f"warning: phase {p['idx'] + 1}: {p['senders_short']} sender(s) sent under "
                  f"{SHORT_SHARE:.0%} of their asked rate (median {p['sent_share']:.0%}); the machine's CPU "
                  "is short, and the labels describe less traffic than was asked", file=sys.stderr)
    if result["flows_failed"]:
        raise CliError(f"{result['flows_failed']} flow(s) failed; see {run.logs}")


def cmd_data_summary(args: argparse.Namespace) -> None:
    from traffic.dataset import summary
    from traffic.store import Stores

    info = summary(Stores(args.data), args.run)

    def render(d: dict[str, Any]) -> None:
        print(f"data {d['data']}: {len(d['runs'])} run(s), {d['windows']} windows, {d['labels']} labels")
        for r in d["runs"]:
            print(f"\nrun {r['id']} ({r['status']}): topology {r['topology']}, schedule {r['schedule']}, "
                  f"{r['windows']} windows, {r['flow_rows']} flow-windows, labeled {100 * r['labeled_fraction']:.1f}%")
            rows = [{"phase": p["idx"] + 1, "profile": p["profile"], "proto": p["protocol"], "load": p["load"],
                     "seconds": round((p["end_at"] or p["start_at"]) - p["start_at"], 1),
                     "flows": p["flows"], "mean_bps": p["rate_bps"]["mean"], "stdev_bps": p["rate_bps"]["stdev"]}
                    for p in r["phases"]]
            print_table(rows, ["phase", "profile", "proto", "load", "seconds", "flows", "mean_bps", "stdev_bps"])

    emit(info, args.json, render)


def cmd_data_export(args: argparse.Namespace) -> None:
    from pathlib import Path

    from traffic.dataset import export
    from traffic.store import Stores

    res = export(Stores(args.data), Path(args.out), args.run)
    emit(res, args.json, lambda r: print(f"wrote {r['file']}: {r['runs']} run(s), {r['windows']} windows, "
                                         f"{r['labeled_flows']} labeled flow-windows"))


def cmd_data_import(args: argparse.Namespace) -> None:
    from pathlib import Path

    from vtwin.paper_data import PaperDataError, find_splits, import_splits

    if args.source != "robust-ndt":
        raise CliError(f"unknown dataset source {args.source!r}; ndt imports: robust-ndt")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CliError(f"{out.parent}: no such directory for --out")
    try:
        splits = find_splits(Path(args.dir), args.topology, args.split)
        res = import_splits(splits, out, every=args.every, progress=(lambda m: None) if args.json else _progress)
    except PaperDataError as exc:
        raise CliError(str(exc)) from None

    def render(r: dict[str, Any]) -> None:
        print(f"wrote {r['file']}: {r['rows']} labeled rows")
        print_table(r["splits"], ["topology", "pattern", "split", "rows", "paths"])

    emit(res, args.json, render)


# -- virtual twin -------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from pathlib import Path

    from traffic.store import Stores
    from vtwin.dataset import from_jsonl, from_stores, split
    from vtwin.lifecycle import TrainSpec, train_and_register
    from vtwin.registry import Registry

    stores = Stores(args.data)
    samples = from_jsonl(Path(args.dataset)) if args.dataset else from_stores(stores, args.run or None)
    if len(samples) < 4:
        raise CliError(f"only {len(samples)} labeled window(s) to train on; run traffic first ('ndt traffic run')")
    fit, test = split(samples, held_out=args.held_out)
    if not args.json:
        print(f"training on {len(fit)} windows ({sum(s.labeled for s in fit)} labeled flows), "
              f"holding out {len(test)}", file=sys.stderr)
    spec = TrainSpec(source="cli", state=args.state, iterations=args.iterations, epochs=args.epochs,
                     budget_s=args.budget, patience=args.patience, warm_start=args.warm_start, promote=args.promote,
                     mm1=True, progress=not args.json)
    out = train_and_register(Registry(stores), fit, test, spec)

    def render(r: dict[str, Any]) -> None:
        g, m, t = r["metrics"]["held_out"]["overall"], r["metrics"]["mm1"], r["metrics"]["training"]
        print(f"{r['uri']} ({r['status']}): {t['epochs']} epochs in {t['seconds']:g} s ({t['stopped']})")
        print(f"held-out delay MAPE {g['delay_mape']}% (M/M/1 {m['delay_mape']}%), NMSE {g['delay_nmse_db']} dB "
              f"(ours, / variance), {g['delay_nmse_power_db']} dB (paper's, / mean y^2); "
              f"jitter MAPE {g['jitter_mape']}%")
        print_table(r["metrics"]["held_out"]["groups"], ["topology", "phase", "flows", "delay_mape", "delay_nmse_db",
                                                         "delay_nmse_power_db", "jitter_mape"])

    emit(out, args.json, render)


def cmd_console(args: argparse.Namespace) -> None:
    from .console import cmd_console as run_console

    run_console(args)


def cmd_model(args: argparse.Namespace) -> None:
    from traffic.store import Stores
    from vtwin.registry import Registry, held_out_mape, parse_uri

    reg = Registry(Stores(args.data))
    if args.action == "list":
        rows = reg.list()
        emit(rows, args.json, lambda r: print_table(
            [{**x, "delay_mape": held_out_mape(x["metrics"]), "jitter_mape": held_out_mape(x["metrics"], "jitter"),
              "source": ((x["metrics"] or {}).get("training") or {}).get("source")} for x in r],
            ["uri", "status", "parent", "source", "delay_mape", "jitter_mape", "weights_bytes"]))
        return
    if args.action == "rollback":
        res = reg.rollback("delay")
        emit(res, args.json, lambda r: print(f"rolled back {r['rolled_back']}; {r['active']} is active"))
        return
    if not args.ref:
        raise CliError(f"ndt model {args.action} needs a model, e.g. registry://delay:v2")
    objective, version = parse_uri(args.ref)
    if args.action == "show":
        emit(reg.show(objective, version), args.json, lambda r: print(json.dumps(r, indent=1)))
    else:
        res = reg.promote(objective, version)
        emit(res, args.json, lambda r: print(f"{r['active']} is active" +
                                             (f"; {r['archived']} archived" if r["archived"] else "")))


# -- parser -------------------------------------------------------------------------------------
def build_parser() -> Parser:
    p = Parser(prog="ndt", description="Self-adaptive network digital twin lab.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)

    topo = sub.add_parser("topo", help="list and show topologies")
    tsub = topo.add_subparsers(dest="sub", required=True, parser_class=Parser)
    t = tsub.add_parser("list", help="built-in topologies, generators, Zoo files and topohub groups")
    t.add_argument("group", nargs="?", default=None, metavar="topohub:GROUP", help="list one topohub group")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_topo_list)
    t = tsub.add_parser("show", help="nodes, links, capacities, delays, diameter")
    t.add_argument("topo", metavar="TOPO")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_topo_show)

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
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_lab_capacity)
    t = lsub.add_parser("pingall", help="ping between every pair of hosts")
    t.add_argument("--count", type=int, default=1)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_lab_pingall)

    ctl = sub.add_parser("ctl", help="query the controller's REST API")
    ctl.add_argument("what", choices=["switches", "links", "hosts", "flows", "ports", "path"])
    ctl.add_argument("args", nargs="*", metavar="SRC DST")
    ctl.add_argument("--all", action="store_true", help="flows: include expired ones")
    ctl.add_argument("--url", default=None, help="controller URL (default $NDT_CONTROLLER or "
                                                 f"{DEFAULT_URL})")
    ctl.add_argument("--json", action="store_true")
    ctl.set_defaults(func=cmd_ctl)

    tr = sub.add_parser("traffic", help="run D-ITG traffic schedules on the lab")
    trsub = tr.add_subparsers(dest="sub", required=True, parser_class=Parser)
    t = trsub.add_parser("run", help="run a schedule (built-in name or .yaml/.json file)")
    t.add_argument("schedule", metavar="SCHEDULE")
    t.add_argument("--duration", type=float, default=None, help="scale the phases to last this many seconds")
    t.add_argument("--window", type=float, default=1.0, help="measurement window, seconds (default 1)")
    t.add_argument("--flows", type=int, default=None, help="number of flows (default: the schedule's)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--data", default=None, help="data directory (default $NDT_DATA or ~/.local/share/ndt)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_traffic_run)

    da = sub.add_parser("data", help="the traffic and labeled stores")
    dsub = da.add_subparsers(dest="sub", required=True, parser_class=Parser)
    t = dsub.add_parser("summary", help="windows, flows, labeled fraction, phases, rates")
    t.add_argument("--run", default=None)
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_data_summary)
    t = dsub.add_parser("export", help="write a training-ready JSON Lines file")
    t.add_argument("--out", required=True)
    t.add_argument("--run", default=None)
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_data_export)
    t = dsub.add_parser("import", help="labeled data from elsewhere as a training-ready JSON Lines file "
                                       "(robust-ndt: the paper's tf.data datasets)")
    t.add_argument("source", choices=["robust-ndt"])
    t.add_argument("dir", metavar="DIR", help="the datasets folder, or one topology's, or one split's")
    t.add_argument("--out", required=True, help="the JSON Lines file to write ('ndt train --dataset' reads it)")
    t.add_argument("--topology", default=None, help="only this topology (5g_crosshaul, germany, passion)")
    t.add_argument("--split", default=None, choices=["training", "validation"])
    t.add_argument("--every", type=int, default=1, metavar="K", help="keep one row in K (default every row)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_data_import)

    t = sub.add_parser("train", help="train the virtual twin on the labeled store (or an exported file)")
    t.add_argument("--data", default=None)
    t.add_argument("--dataset", default=None, help="an exported JSON Lines file instead of the stores")
    t.add_argument("--run", action="append", help="train on this run only (repeatable)")
    t.add_argument("--warm-start", default=None, metavar="URI", help="start from registry://delay:vN")
    t.add_argument("--epochs", type=int, default=300)
    t.add_argument("--budget", type=float, default=300.0, help="time budget, seconds")
    t.add_argument("--patience", type=int, default=20)
    t.add_argument("--state", type=int, default=32)
    t.add_argument("--iterations", type=int, default=6)
    t.add_argument("--held-out", type=float, default=0.2, help="share of each phase held out for evaluation")
    t.add_argument("--promote", action="store_true", help="make the new version active")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    t = sub.add_parser("model", help="the model registry: list, show, promote, rollback")
    t.add_argument("action", choices=["list", "show", "promote", "rollback"])
    t.add_argument("ref", nargs="?", metavar="URI", help="registry://delay:vN or vN")
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_model)

    closed_loop.add_parsers(sub, Parser)
    whatif_cli.add_whatif_parser(sub)
    serve_cli.add_parser(sub)
    t = sub.add_parser("console", help="live terminal console on the closed loop (worst flows, SLA, model, events)")
    t.add_argument("--run", default=None, help="this run (default: the one whose loop status changed last)")
    t.add_argument("--refresh", type=float, default=1.0, help="seconds between refreshes")
    t.add_argument("--config", default=None, help="configuration file with the SLA policy")
    t.add_argument("--data", default=None)
    t.set_defaults(func=cmd_console)

    demo_mod.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `kill -USR1 PID` prints every thread's stack on stderr: where a long command is, without stopping it
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        args.func(args)
    except (CliError, LabError, TopologyError, ControllerError, ScheduleError, StoreError, TrafficError,
            RegistryError, SnapshotError, ConfigError) as exc:
        print(f"ndt: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ndt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
