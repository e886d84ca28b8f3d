"""The addressing plan that maps a Topology onto a lab: names, datapath ids, ports, IP and MAC.

Both the lab (which builds the network) and the controller (which routes it) derive the same plan
from the same topology, so nothing about wiring has to be discovered or guessed.

Node i becomes switch `s{i+1}` (datapath id i+1) with host `h{i+1}` on port 1; the links of the
topology take ports 2, 3, ... on each switch in link order. Host addresses come from 10.0.0.0/8.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import cached_property

from .model import Topology

HOST_PORT = 1
HOST_NET = ipaddress.IPv4Network("10.0.0.0/8")
#: The control plane's defaults: the controller's OpenFlow and REST ports, on the loopback.
CONTROL_HOST = "127.0.0.1"
OF_PORT = 6653
REST_PORT = 8080


@dataclass(frozen=True)
class HostAddr:
    name: str
    node: int
    ip: str
    mac: str
    switch: str
    dpid: int
    port: int


@dataclass(frozen=True)
class LinkPorts:
    id: str
    a: int
    b: int
    a_port: int
    b_port: int


class Plan:
    """Names and numbers of every switch, host and link port for one topology."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        next_port = {n.id: HOST_PORT + 1 for n in topo.nodes}
        ports = []
        for link in topo.links:
            ports.append(LinkPorts(link.id, link.a, link.b, next_port[link.a], next_port[link.b]))
            next_port[link.a] += 1
            next_port[link.b] += 1
        self.link_ports: dict[str, LinkPorts] = {p.id: p for p in ports}

    @staticmethod
    def switch_name(node: int) -> str:
        return f"s{node + 1}"

    @staticmethod
    def host_name(node: int) -> str:
        return f"h{node + 1}"

    @staticmethod
    def dpid(node: int) -> int:
        return node + 1

    @staticmethod
    def dpid_str(node: int) -> str:
        return f"{node + 1:016x}"

    @staticmethod
    def node_of_dpid(dpid: int) -> int:
        return dpid - 1

    @cached_property
    def hosts(self) -> list[HostAddr]:
        out = []
        for n in self.topo.nodes:
            k = n.id + 1
            ip = str(HOST_NET.network_address + k)
            mac = ":".join(f"{b:02x}" for b in (0, 0, (k >> 24) & 255, (k >> 16) & 255, (k >> 8) & 255, k & 255))
            out.append(HostAddr(self.host_name(n.id), n.id, ip, mac, self.switch_name(n.id),
                                self.dpid(n.id), HOST_PORT))
        return out

    @cached_property
    def host_by_ip(self) -> dict[str, HostAddr]:
        return {h.ip: h for h in self.hosts}

    @cached_property
    def host_by_name(self) -> dict[str, HostAddr]:
        return {h.name: h for h in self.hosts}

    @cached_property
    def port_to_link(self) -> dict[tuple[int, int], str]:
        """(node, port) -> link id."""
        out = {}
        for p in self.link_ports.values():
            out[(p.a, p.a_port)] = p.id
            out[(p.b, p.b_port)] = p.id
        return out

    def out_port(self, link_id: str, from_node: int) -> int:
        p = self.link_ports[link_id]
        return p.a_port if from_node == p.a else p.b_port

    def resolve_host(self, ref: str) -> HostAddr:
        """A host by name (h3), IP, switch name (s3), node id or node name."""
        if ref in self.host_by_name:
            return self.host_by_name[ref]
        if ref in self.host_by_ip:
            return self.host_by_ip[ref]
        if ref.startswith("s") and ref[1:].isdigit() and 1 <= int(ref[1:]) <= len(self.hosts):
            return self.hosts[int(ref[1:]) - 1]
        return self.hosts[self.topo.node(ref).id]
