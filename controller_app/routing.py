"""The controller's routing policy and its versions: per-link routing weights (a link's weight is
its propagation delay in ms unless set) and explicit paths pinned per host pair or per flow, every
change validated whole before anything moves, each accepted change a new `routing_version`, and
any earlier version's policy restorable. Pure logic over a topology: the OpenFlow side
(`controller_app.app`) installs what this decides.

A pin names links in order from the source host's switch to the destination host's; it must be
connected, visit no switch twice and use links that are up when it is set. A pinned path whose
link later goes down is set aside (the pair falls back to its weighted shortest path) until the
link is back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from topologies import Topology, TopologyError
from topologies.addressing import Plan
from topologies.routing import shortest_paths_from

#: Versions kept for `revert` (the oldest are dropped beyond this).
KEEP_VERSIONS = 500


class RoutingError(ValueError):
    """A routing change that cannot be applied; nothing was changed."""


@dataclass(frozen=True)
class Pin:
    src: str  # host names
    dst: str
    links: tuple[str, ...]
    flow: int | None = None  # one flow (its id) instead of every flow of the pair

    @property
    def key(self) -> str:
        return f"flow:{self.flow}" if self.flow is not None else f"{self.src}>{self.dst}"

    def to_dict(self) -> dict[str, Any]:
        return {"src": self.src, "dst": self.dst, "links": list(self.links), "flow": self.flow}


@dataclass
class Policy:
    weights: dict[str, float] = field(default_factory=dict)
    pins: dict[str, Pin] = field(default_factory=dict)

    def copy(self) -> Policy:
        return Policy(dict(self.weights), dict(self.pins))

    def to_dict(self) -> dict[str, Any]:
        return {"weights": dict(sorted(self.weights.items())),
                "pins": [p.to_dict() for _, p in sorted(self.pins.items())]}


@dataclass
class Version:
    version: int
    at: float
    by: str
    reason: str
    policy: Policy

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, "at": self.at, "by": self.by, "reason": self.reason,
                "weights": len(self.policy.weights), "pins": len(self.policy.pins)}


class Routing:
    """Weights, pins and versions for one topology. Not thread-safe: the caller holds its lock."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.plan = Plan(topo)
        self.policy = Policy()
        self.versions: list[Version] = [Version(0, time.time(), "controller", "start", Policy())]
        self._trees: dict[tuple[int, frozenset[str]], dict[int, list[int]]] = {}

    @property
    def version(self) -> int:
        return self.versions[-1].version

    # -- checking ---------------------------------------------------------------------------------
    def check_weights(self, weights: dict[str, Any]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for lid, w in weights.items():
            try:
                self.topo.link(lid)
            except TopologyError:
                raise RoutingError(f"unknown link {lid!r}") from None
            if w is None:
                out[lid] = None
                continue
            if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w <= 0:
                raise RoutingError(f"the weight of {lid} must be a number above 0, not {w!r}")
            out[lid] = float(w)
        return out

    def check_pin(self, src: str, dst: str, links: list[str], down: set[str], flow: int | None = None) -> Pin:
        """A pin for the hosts `src` -> `dst` (names, IPs or nodes) along `links`, or RoutingError."""
        try:
            hs, hd = self.plan.resolve_host(src), self.plan.resolve_host(dst)
        except (KeyError, TopologyError):
            bad = src if not self._host_known(src) else dst
            raise RoutingError(f"unknown host {bad!r}") from None
        if hs.node == hd.node:
            raise RoutingError(f"{hs.name} and {hd.name} share a switch: there is no path to pin")
        if not links:
            raise RoutingError("a pinned path needs at least one link")
        self.nodes_of(hs.node, hd.node, list(links), down)
        return Pin(hs.name, hd.name, tuple(links), flow)

    def nodes_of(self, src_node: int, dst_node: int, links: list[str], down: set[str]) -> list[int]:
        """The switches a link sequence visits from src_node, checked to end at dst_node."""
        nodes = [src_node]
        for lid in links:
            try:
                lk = self.topo.link(lid)
            except TopologyError:
                raise RoutingError(f"unknown link {lid!r} in the path") from None
            if lid in down:
                raise RoutingError(f"the path uses {lid}, which is down")
            here = nodes[-1]
            if here not in (lk.a, lk.b):
                raise RoutingError(f"the path is not connected: {lid} does not touch "
                                   f"{Plan.switch_name(here)}")
            nxt = lk.b if lk.a == here else lk.a
            if nxt in nodes:
                raise RoutingError(f"the path visits {Plan.switch_name(nxt)} twice")
            nodes.append(nxt)
        if nodes[-1] != dst_node:
            raise RoutingError(f"the path ends at {Plan.switch_name(nodes[-1])}, not at "
                               f"{Plan.switch_name(dst_node)}")
        return nodes

    def _host_known(self, ref: str) -> bool:
        try:
            self.plan.resolve_host(ref)
            return True
        except (KeyError, TopologyError):
            return False

    # -- routes -----------------------------------------------------------------------------------
    def route(self, src_node: int, dst_node: int, down: set[str], flow: int | None = None,
              policy: Policy | None = None) -> list[int] | None:
        """The switches a flow from src_node to dst_node takes under `policy` (the current one by
        default): its flow pin, else its pair's pin, else the weighted shortest path on the links
        that are up; None when unreachable."""
        policy = policy or self.policy
        src, dst = Plan.host_name(src_node), Plan.host_name(dst_node)
        for key in ((f"flow:{flow}",) if flow is not None else ()) + (f"{src}>{dst}",):
            pin = policy.pins.get(key)
            if pin is not None and not set(pin.links) & down:
                return self.nodes_of(src_node, dst_node, list(pin.links), down)
        if policy is self.policy:
            cache_key = (src_node, frozenset(down))
            tree = self._trees.get(cache_key)
            if tree is None:
                tree = self._trees[cache_key] = shortest_paths_from(self.topo, src_node, down, policy.weights)
        else:
            tree = shortest_paths_from(self.topo, src_node, down, policy.weights)
        return tree.get(dst_node)

    def pin_active(self, pin: Pin, down: set[str]) -> bool:
        return not set(pin.links) & down

    def forget_routes(self) -> None:
        """Link state changed: the cached shortest paths are stale."""
        self._trees.clear()

    # -- changes ----------------------------------------------------------------------------------
    def commit(self, policy: Policy, by: str, reason: str) -> Version:
        """Make `policy` current as a new version (the caller validated it and moves the flows)."""
        self.policy = policy
        self._trees.clear()
        return self._append(by, reason)

    def bump(self, by: str, reason: str) -> Version:
        """A new version with the same policy: the routes changed for another reason (a link)."""
        self._trees.clear()
        return self._append(by, reason)

    def _append(self, by: str, reason: str) -> Version:
        v = Version(self.version + 1, time.time(), by, reason, self.policy.copy())
        self.versions.append(v)
        del self.versions[:-KEEP_VERSIONS]
        return v

    def at_version(self, version: int) -> Version:
        for v in self.versions:
            if v.version == version:
                return v
        oldest = self.versions[0].version
        raise RoutingError(f"no routing version {version} (kept: {oldest}-{self.version})")

    def with_weights(self, weights: dict[str, float | None], replace: bool = False) -> Policy:
        new = self.policy.copy()
        if replace:
            new.weights = {}
        for lid, w in weights.items():
            if w is None:
                new.weights.pop(lid, None)
            else:
                new.weights[lid] = w
        return new

    def with_pin(self, pin: Pin) -> Policy:
        new = self.policy.copy()
        new.pins[pin.key] = pin
        return new

    def without_pin(self, key: str) -> Policy:
        if key not in self.policy.pins:
            raise RoutingError(f"no pin {key}")
        new = self.policy.copy()
        del new.pins[key]
        return new

    def view(self, down: set[str], history: int = 20) -> dict[str, Any]:
        return {"version": self.version,
                "weights": dict(sorted(self.policy.weights.items())),
                "pins": [p.to_dict() | {"active": self.pin_active(p, down)}
                         for _, p in sorted(self.policy.pins.items())],
                "history": [v.summary() for v in self.versions[-history:]]}
