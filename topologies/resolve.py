"""Turn a TOPO argument into a Topology: a built-in name, a generator spec, a topohub name, or a file path."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import builtin
from .generate import from_spec
from .model import Topology, TopologyError
from .topohub_source import PREFIX as TOPOHUB
from .topohub_source import load_topohub
from .zoo import load_zoo


def search_dirs() -> list[Path]:
    """Folders searched for topology files named without a path: $NDT_TOPOLOGY_PATH
    (colon-separated), else ../shared/topologyzoo and the paper's ../shared/robust-ndt/topologies
    beside the project, when present."""
    env = os.environ.get("NDT_TOPOLOGY_PATH")
    if env:
        return [Path(p) for p in env.split(":") if p]
    here = Path(__file__).resolve().parents[1]
    candidates = [base / "shared" / sub for base in (here.parent, Path.cwd().parent)
                  for sub in ("topologyzoo", "robust-ndt/topologies")]
    out: list[Path] = []
    for c in candidates:
        if c.is_dir() and c.resolve() not in [o.resolve() for o in out]:
            out.append(c)
    return out


def zoo_files() -> list[Path]:
    files = []
    for d in search_dirs():
        if d.is_dir():
            files += sorted(p for p in d.iterdir() if p.suffix.lower() in (".gml", ".graphml", ".json"))
    return files


def load(spec: str) -> Topology:
    """Resolve `spec`: built-in name, `random:N:M:SEED`, `topohub:GROUP/NAME`, or a .gml/.graphml/.json path."""
    if not spec or not spec.strip():
        raise TopologyError("empty topology name")
    topo = builtin.get(spec)
    if topo is not None:
        return topo
    if spec.startswith("random:"):
        return from_spec(spec)
    if spec.startswith(TOPOHUB):
        return load_topohub(spec)
    path = Path(spec)
    if not path.suffix and os.sep not in spec:
        named = [p for p in zoo_files() if p.stem.lower() == spec.lower()]
        if named:
            path = named[0]
    if path.suffix.lower() == ".json":
        return load_json(path)
    if path.suffix.lower() in (".gml", ".graphml") or path.exists():
        return load_zoo(path)
    known = ", ".join(sorted([*builtin.CATALOGUE, *builtin.ALIASES]))
    raise TopologyError(f"unknown topology {spec!r}: not a built-in ({known}), "
                        "not random:N:M:SEED or topohub:GROUP/NAME, and no such file")


def load_json(path: Path) -> Topology:
    if not path.exists():
        raise TopologyError(f"topology file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TopologyError(f"{path.name}: not valid JSON: {exc}") from None
    return Topology.from_dict(data)
