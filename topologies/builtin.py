"""Built-in topologies for tests and the demo. `default` is what `make demo` runs."""

from __future__ import annotations

from collections.abc import Callable

from .model import Topology, build


def line3() -> Topology:
    """Three switches in a line: the smallest network with a transit switch."""
    return build("line3", ["a", "b", "c"], [(0, 1, 10, 2.0), (1, 2, 10, 2.0)])


def diamond() -> Topology:
    """Two paths between the corners: the short one (0-1-3) and a detour (0-2-3)."""
    return build("diamond", ["w", "n", "s", "e"],
                 [(0, 1, 10, 2.0), (1, 3, 10, 2.0), (0, 2, 10, 5.0), (2, 3, 10, 5.0)])


def mesh6() -> Topology:
    """Six switches, eight links, mixed capacities: one 5 Mbit/s bottleneck that flows share."""
    return build(
        "mesh6",
        ["ams", "bru", "par", "fra", "mil", "zrh"],
        [
            (0, 1, 20, 1.0), (0, 3, 20, 2.0), (1, 2, 20, 1.5), (2, 3, 5, 2.5),
            (2, 4, 10, 3.0), (3, 5, 10, 1.5), (4, 5, 20, 1.0), (1, 3, 10, 2.0),
        ],
    )


CATALOGUE: dict[str, Callable[[], Topology]] = {
    "line3": line3,
    "diamond": diamond,
    "mesh6": mesh6,
}
ALIASES = {"default": "mesh6"}
DEFAULT = "default"


def get(name: str) -> Topology | None:
    maker = CATALOGUE.get(ALIASES.get(name, name))
    return maker() if maker else None
