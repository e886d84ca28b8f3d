"""Loader for Topology Zoo GML and GraphML files.

Rules (also in the README):
- a file's own edge attributes win (topologies/attributes.py): `capacity`/`bandwidth` (Mbit/s),
  `delay` (ms), `queue`/`buffer` or the nodes' `queueSize` (packets);
- otherwise propagation delay from the edge's length (`dist`, km) or else from the great-circle
  distance between node coordinates (5 us per km); a link with neither gets DEFAULT_DELAY_MS;
- capacity from `LinkSpeedRaw` or a speed label; unlabeled links get the file's most common
  labeled capacity, or DEFAULT_CAPACITY_MBPS when no link in the file names a speed;
- parallel edges merge into one link: capacities add, the shorter delay is kept;
- self-loops are dropped; a disconnected file is reduced to its largest component with a note
  (or refused with `strict=True`);
- node names come from labels, made unique with a " #k" suffix; they are data, never shell words.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import networkx as nx

from .attributes import edge_queue, explicit_capacity, explicit_delay, explicit_distance_km, node_queue
from .geo import great_circle_km, propagation_delay_ms
from .linkspeed import capacity_from_attrs
from .model import Topology, TopologyError, build

DEFAULT_DELAY_MS = 1.0
DEFAULT_CAPACITY_MBPS = 10.0


def read_graph(path: Path) -> nx.MultiGraph:
    """Parse a .gml or .graphml file into an undirected multigraph, with one-line errors."""
    if not path.exists():
        raise TopologyError(f"topology file not found: {path}")
    if not path.is_file():
        raise TopologyError(f"not a file: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".gml":
            text = path.read_text(encoding="utf-8", errors="replace")
            if not re.search(r"^\s*graph\s*\[", text, flags=re.M):
                raise TopologyError(f"{path.name}: not a GML graph (no 'graph [' block)")
            # Zoo files have parallel edges without declaring a multigraph; declare it.
            text = re.sub(r"^(\s*graph\s*\[)", r"\1\n  multigraph 1", text, count=1, flags=re.M)
            g = nx.parse_gml(text, label="id")
        elif suffix == ".graphml":
            g = nx.read_graphml(path, force_multigraph=True)
        else:
            raise TopologyError(f"{path.name}: unknown topology format {suffix or '(none)'}; "
                                "use .gml, .graphml or .json")
    except TopologyError:
        raise
    except Exception as exc:  # networkx raises many types for malformed input
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TopologyError(f"{path.name}: not a readable graph: {msg}") from None
    return nx.MultiGraph(g.to_undirected() if g.is_directed() else g)


def load_zoo(path: str | Path, strict: bool = False) -> Topology:
    """Load a Zoo GML/GraphML file into a Topology."""
    path = Path(path)
    g = read_graph(path)
    return from_graph(g, str(g.graph.get("label") or g.graph.get("Network") or path.stem), path.name, strict)


def from_graph(g: nx.MultiGraph, name: str, where: str, strict: bool = False) -> Topology:
    """A Topology from an undirected multigraph under the rules above; `where` names the source
    in error lines."""
    if g.number_of_nodes() == 0:
        raise TopologyError(f"{where}: the graph is empty")
    notes: list[str] = []
    loops = list(nx.selfloop_edges(g, keys=True))
    if loops:
        g.remove_edges_from(loops)
        notes.append(f"dropped {len(loops)} self-loop(s)")
    if g.number_of_edges() == 0:
        raise TopologyError(f"{where}: the graph has no edges")
    comps = sorted(nx.connected_components(g), key=len, reverse=True)
    if len(comps) > 1:
        if strict:
            raise TopologyError(f"{where}: disconnected ({len(comps)} components)")
        dropped = sum(len(c) for c in comps[1:])
        g = g.subgraph(comps[0]).copy()
        notes.append(f"disconnected: kept the largest component ({len(comps[0])} nodes), "
                     f"dropped {dropped} node(s) in {len(comps) - 1} other component(s)")
        if g.number_of_edges() == 0:
            raise TopologyError(f"{where}: no component has an edge")

    order = sorted(g.nodes, key=_node_sort_key)
    index = {n: i for i, n in enumerate(order)}
    names = _unique_names([_label(n, g.nodes[n]) for n in order])
    coords = [_coords(g.nodes[n]) for n in order]

    node_queues = [node_queue(g.nodes[n], f"{where}: node {_label(n, g.nodes[n])!r}") for n in order]
    edge_list = [(u, v, d, f"{where}: edge {_label(u, g.nodes[u])!r}-{_label(v, g.nodes[v])!r}")
                 for u, v, d in g.edges(data=True)]
    explicit = [explicit_capacity(d, at) for _, _, d, at in edge_list]
    labeled = [c for (_, _, d, _), e in zip(edge_list, explicit, strict=True)
               if e is None and (c := capacity_from_attrs(d)) is not None]
    if labeled:
        default_cap = Counter(round(c, 3) for c in labeled).most_common(1)[0][0]
        cap_rule = f"the file's most common labeled capacity, {default_cap:g} Mbit/s"
    else:
        default_cap = DEFAULT_CAPACITY_MBPS
        cap_rule = f"the default {DEFAULT_CAPACITY_MBPS:g} Mbit/s"

    no_coord_rule = f"the default {DEFAULT_DELAY_MS:g} ms (a node without coordinates)"
    merged: dict[tuple[int, int], list] = {}
    sources: Counter[tuple[str, str]] = Counter()
    parallel = 0
    for (u, v, d, edge_where), cap in zip(edge_list, explicit, strict=True):
        a, b = sorted((index[u], index[v]))
        if cap is not None:
            sources["capacity", "the file's capacity attribute"] += 1
        elif (cap := capacity_from_attrs(d)) is not None:
            sources["capacity", "a Zoo speed field or label"] += 1
        else:
            sources["capacity", cap_rule] += 1
            cap = default_cap
        delay = explicit_delay(d, edge_where)
        km = explicit_distance_km(d, edge_where) if delay is None else None
        (la, oa), (lb, ob) = coords[a], coords[b]
        if delay is not None:
            sources["delay", "the file's delay attribute"] += 1
        elif km is not None:
            sources["delay", "the edge's length (dist, km)"] += 1
            delay = propagation_delay_ms(km)
        elif la is None or lb is None or oa is None or ob is None:
            sources["delay", no_coord_rule] += 1
            delay = DEFAULT_DELAY_MS
        else:
            sources["delay", "the great-circle distance between the nodes' coordinates"] += 1
            delay = propagation_delay_ms(great_circle_km(la, oa, lb, ob))
        queue = edge_queue(d, edge_where)
        ends = [q for q in (node_queues[a], node_queues[b]) if q is not None]
        if queue is not None:
            sources["buffer", "the file's edge queue/buffer attribute"] += 1
        elif ends:
            sources["buffer", "the nodes' queueSize attribute"] += 1
            queue = min(ends)
        else:
            sources["buffer", "none in the file (the lab's --queue)"] += 1
        if (a, b) in merged:
            parallel += 1
            m = merged[(a, b)]
            m[0] += cap
            m[1] = min(m[1], delay)
            m[2] = queue if m[2] is None else m[2] if queue is None else min(m[2], queue)
        else:
            merged[(a, b)] = [cap, delay, queue]
    if parallel:
        notes.append(f"merged {parallel} parallel edge(s): capacities added, shorter delay and smaller buffer kept")
    unlabeled = sources["capacity", cap_rule]
    if unlabeled:
        notes.append(f"{unlabeled} edge(s) without a capacity attribute or speed label got {cap_rule}")
    no_coord = sources["delay", no_coord_rule]
    if no_coord:
        notes.append(f"{no_coord} edge(s) without a delay attribute, touching a node without coordinates, "
                     f"got the default delay {DEFAULT_DELAY_MS:g} ms")
    provenance = tuple((what, source, n) for (what, source), n in sorted(sources.items()))
    edges = [(a, b, round(c, 6), round(dl, 6), q) for (a, b), (c, dl, q) in sorted(merged.items())]
    return build(name, names, edges, coords=coords, notes=tuple(notes), sources=provenance)


def _node_sort_key(n: object) -> tuple[int, object]:
    try:
        return (0, int(n))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return (1, str(n))


def _label(node: object, attrs: dict) -> str:
    label = attrs.get("label")
    text = str(label).strip() if label is not None else ""
    return text or f"n{node}"


def _unique_names(names: list[str]) -> list[str]:
    counts: Counter[str] = Counter()
    out = []
    for nm in names:
        counts[nm] += 1
        out.append(nm if counts[nm] == 1 else f"{nm} #{counts[nm]}")
    return out


def _coords(attrs: dict) -> tuple[float | None, float | None]:
    try:
        lat, lon = attrs.get("Latitude"), attrs.get("Longitude")
        if lat is None or lon is None:
            return (None, None)
        return (float(lat), float(lon))
    except (TypeError, ValueError):
        return (None, None)
