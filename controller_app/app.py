"""The os-ken application: per-flow shortest-delay routing with per-flow rules (so every flow has
its own counters), ARP answered by the controller, rerouting on link changes, and periodic flow
and port statistics. It is given the topology (the lab's addressing plan), not discovering it.

Configuration comes from os-ken's CONF, group `ndt` (set by controller_app.launcher).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import arp, ether_types, ethernet, ipv4, packet, tcp, udp
from os_ken.ofproto import ofproto_v1_3

from topologies.addressing import CONTROL_HOST, REST_PORT, Plan
from topologies.resolve import load_json
from topologies.routing import path_links

from .netstate import Flow, FlowKey, NetworkState, PortCounters
from .routing import Policy

# Without the ofctl service, stats requests from apps can hang (DESIGN.md).
app_manager.require_app("os_ken.app.ofctl.service")

CONF = cfg.CONF
CONF.register_opts([
    cfg.StrOpt("topology", default=""),
    cfg.IntOpt("rest_port", default=REST_PORT),
    cfg.StrOpt("rest_host", default=CONTROL_HOST),
    cfg.IntOpt("idle_timeout", default=30),
    cfg.FloatOpt("stats_interval", default=1.0),
    cfg.StrOpt("token_file", default="", help="the bearer token routing changes need (a file, 0600)"),
], group="ndt")

FLOW_PRIORITY = 100
#: Cookie bit of a flow's rule at its ingress switch: stats requests ask only for these rules,
#: one per flow, instead of one per flow per hop.
INGRESS = 1 << 63
DROP_PRIORITY = 10
MAX_PORT = 0xFF00
LOG = logging.getLogger("ndt.controller")


class NdtController(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.net = NetworkState(load_json(Path(CONF.ndt.topology)))
        self.datapaths: dict[int, object] = {}
        self.route_lock = threading.RLock()
        self.started_at = time.time()

    def start(self):
        thread = super().start()
        from .rest import serve_in_thread

        token = Path(CONF.ndt.token_file).read_text().strip() if CONF.ndt.token_file else None
        serve_in_thread(self, CONF.ndt.rest_host, CONF.ndt.rest_port, token)
        self.threads.append(hub.spawn(self._poll_loop))
        return thread

    # -- connection -------------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def on_features(self, ev) -> None:
        dp = ev.msg.datapath
        # os-ken hands this event to the apps before its own handler sets dp.id, in another thread:
        # dp.id may still be None here (a 52-switch lab once waited 120 s for a switch that had connected),
        # so the id comes from the message.
        dpid = ev.msg.datapath_id
        ofp, parser = dp.ofproto, dp.ofproto_parser
        # Start clean: this switch may carry rules from an earlier connection.
        dp.send_msg(parser.OFPFlowMod(dp, command=ofp.OFPFC_DELETE, table_id=ofp.OFPTT_ALL,
                                      out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY))
        self._add(dp, 0, parser.OFPMatch(),
                  [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)])
        for eth_type in (ether_types.ETH_TYPE_IPV6, ether_types.ETH_TYPE_LLDP):
            self._add(dp, DROP_PRIORITY, parser.OFPMatch(eth_type=eth_type), [])
        with self.net.lock:
            self.datapaths[dpid] = dp
            self.net.connected[dpid] = True
            self.net.ready[dpid] = True
        LOG.info("switch %016x connected", dpid)
        # Flows already routed through this switch get their rules again.
        with self.route_lock:
            for flow in [f for f in self.net.flows.values() if f.active]:
                if dpid in [Plan.dpid(n) for n in flow.nodes]:
                    self._install(flow)

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def on_state(self, ev) -> None:
        dp = ev.datapath
        if ev.state == DEAD_DISPATCHER and dp.id is not None:
            with self.net.lock:
                if self.datapaths.get(dp.id) is dp:
                    del self.datapaths[dp.id]
                    self.net.connected[dp.id] = False
                    self.net.ready[dp.id] = False
            LOG.info("switch %016x disconnected", dp.id)

    # -- packets ----------------------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def on_packet_in(self, ev) -> None:
        msg = ev.msg
        dp = msg.datapath
        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocol(ethernet.ethernet)
        if eth is None:
            return
        if eth.ethertype == ether_types.ETH_TYPE_ARP:
            self._answer_arp(dp, msg.match["in_port"], eth, pkt.get_protocol(arp.arp))
            return
        ip = pkt.get_protocol(ipv4.ipv4)
        if ip is None:
            return
        sport = dport = 0
        if ip.proto in (6, 17):
            l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
            if l4 is None:
                return
            sport, dport = l4.src_port, l4.dst_port
        key = FlowKey(ip.src, ip.dst, ip.proto, sport, dport)
        with self.route_lock:
            flow = self.net.flow_for(key)
            if flow is None:
                return
            hops = self._install(flow)
        out = dict(hops).get(dp.id)
        if out is not None:
            parser, ofp = dp.ofproto_parser, dp.ofproto
            dp.send_msg(parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER,
                                            in_port=msg.match["in_port"],
                                            actions=[parser.OFPActionOutput(out)], data=msg.data))

    def _answer_arp(self, dp, in_port: int, eth, req) -> None:
        if req is None or req.opcode != arp.ARP_REQUEST:
            return
        target = self.net.plan.host_by_ip.get(req.dst_ip)
        if target is None:
            return
        reply = packet.Packet()
        reply.add_protocol(ethernet.ethernet(ethertype=ether_types.ETH_TYPE_ARP, dst=eth.src, src=target.mac))
        reply.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=target.mac, src_ip=target.ip,
                                   dst_mac=req.src_mac, dst_ip=req.src_ip))
        reply.serialize()
        parser, ofp = dp.ofproto_parser, dp.ofproto
        dp.send_msg(parser.OFPPacketOut(dp, buffer_id=ofp.OFP_NO_BUFFER, in_port=ofp.OFPP_CONTROLLER,
                                        actions=[parser.OFPActionOutput(in_port)], data=reply.data))

    # -- rules ------------------------------------------------------------------------------------
    def _match(self, parser, key: FlowKey):
        fields = {"eth_type": ether_types.ETH_TYPE_IP, "ipv4_src": key.src_ip,
                  "ipv4_dst": key.dst_ip, "ip_proto": key.proto}
        if key.proto == 6:
            fields.update(tcp_src=key.sport, tcp_dst=key.dport)
        elif key.proto == 17:
            fields.update(udp_src=key.sport, udp_dst=key.dport)
        return parser.OFPMatch(**fields)

    def _add(self, dp, priority: int, match, actions, cookie: int = 0, idle: int = 0, flags: int = 0) -> None:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)] if actions else []
        dp.send_msg(parser.OFPFlowMod(dp, cookie=cookie, priority=priority, match=match,
                                      instructions=inst, idle_timeout=idle, flags=flags))

    def _install(self, flow: Flow) -> list[tuple[int, int]]:
        """Install the flow's rules from the last switch back to the first; return its hops."""
        hs = self.net.plan.host_by_ip[flow.key.dst_ip]
        hops = self.net.hops(flow.nodes, hs.node)
        for i, (dpid, port) in reversed(list(enumerate(hops))):
            dp = self.datapaths.get(dpid)
            if dp is None:
                continue
            parser, ofp = dp.ofproto_parser, dp.ofproto
            ingress = i == 0
            self._add(dp, FLOW_PRIORITY, self._match(parser, flow.key), [parser.OFPActionOutput(port)],
                      cookie=flow.id | INGRESS if ingress else flow.id, idle=CONF.ndt.idle_timeout,
                      flags=ofp.OFPFF_SEND_FLOW_REM if ingress else 0)
        return hops

    def _remove(self, flow: Flow, dpids: set[int]) -> None:
        for dpid in dpids:
            dp = self.datapaths.get(dpid)
            if dp is None:
                continue
            ofp, parser = dp.ofproto, dp.ofproto_parser
            dp.send_msg(parser.OFPFlowMod(dp, command=ofp.OFPFC_DELETE_STRICT, priority=FLOW_PRIORITY,
                                          match=self._match(parser, flow.key), out_port=ofp.OFPP_ANY,
                                          out_group=ofp.OFPG_ANY))

    def reroute(self, by: str = "controller", reason: str = "links changed",
                policy: Policy | None = None) -> list[dict[str, Any]]:
        """Make `policy` current (`NetworkState.reroute_all`, a new routing version) and move every
        flow whose path changed, each new path's rules installed from its last switch back before
        the old path's are removed; return the moves."""
        moves = []
        with self.route_lock:
            changed = self.net.reroute_all(by, reason, policy)
            for flow, old, new in changed:
                if new is None:
                    continue  # unreachable now: keep the old rules; packets are lost on the dead link
                self._install(flow)
                stale = {Plan.dpid(n) for n in old} - {Plan.dpid(n) for n in new}
                self._remove(flow, stale)
                moves.append({"flow": flow.id, "src": flow.src, "dst": flow.dst,
                              "from": path_links(self.net.topo, old), "to": list(flow.links)})
        if changed:
            LOG.info("routing version %d (%s, %s): moved %d flow(s)", self.net.routing_version, by, reason,
                     len(moves))
        return moves

    def set_link(self, link_id: str, up: bool | None = None, capacity_mbps: float | None = None) -> int:
        if self.net.set_link(link_id, up=up, capacity_mbps=capacity_mbps):
            state = "up" if self.net.link_up[link_id] else "down"
            return len(self.reroute(reason=f"{link_id} {state}"))
        return 0

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def on_port_status(self, ev) -> None:
        msg = ev.msg
        dp, desc = msg.datapath, msg.desc
        ofp = dp.ofproto
        link_down = bool(desc.state & ofp.OFPPS_LINK_DOWN) or bool(desc.config & ofp.OFPPC_PORT_DOWN)
        if msg.reason == ofp.OFPPR_DELETE:
            link_down = True
        with self.net.lock:
            self.net.port_up[(dp.id, desc.port_no)] = not link_down
        link = self.net.link_of_port(dp.id, desc.port_no)
        if link is None:
            return
        p = self.net.plan.link_ports[link]
        ends = [(Plan.dpid(p.a), p.a_port), (Plan.dpid(p.b), p.b_port)]
        # A link is up only when both of its ports are up.
        up = all(self.net.port_up.get(end, True) for end in ends)
        self.set_link(link, up=up)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def on_flow_removed(self, ev) -> None:
        msg = ev.msg
        if msg.cookie & INGRESS and msg.reason == msg.datapath.ofproto.OFPRR_IDLE_TIMEOUT:
            flow_id = msg.cookie & ~INGRESS
            self.net.update_flow_counters(flow_id, msg.packet_count, msg.byte_count, time.time())
            self.net.expire(flow_id)
            with self.route_lock:
                flow = self.net.by_id.get(flow_id)
                if flow is not None and not flow.active:
                    self._remove(flow, {Plan.dpid(n) for n in flow.nodes})

    # -- statistics -------------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while True:
            for dp in list(self.datapaths.values()):
                if not dp.is_active:
                    with self.net.lock:
                        self.datapaths.pop(dp.id, None)
                        self.net.connected[dp.id] = False
                        self.net.ready[dp.id] = False
                    continue
                parser, ofp = dp.ofproto_parser, dp.ofproto
                dp.send_msg(parser.OFPFlowStatsRequest(dp, table_id=ofp.OFPTT_ALL, out_port=ofp.OFPP_ANY,
                                                       out_group=ofp.OFPG_ANY, cookie=INGRESS,
                                                       cookie_mask=INGRESS))
                dp.send_msg(parser.OFPPortStatsRequest(dp, 0, ofp.OFPP_ANY))
            hub.sleep(CONF.ndt.stats_interval)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def on_flow_stats(self, ev) -> None:
        now = time.time()
        for stat in ev.msg.body:
            # A flow's counters are read at its ingress switch (the source host's switch).
            if stat.cookie & INGRESS:
                self.net.update_flow_counters(stat.cookie & ~INGRESS, stat.packet_count, stat.byte_count, now)

    @set_ev_cls(ofp_event.EventOFPPortStatsReply, MAIN_DISPATCHER)
    def on_port_stats(self, ev) -> None:
        dpid, now = ev.msg.datapath.id, time.time()
        for s in ev.msg.body:
            if s.port_no > MAX_PORT:
                continue
            self.net.update_port(dpid, s.port_no, PortCounters(
                rx_bytes=s.rx_bytes, tx_bytes=s.tx_bytes, rx_packets=s.rx_packets,
                tx_packets=s.tx_packets, rx_dropped=s.rx_dropped, tx_dropped=s.tx_dropped, at=now))
