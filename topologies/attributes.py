"""A topology file's own link values: explicit capacity, delay and buffer attributes.

Files written for emulation (the paper's GML, SNDlib exports, our JSON) state each link's values
outright; those win over what a Zoo file lets us infer (speed labels, coordinates):
- capacity: edge `capacity` or `bandwidth`, Mbit/s;
- delay: edge `delay`, ms (propagation); else edge `dist` or `distance`, km of fibre (topohub's
  edges carry `dist`), at 5 us per km;
- buffer: edge `queue` or `buffer`, packets; else the node attribute `queueSize` (packets) of the
  link's endpoints (the smaller one when they differ: one value per link).

A value that is present but is not a positive number (a buffer of 0 included) is an error, never
silently replaced by a default. A delay of 0 is allowed (co-located nodes).
"""

from __future__ import annotations

import math
from typing import Any

from .model import TopologyError

CAPACITY_KEYS = ("capacity", "bandwidth")
DELAY_KEYS = ("delay",)
DISTANCE_KEYS = ("dist", "distance")
EDGE_QUEUE_KEYS = ("queue", "buffer")
NODE_QUEUE_KEYS = ("queueSize",)


def _number(value: Any, what: str, where: str, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        need = "a number >= 0" if allow_zero else "a positive number"
        raise TopologyError(f"{where}: {what} {value!r} is not {need}")
    return x


def _first(attrs: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any] | None:
    for key in keys:
        if key in attrs and attrs[key] is not None and attrs[key] != "":
            return key, attrs[key]
    return None


def explicit_capacity(attrs: dict[str, Any], where: str) -> float | None:
    """Mbit/s named by the edge's `capacity`/`bandwidth` attribute, or None."""
    found = _first(attrs, CAPACITY_KEYS)
    return None if found is None else _number(found[1], f"{found[0]} (Mbit/s)", where)


def explicit_delay(attrs: dict[str, Any], where: str) -> float | None:
    """Propagation delay in ms named by the edge's `delay` attribute, or None."""
    found = _first(attrs, DELAY_KEYS)
    return None if found is None else _number(found[1], f"{found[0]} (ms)", where, allow_zero=True)


def explicit_distance_km(attrs: dict[str, Any], where: str) -> float | None:
    """Length in km named by the edge's `dist`/`distance` attribute, or None."""
    found = _first(attrs, DISTANCE_KEYS)
    return None if found is None else _number(found[1], f"{found[0]} (km)", where, allow_zero=True)


def _packets(value: Any, what: str, where: str) -> int:
    x = _number(value, what, where)
    if x != int(x):
        raise TopologyError(f"{where}: {what} {value!r} is not a whole number of packets")
    return int(x)


def edge_queue(attrs: dict[str, Any], where: str) -> int | None:
    """Buffer in packets named by the edge's `queue`/`buffer` attribute, or None."""
    found = _first(attrs, EDGE_QUEUE_KEYS)
    return None if found is None else _packets(found[1], f"{found[0]} (packets)", where)


def node_queue(attrs: dict[str, Any], where: str) -> int | None:
    """Buffer in packets named by the node's `queueSize` attribute, or None."""
    found = _first(attrs, NODE_QUEUE_KEYS)
    return None if found is None else _packets(found[1], f"{found[0]} (packets)", where)
