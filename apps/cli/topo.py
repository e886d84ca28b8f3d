"""`ndt topo list|show`: the topologies ndt can build: built-in, generated, Zoo files, topohub."""

from __future__ import annotations

import argparse
from typing import Any

from apps.common.table import emit, print_table
from topologies import Topology
from topologies import builtin as builtin_topos
from topologies.resolve import load, search_dirs, zoo_files

from .base import CliError, Parser


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


def register(sub: argparse._SubParsersAction) -> None:
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
