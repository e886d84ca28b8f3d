"""Topologies of the `topohub` package (PyPI, MIT: Topology Zoo, SNDlib, Gabriel graphs of 5-500
nodes, CAIDA, synthetic backbones), named `topohub:GROUP/NAME`: `topohub:sndlib/germany50`,
`topohub:gabriel/50/3`, `topohub:topozoo/Abilene`.

Their node-link graphs go through the Zoo loader's rules (topologies/zoo.py): every edge carries
its length (`dist`, km), so delays come from it at 5 us per km; no edge names a capacity or a
buffer, so links get the default capacity and the lab's --queue. Node names come from `name`;
positions are (longitude, latitude) except in the Gabriel graphs, whose plane coordinates are
not kept as coordinates.
"""

from __future__ import annotations

import importlib.resources
import re
from collections import Counter
from pathlib import Path
from typing import Any

import networkx as nx

from .model import Topology, TopologyError
from .zoo import from_graph

PREFIX = "topohub:"
_KEY = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*")


def _package() -> Any:
    try:
        import topohub
    except ImportError:
        raise TopologyError("topohub is not installed; run 'make install'") from None
    return topohub


def load_topohub(spec: str) -> Topology:
    """The topology `spec` (`topohub:GROUP/NAME`) names."""
    key = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    if not _KEY.fullmatch(key) or ".." in key.split("/"):
        raise TopologyError(f"not a topohub name: {key!r}; use GROUP/NAME, e.g. topohub:sndlib/germany50")
    try:
        data = _package().get(key)
    except (KeyError, ValueError, RuntimeError):
        groups = ", ".join(sorted(catalogue()))
        raise TopologyError(f"topohub has no topology {key!r} (groups: {groups}; "
                            "'ndt topo list topohub:GROUP' lists a group)") from None
    g = nx.MultiGraph(nx.node_link_graph(data, edges="edges"))
    planar = key.startswith("gabriel/")
    for _, attrs in g.nodes(data=True):
        attrs["label"] = attrs.get("name")
        pos = attrs.pop("pos", None)
        if pos is not None and not planar:
            attrs["Longitude"], attrs["Latitude"] = pos
    return from_graph(g, f"topohub:{key}", f"topohub:{key}")


def names(group: str | None = None) -> list[str]:
    """Every topohub key (GROUP/NAME), or those of one group."""
    root = _package_root()
    if root is None:
        return []
    keys = sorted(str(p.relative_to(root))[:-5] for p in root.rglob("*.json"))
    return [k for k in keys if group is None or k.startswith(group.rstrip("/") + "/")]


def catalogue() -> dict[str, int]:
    """How many topologies each topohub group holds ({} when topohub is missing)."""
    return dict(sorted(Counter(k.split("/")[0] for k in names()).items()))


def _package_root() -> Path | None:
    try:
        import topohub
    except ImportError:
        return None
    return Path(str(importlib.resources.files(topohub) / "data"))
