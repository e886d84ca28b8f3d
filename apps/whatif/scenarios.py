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
from typing import Annotated, Literal

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


Scenario = Annotated[LinkFailure | NodeFailure | CapacityChange | TrafficGrowth | AddLink | RoutingWeight,
                     Field(discriminator="type")]
SCENARIOS = ("link_failure", "node_failure", "capacity_change", "traffic_growth", "add_link", "routing_weight")
