"""What-if scenarios: a union of typed models keyed on `type`, each with its own `apply(network)`
returning the network after it (the input is not changed). Validated where the request is read
(`apps.whatif.request.WhatIfRequest`): a bad field is one line naming it; a link or node the
snapshot's topology does not have is a `WhatIfError` from `apply`.

    link_failure     targets: the link ids that fail
    node_failure     targets: node ids or names (the node's own traffic is lost)
    capacity_change  changes: [{link, capacity_mbps}]
    traffic_growth   changes: [{factor}]; targets: flow keys, or none for every flow
    add_link         changes: [{a, b, capacity_mbps, delay_ms}]
    routing_weight   changes: [{link, weight}]
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from topologies import Link

from .network import Network, WhatIfError, link_id, node_id

Ref = str | int


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _positive(value: float, info: ValidationInfo) -> float:
    if not value > 0:
        raise ValueError(f"'{info.field_name}' must be positive, got {value:g}")
    return value


#: A finite number above 0; a bad one is "'<field>' must be positive, got <value>".
Positive = Annotated[float, Field(allow_inf_nan=False), AfterValidator(_positive)]


class _Scenario(_Strict):
    def apply(self, net: Network) -> Network:
        raise NotImplementedError

    @staticmethod
    def _copy(net: Network) -> Network:
        return replace(net, demands=list(net.demands), down=set(net.down), weights=dict(net.weights),
                       capacity=dict(net.capacity), failed_nodes=set(net.failed_nodes), pins=dict(net.pins))


class LinkFailure(_Scenario):
    type: Literal["link_failure"]
    targets: list[Ref] = Field(min_length=1, description="the link ids that fail")

    def apply(self, net: Network) -> Network:
        out = self._copy(net)
        out.down |= {link_id(net.topo, t) for t in self.targets}
        return out


class NodeFailure(_Scenario):
    type: Literal["node_failure"]
    targets: list[Ref] = Field(min_length=1, description="the nodes that fail (ids or names)")

    def apply(self, net: Network) -> Network:
        out = self._copy(net)
        nodes = {node_id(net.topo, t) for t in self.targets}
        out.failed_nodes |= nodes
        out.down |= {lk.id for lk in net.topo.links if lk.a in nodes or lk.b in nodes}
        return out


class NewCapacity(_Strict):
    link: Ref
    capacity_mbps: Positive



class CapacityChange(_Scenario):
    type: Literal["capacity_change"]
    changes: list[NewCapacity] = Field(min_length=1)

    def apply(self, net: Network) -> Network:
        out = self._copy(net)
        for c in self.changes:
            out.capacity[link_id(net.topo, c.link)] = c.capacity_mbps
        return out


class Growth(_Strict):
    factor: Positive



class TrafficGrowth(_Scenario):
    type: Literal["traffic_growth"]
    targets: list[str] = Field(default_factory=list, description="flow keys (none: every flow)")
    changes: list[Growth] = Field(min_length=1, max_length=1)

    def apply(self, net: Network) -> Network:
        keys = set(self.targets)
        unknown = keys - {d.key for d in net.demands}
        if unknown:
            raise WhatIfError(f"unknown flow(s): {', '.join(sorted(unknown))}")
        factor = self.changes[0].factor
        out = self._copy(net)
        out.demands = [replace(d, offered_bps=d.offered_bps * factor) if not keys or d.key in keys else d
                       for d in net.demands]
        return out


class NewLink(_Strict):
    a: Ref
    b: Ref
    capacity_mbps: Positive
    delay_ms: Positive



class AddLink(_Scenario):
    type: Literal["add_link"]
    changes: list[NewLink] = Field(min_length=1)

    def apply(self, net: Network) -> Network:
        links = list(net.topo.links)
        for c in self.changes:
            a, b = sorted((node_id(net.topo, c.a), node_id(net.topo, c.b)))
            if a == b:
                raise WhatIfError("add_link needs two different nodes")
            links.append(Link(f"L{len(links)}", a, b, c.capacity_mbps, c.delay_ms))
        out = self._copy(net)
        out.topo = replace(net.topo, links=tuple(links))
        return out


class NewWeight(_Strict):
    link: Ref
    weight: Positive



class RoutingWeight(_Scenario):
    type: Literal["routing_weight"]
    changes: list[NewWeight] = Field(min_length=1)

    def apply(self, net: Network) -> Network:
        out = self._copy(net)
        for c in self.changes:
            out.weights[link_id(net.topo, c.link)] = c.weight
        return out


class NewPin(_Strict):
    src: Ref = Field(description="source host (h3) or node")
    dst: Ref = Field(description="destination host or node")
    links: list[Ref] = Field(min_length=1, description="link ids in order from the source's switch")


def _host_node(topo: Any, ref: Ref) -> int:
    if isinstance(ref, str) and ref[:1] == "h" and ref[1:].isdigit():
        ref = int(ref[1:]) - 1
    return node_id(topo, ref)


class RoutingPolicy(_Scenario):
    """The controller's northbound knobs: link weights and paths pinned per host pair (what
    `PUT /routing` takes), over whatever the network had."""

    weights: dict[str, Positive] = Field(default_factory=dict)
    pins: list[NewPin] = Field(default_factory=list)

    def apply(self, net: Network) -> Network:
        out = self._copy(net)
        for ref, w in self.weights.items():
            out.weights[link_id(net.topo, ref)] = w
        for p in self.pins:
            src, dst = _host_node(net.topo, p.src), _host_node(net.topo, p.dst)
            nodes = [src]
            for ref in p.links:
                lk = net.topo.link(link_id(net.topo, ref))
                if nodes[-1] not in (lk.a, lk.b):
                    raise WhatIfError(f"pin {p.src}->{p.dst}: link {lk.id} does not leave node {nodes[-1]}")
                if lk.id in net.down:
                    raise WhatIfError(f"pin {p.src}->{p.dst}: link {lk.id} is down")
                nodes.append(lk.b if nodes[-1] == lk.a else lk.a)
            if nodes[-1] != dst or len(set(nodes)) != len(nodes):
                raise WhatIfError(f"pin {p.src}->{p.dst}: the links do not make a loop-free path to {p.dst}")
            out.pins[(src, dst)] = nodes
        return out


class RoutingChange(RoutingPolicy):
    """A routing change as a scenario; an optimizer's plan is one of these."""

    type: Literal["routing_change"]

    def apply(self, net: Network) -> Network:
        if not self.weights and not self.pins:
            raise WhatIfError("routing_change changes nothing: give weights or pins")
        return super().apply(net)


Scenario = Annotated[LinkFailure | NodeFailure | CapacityChange | TrafficGrowth | AddLink | RoutingWeight
                     | RoutingChange, Field(discriminator="type")]
SCENARIOS = ("link_failure", "node_failure", "capacity_change", "traffic_growth", "add_link", "routing_weight",
             "routing_change")
