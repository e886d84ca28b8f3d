"""What the controller knows about the network, independent of OpenFlow: switches and their
connection state, link state and capacity, every flow with its path and counters, port counters
and the rates derived from them. Thread-safe: the OpenFlow event thread writes, REST reads.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from topologies import Topology
from topologies.addressing import HOST_PORT, Plan
from topologies.routing import path_delay_ms, path_links

from .routing import Policy, Routing

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


@dataclass(frozen=True)
class FlowKey:
    src_ip: str
    dst_ip: str
    proto: int
    sport: int = 0
    dport: int = 0


@dataclass
class Flow:
    id: int
    key: FlowKey
    src: str
    dst: str
    nodes: list[int]
    links: list[str]
    first_seen: float
    last_seen: float
    packets: int = 0
    bytes: int = 0
    rate_bps: float = 0.0
    pkt_rate: float = 0.0
    active: bool = True
    reroutes: int = 0
    _sample: tuple[float, int, int] | None = field(default=None, repr=False)


@dataclass
class PortCounters:
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_packets: int = 0
    tx_packets: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    tx_bps: float = 0.0
    rx_bps: float = 0.0
    at: float = 0.0


class NetworkState:
    def __init__(self, topo: Topology) -> None:
        self.lock = threading.RLock()
        self.topo = topo
        self.plan = Plan(topo)
        self.capacity = {lk.id: lk.capacity_mbps for lk in topo.links}
        self.link_up = {lk.id: True for lk in topo.links}
        self.connected: dict[int, bool] = {}
        self.ready: dict[int, bool] = {}
        self.flows: dict[FlowKey, Flow] = {}
        self.by_id: dict[int, Flow] = {}
        self.ports: dict[tuple[int, int], PortCounters] = {}
        self.port_up: dict[tuple[int, int], bool] = {}
        self.routing = Routing(topo)
        self._next_id = 1

    # -- routing ----------------------------------------------------------------------------------
    @property
    def routing_version(self) -> int:
        return self.routing.version

    def down_links(self) -> list[str]:
        return [k for k, v in self.link_up.items() if not v]

    def route(self, src_node: int, dst_node: int, flow: int | None = None,
              policy: Policy | None = None) -> list[int] | None:
        """The path the routing policy (`controller_app.routing`: weights, pins) gives on the links
        that are up: by default the shortest by propagation delay."""
        with self.lock:
            return self.routing.route(src_node, dst_node, set(self.down_links()), flow, policy)

    def hops(self, nodes: list[int], dst_node: int) -> list[tuple[int, int]]:
        """(dpid, out_port) for every switch on a node path ending at dst_node's host."""
        out = []
        for i, node in enumerate(nodes):
            if i + 1 < len(nodes):
                link = self.topo.link_between(node, nodes[i + 1]).id
                out.append((Plan.dpid(node), self.plan.out_port(link, node)))
            else:
                out.append((Plan.dpid(node), HOST_PORT))
        return out

    def path_info(self, src: str, dst: str) -> dict[str, Any]:
        """The current path between two hosts (KeyError: unknown host; None path: unreachable)."""
        hs, hd = self.plan.resolve_host(src), self.plan.resolve_host(dst)
        with self.lock:
            nodes = self.route(hs.node, hd.node)
        if nodes is None:
            return {"src": hs.name, "dst": hd.name, "reachable": False}
        return {
            "src": hs.name, "dst": hd.name, "reachable": True,
            "nodes": nodes,
            "switches": [Plan.dpid_str(n) for n in nodes],
            "switch_names": [Plan.switch_name(n) for n in nodes],
            "links": path_links(self.topo, nodes),
            "hops": len(nodes) - 1,
            "delay_ms": round(path_delay_ms(self.topo, nodes), 6),
        }

    # -- flows ------------------------------------------------------------------------------------
    def flow_for(self, key: FlowKey) -> Flow | None:
        """The flow for a packet, created (with its path) if new; None when unroutable."""
        with self.lock:
            flow = self.flows.get(key)
            now = time.time()
            if flow is not None and flow.active:
                flow.last_seen = now
                return flow
            hs, hd = self.plan.host_by_ip.get(key.src_ip), self.plan.host_by_ip.get(key.dst_ip)
            if hs is None or hd is None:
                return None
            nodes = self.route(hs.node, hd.node, None if flow is None else flow.id)
            if nodes is None:
                return None
            if flow is None:
                flow = Flow(self._next_id, key, hs.name, hd.name, nodes, path_links(self.topo, nodes),
                            first_seen=now, last_seen=now)
                self._next_id += 1
                self.flows[key] = flow
                self.by_id[flow.id] = flow
            else:  # an expired flow seen again keeps its id and counters
                flow.nodes, flow.links = nodes, path_links(self.topo, nodes)
                flow.active, flow.last_seen, flow._sample = True, now, None
            return flow

    def planned_moves(self, policy: Policy | None = None) -> list[tuple[Flow, list[int], list[int] | None]]:
        """(flow, old nodes, new nodes) for every active flow whose path `policy` (the current one
        by default) changes; nothing is moved."""
        out = []
        with self.lock:
            for flow in self.flows.values():
                if flow.active:
                    hs, hd = self.plan.host_by_ip[flow.key.src_ip], self.plan.host_by_ip[flow.key.dst_ip]
                    new = self.route(hs.node, hd.node, flow.id, policy)
                    if new != flow.nodes:
                        out.append((flow, flow.nodes, new))
        return out

    def reroute_all(self, by: str = "controller", reason: str = "links changed",
                    policy: Policy | None = None) -> list[tuple[Flow, list[int], list[int] | None]]:
        """Make `policy` current (else keep it: the links changed) as a new routing version and
        recompute every active flow's path; return (flow, old nodes, new nodes) where changed."""
        changed = []
        with self.lock:
            if policy is None:
                self.routing.bump(by, reason)
            else:
                self.routing.commit(policy, by, reason)
            for flow in self.flows.values():
                if not flow.active:
                    continue
                hs, hd = self.plan.host_by_ip[flow.key.src_ip], self.plan.host_by_ip[flow.key.dst_ip]
                new = self.route(hs.node, hd.node, flow.id)
                if new != flow.nodes:
                    changed.append((flow, flow.nodes, new))
                    if new is not None:
                        flow.nodes, flow.links = new, path_links(self.topo, new)
                        flow.reroutes += 1
        return changed

    def expire(self, flow_id: int) -> None:
        with self.lock:
            flow = self.by_id.get(flow_id)
            if flow is not None:
                flow.active, flow.rate_bps, flow.pkt_rate = False, 0.0, 0.0

    def update_flow_counters(self, flow_id: int, packets: int, nbytes: int, at: float) -> None:
        with self.lock:
            flow = self.by_id.get(flow_id)
            if flow is None:
                return
            if flow._sample is not None and nbytes >= flow._sample[2] and at > flow._sample[0]:
                dt = at - flow._sample[0]
                flow.rate_bps = 8.0 * (nbytes - flow._sample[2]) / dt
                flow.pkt_rate = (packets - flow._sample[1]) / dt
            flow.packets, flow.bytes = packets, nbytes
            flow._sample = (at, packets, nbytes)

    # -- ports and links --------------------------------------------------------------------------
    def update_port(self, dpid: int, port: int, c: PortCounters) -> None:
        with self.lock:
            prev = self.ports.get((dpid, port))
            if prev is not None and c.at > prev.at and c.tx_bytes >= prev.tx_bytes:
                dt = c.at - prev.at
                c.tx_bps = 8.0 * (c.tx_bytes - prev.tx_bytes) / dt
                c.rx_bps = 8.0 * (c.rx_bytes - prev.rx_bytes) / dt
            self.ports[(dpid, port)] = c

    def link_of_port(self, dpid: int, port: int) -> str | None:
        return self.plan.port_to_link.get((Plan.node_of_dpid(dpid), port))

    def set_link(self, link_id: str, up: bool | None = None, capacity_mbps: float | None = None) -> bool:
        """Change a link's state or capacity; True when its up/down state changed."""
        with self.lock:
            if link_id not in self.link_up:
                raise KeyError(link_id)
            if capacity_mbps is not None:
                self.capacity[link_id] = float(capacity_mbps)
            if up is None or self.link_up[link_id] == up:
                return False
            self.link_up[link_id] = up
            self.routing.forget_routes()
            return True

    # -- views for REST ---------------------------------------------------------------------------
    def switches_view(self) -> list[dict[str, Any]]:
        with self.lock:
            return [{
                "dpid": Plan.dpid_str(n.id), "name": Plan.switch_name(n.id), "node": n.id,
                "node_name": n.name,
                "connected": self.connected.get(Plan.dpid(n.id), False),
                "ready": self.ready.get(Plan.dpid(n.id), False),
            } for n in self.topo.nodes]

    def hosts_view(self) -> list[dict[str, Any]]:
        return [{"name": h.name, "ip": h.ip, "mac": h.mac, "switch": h.switch,
                 "dpid": Plan.dpid_str(h.node), "port": h.port, "node": h.node,
                 "node_name": self.topo.nodes[h.node].name} for h in self.plan.hosts]

    def links_view(self) -> list[dict[str, Any]]:
        out = []
        with self.lock:
            for lk in self.topo.links:
                p = self.plan.link_ports[lk.id]
                ca = self.ports.get((Plan.dpid(lk.a), p.a_port), PortCounters())
                cb = self.ports.get((Plan.dpid(lk.b), p.b_port), PortCounters())
                cap_bps = self.capacity[lk.id] * 1e6
                out.append({
                    "id": lk.id, "a": lk.a, "b": lk.b,
                    "a_switch": Plan.dpid_str(lk.a), "b_switch": Plan.dpid_str(lk.b),
                    "a_port": p.a_port, "b_port": p.b_port,
                    "capacity_mbps": self.capacity[lk.id], "delay_ms": lk.delay_ms, "queue_pkts": lk.queue_pkts,
                    "up": self.link_up[lk.id],
                    "load_bps": {"a_to_b": round(ca.tx_bps, 1), "b_to_a": round(cb.tx_bps, 1)},
                    "utilization": {"a_to_b": round(ca.tx_bps / cap_bps, 4),
                                    "b_to_a": round(cb.tx_bps / cap_bps, 4)},
                    "tx_dropped": {"a_to_b": ca.tx_dropped, "b_to_a": cb.tx_dropped},
                })
        return out

    def flows_view(self, active_only: bool = True) -> list[dict[str, Any]]:
        with self.lock:
            return [self.flow_dict(f) for f in self.flows.values() if f.active or not active_only]

    @staticmethod
    def flow_dict(f: Flow) -> dict[str, Any]:
        return {
            "id": f.id, "src": f.src, "dst": f.dst, "src_ip": f.key.src_ip, "dst_ip": f.key.dst_ip,
            "proto": PROTO_NAMES.get(f.key.proto, str(f.key.proto)), "sport": f.key.sport,
            "dport": f.key.dport, "path": [Plan.dpid_str(n) for n in f.nodes], "links": f.links,
            "packets": f.packets, "bytes": f.bytes, "rate_bps": round(f.rate_bps, 1),
            "pkt_rate": round(f.pkt_rate, 2), "first_seen": f.first_seen, "last_seen": f.last_seen,
            # when the switch last reported these counters (None before the first stats reply)
            "counters_at": None if f._sample is None else f._sample[0],
            "active": f.active, "reroutes": f.reroutes,
        }

    def ports_view(self) -> list[dict[str, Any]]:
        with self.lock:
            out = []
            for (dpid, port), c in sorted(self.ports.items()):
                out.append({
                    "dpid": f"{dpid:016x}", "port": port, "name": f"s{dpid}-eth{port}",
                    "link": self.link_of_port(dpid, port),
                    "host": self.plan.hosts[Plan.node_of_dpid(dpid)].name if port == HOST_PORT else None,
                    "up": self.port_up.get((dpid, port), True),
                    "rx_bytes": c.rx_bytes, "tx_bytes": c.tx_bytes, "rx_packets": c.rx_packets,
                    "tx_packets": c.tx_packets, "rx_dropped": c.rx_dropped, "tx_dropped": c.tx_dropped,
                    "rx_bps": round(c.rx_bps, 1), "tx_bps": round(c.tx_bps, 1),
                })
            return out
