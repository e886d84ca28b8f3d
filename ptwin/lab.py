"""The emulated network: a `Lab` you `up()` and `down()`, built from a Topology.

One Open vSwitch switch per node (kernel datapath when the module is loaded, userspace
otherwise) in the lab's own switch daemons (ptwin.switchd: private ovs-vswitchd processes,
each in a network namespace of its own, reaching the controller through a Unix socket), one
Mininet host per switch, every inter-switch link direction shaped to its capacity with
HTB (the qdisc TCLink would install, applied in one tc batch: ptwin.shaping) behind a finite
queue of the link's buffer (from the topology, else `queue_pkts`), and given its propagation
delay by netem, by the userspace relay (ptwin.relay), or not at all. The controller
(controller_app) runs as a separate process that the lab starts first.

Every resource is reported to `record` the moment its name is known, so a crashed lab can still
be removed exactly (ptwin.cleanup).
"""

from __future__ import annotations

import math
import os
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import requests

from topologies import DEFAULT_QUEUE_PKTS, Topology
from topologies.addressing import OF_PORT, REST_PORT, Plan

from . import system
from .cleanup import remove_recorded
from .errors import LabError
from .shaping import htb_commands, rate_commands, run_batch
from .state import process_record, token_path
from .switchd import PORTS_PER_DAEMON, SwitchDaemon, add_bridges, existing_namespaces, split, start_daemons

DELAY_BACKENDS = ("auto", "netem", "relay", "none")
#: Mininet's HTB settings are only valid up to this rate (Mbit/s).
MAX_SHAPED_MBPS = 1000.0
#: With capacity scale "auto", the fastest link is emulated at no more than this (Mbit/s): with
#: the userspace datapath on two cores, faster links make the emulator, not the link, the queue.
AUTO_MAX_MBPS = 20.0
#: Nice value of the delay relay: ovs-ctl starts ovs-vswitchd at -10, and the relay forwards every
#: frame after it, so both hold their share of the CPU against busy neighbours (a trainer, a build).
RELAY_NICE = -10
#: Unsent bytes a host's TCP socket may hold before the sender blocks. The machine's default
#: (unlimited, with tcp_wmem up to 16 MB) lets an overloaded TCP flow queue seconds of data in
#: its sender, which D-ITG's one-way delay (stamped when the application writes) counts: on
#: line3 at load 1.5, 330 ms per window where the path's buffers hold about 30 ms (README).
TCP_NOTSENT_LOWAT = 1024


@dataclass
class LabConfig:
    delay_backend: str = "auto"
    capacity_scale: str | float = "auto"
    of_port: int = OF_PORT
    rest_port: int = REST_PORT
    ready_timeout: float = 120.0
    flow_idle_timeout: int = 30
    stats_interval: float = 1.0
    queue_pkts: int = DEFAULT_QUEUE_PKTS
    ports_per_daemon: int = PORTS_PER_DAEMON


def with_queues(topo: Topology, queue_pkts: int) -> Topology:
    """The topology with `queue_pkts` as the buffer of every link that has none of its own."""
    if isinstance(queue_pkts, bool) or not isinstance(queue_pkts, int) or queue_pkts < 1:
        raise LabError(f"queue must be a whole number of packets, at least 1; got {queue_pkts!r}")
    missing = [lk for lk in topo.links if lk.queue_pkts is None]
    if not missing:
        return topo
    links = tuple(replace(lk, queue_pkts=queue_pkts) if lk.queue_pkts is None else lk for lk in topo.links)
    sources = (*topo.sources, ("queue", "--queue default", len(missing)))
    return replace(topo, links=links, sources=sources)


def choose_scale(topo: Topology, requested: str | float) -> float:
    """Factor from the topology's capacities to the emulated rates."""
    biggest = max(lk.capacity_mbps for lk in topo.links)
    if requested == "auto":
        if biggest <= AUTO_MAX_MBPS:
            return 1.0
        return 10.0 ** -math.ceil(math.log10(biggest / AUTO_MAX_MBPS))
    scale = float(requested)
    if not scale > 0:
        raise LabError(f"capacity scale must be positive, got {requested}")
    if biggest * scale > MAX_SHAPED_MBPS:
        raise LabError(f"largest link would be {biggest * scale:g} Mbit/s, above the "
                       f"{MAX_SHAPED_MBPS:g} Mbit/s the lab can shape; lower --capacity-scale")
    return scale


def scaled(topo: Topology, scale: float) -> Topology:
    if scale == 1.0:
        return topo
    links = tuple(replace(lk, capacity_mbps=round(lk.capacity_mbps * scale, 6)) for lk in topo.links)
    notes = (*topo.notes, f"capacities scaled by {scale:g} for emulation")
    return replace(topo, links=links, notes=notes)


class Lab:
    """A running emulated network. `up()` builds and starts it; `down()` removes it."""

    def __init__(self, topo: Topology, config: LabConfig, workdir: Path,
                 record: Callable[[str, Any], None] = lambda kind, item: None,
                 progress: Callable[[str], None] = lambda msg: None) -> None:
        if config.delay_backend not in DELAY_BACKENDS:
            raise LabError(f"unknown delay backend {config.delay_backend!r}; "
                           f"use one of {', '.join(DELAY_BACKENDS)}")
        self.nominal = topo
        self.scale = choose_scale(topo, config.capacity_scale)
        self.topo = with_queues(scaled(topo, self.scale), config.queue_pkts)
        self.plan = Plan(self.topo)
        self.config = config
        self.workdir = workdir
        self.record = record
        self.progress = progress
        self.net: Any = None
        self.datapath = "kernel" if system.kernel_datapath_available() else "user"
        self.delay_backend = config.delay_backend
        self.controller: subprocess.Popen | None = None
        self.controller_rec: dict[str, Any] | None = None
        self.relay: subprocess.Popen | None = None
        self.relay_rec: dict[str, Any] | None = None
        self.resources: dict[str, list] = {"processes": [], "bridges": [], "interfaces": [], "namespaces": []}
        self.link_up: dict[str, bool] = {lk.id: True for lk in self.topo.links}
        # the kernel datapath has no poll loop to split: one daemon holds every bridge
        per_daemon = 10 ** 9 if self.datapath == "kernel" else config.ports_per_daemon
        self.daemons = [SwitchDaemon(i, workdir / f"switchd{i}", nodes)
                        for i, nodes in enumerate(split(self.topo, per_daemon))]
        self.netns_of = {n: d.netns for d in self.daemons for n in d.nodes}

    # -- names ------------------------------------------------------------------------------------
    def switch_intf(self, link_id: str, node: int) -> str:
        """The switch port of `link_id` at `node` (in the namespace of the node's daemon)."""
        return f"{Plan.switch_name(node)}-eth{self.plan.out_port(link_id, node)}"

    @property
    def openflow_socket(self) -> Path:
        return self.workdir / "openflow.sock"

    def relay_name(self, link_id: str) -> str:
        return "r" + link_id[1:]

    def shaped_netns(self, link_id: str, node: int) -> str | None:
        """The namespace of `shaped_intf` (None: the root namespace)."""
        return None if self.delay_backend == "relay" else self.netns_of[node]

    def shaped_intf(self, link_id: str, node: int) -> str:
        """The interface whose queue is the link direction leaving `node`. With the relay it is the
        relay's egress toward the far switch, not the switch's port: the userspace datapath sends
        on every port through one shared non-blocking packet socket, so a queue on a switch port
        fills that socket's send buffer and then every port drops, silently (measured: 35 % loss
        on flows whose links were not loaded); the relay has a socket per interface."""
        if self.delay_backend != "relay":
            return self.switch_intf(link_id, node)
        lk = self.topo.link(link_id)
        return f"{self.relay_name(link_id)}-eth1" if node == lk.a else f"{self.relay_name(link_id)}-eth0"

    def bridges(self) -> list[str]:
        return [Plan.switch_name(n.id) for n in self.topo.nodes]

    def root_interfaces(self) -> list[str]:
        """Every interface this lab creates in the root namespace: the relay's (the switches'
        are in their daemons' namespaces, the hosts' in the hosts')."""
        if self.delay_backend != "relay":
            return []
        return [f"{self.relay_name(lk.id)}-eth{i}" for lk in self.topo.links for i in (0, 1)]

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.config.rest_port}"

    # -- bring up ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse to start when something we would create already exists."""
        system.require_root()
        system.require_packages()
        if self.delay_backend in ("auto", "netem"):
            has_netem = system.netem_available()
            if self.delay_backend == "netem" and not has_netem:
                raise LabError("--delay-backend netem: this kernel has no netem (sch_netem); "
                               "use relay or auto")
            self.delay_backend = "netem" if has_netem else "relay"
        clash = {d.netns for d in self.daemons} & existing_namespaces()
        if clash:
            raise LabError(f"network namespace(s) already exist: {', '.join(sorted(clash)[:5])} "
                           "(another lab?); remove them first")
        clash = set(self.root_interfaces()) & system.existing_interfaces()
        if clash:
            raise LabError(f"interface(s) already exist: {', '.join(sorted(clash)[:5])} "
                           "(another lab or Mininet run?); remove them first")
        for port in (self.config.of_port, self.config.rest_port):
            if system.port_in_use(port):
                raise LabError(f"TCP port {port} on 127.0.0.1 is in use; stop what holds it "
                               "or choose another port")

    def up(self) -> None:
        self.check()
        self._record("bridges", self.bridges())
        self._record("interfaces", self.root_interfaces())
        self._record("namespaces", [d.netns for d in self.daemons])
        self.workdir.mkdir(parents=True, exist_ok=True)
        topo_file = self.workdir / "topology.json"
        topo_file.write_text(self.topo.to_json())
        self.progress("starting the controller")
        self._start_controller(topo_file)
        self.progress(f"starting {len(self.daemons)} switch daemon(s)")
        start_daemons([d.nodes for d in self.daemons], self.workdir, self._record)
        self.progress(f"building {len(self.topo.nodes)} switches, {len(self.topo.links)} links "
                      f"({self.datapath} datapath, delay {self.delay_backend})")
        self._build()
        self.progress("shaping links and configuring hosts")
        self._shape()
        self._configure_hosts()
        if self.delay_backend == "relay":
            self._start_relay()
        self.progress("waiting for every switch to connect to the controller")
        self._wait_switches()

    def _record(self, kind: str, item: Any) -> None:
        if kind == "process":
            self.resources["processes"].append(item)
        else:
            self.resources[kind] = list(item)
        self.record(kind, item)

    def _start_controller(self, topo_file: Path) -> None:
        log = open(self.workdir / "controller.log", "wb")
        token = self.workdir / token_path().name  # the routing API's bearer token, fresh per lab
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24))
        cmd = [sys.executable, "-m", "controller_app.launcher", "--topology", str(topo_file),
               "--token-file", str(token),
               "--ofp-port", str(self.config.of_port), "--rest-port", str(self.config.rest_port),
               "--ofp-unix", str(self.openflow_socket),
               "--idle-timeout", str(self.config.flow_idle_timeout),
               "--stats-interval", str(self.config.stats_interval)]
        self.controller = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)
        log.close()
        self.controller_rec = process_record(self.controller.pid, "controller")
        self._record("process", self.controller_rec)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.controller.poll() is not None:
                raise LabError(f"the controller exited with code {self.controller.returncode}; "
                               f"see {self.workdir / 'controller.log'}")
            if system.port_in_use(self.config.of_port) and self.openflow_socket.exists() and self._rest_ok():
                return
            time.sleep(0.2)
        raise LabError(f"the controller did not start within 30 s; see {self.workdir / 'controller.log'}")

    def _rest_ok(self) -> bool:
        try:
            return requests.get(self.rest_url + "/health", timeout=1).ok
        except requests.RequestException:
            return False

    def _build(self) -> None:
        """Hosts (Mininet), the veth pairs of every host and link made straight into their
        namespaces, then each daemon's bridges with their ports in one transaction."""
        from mininet.link import Intf
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.node import Host

        setLogLevel("warning")
        net = Mininet(topo=None, build=False, host=Host, controller=None, autoSetMacs=False,
                      autoStaticArp=False, waitConnected=False)
        self.net = net
        for h in self.plan.hosts:
            host = net.addHost(h.name, ip=f"{h.ip}/8", mac=h.mac)
            self._record("process", process_record(host.pid, f"host {h.name}", stop="HUP"))
        ports: dict[int, list[tuple[str, int]]] = {n.id: [] for n in self.topo.nodes}
        cmds = []
        for h in self.plan.hosts:
            intf = f"{h.switch}-eth{h.port}"
            cmds.append(f"link add name {h.name}-eth0 netns {net[h.name].pid} type veth "
                        f"peer name {intf} netns {self.netns_of[h.node]}")
            ports[h.node].append((intf, h.port))
        for lk in self.topo.links:
            pa, pb = self.plan.link_ports[lk.id].a_port, self.plan.link_ports[lk.id].b_port
            ia, ib = self.switch_intf(lk.id, lk.a), self.switch_intf(lk.id, lk.b)
            na, nb = self.netns_of[lk.a], self.netns_of[lk.b]
            if self.delay_backend == "relay":  # switch a <-> relay <-> switch b
                r = self.relay_name(lk.id)
                cmds.append(f"link add name {ia} netns {na} type veth peer name {r}-eth0")
                cmds.append(f"link add name {r}-eth1 type veth peer name {ib} netns {nb}")
            else:
                cmds.append(f"link add name {ia} netns {na} type veth peer name {ib} netns {nb}")
            ports[lk.a].append((ia, pa))
            ports[lk.b].append((ib, pb))
        err = run_batch("ip", cmds)
        if err:
            raise LabError(f"could not create the lab's links: {err.splitlines()[0]}")
        for d in self.daemons:
            up = [f"link set dev {intf} up" for n in d.nodes for intf, _ in ports[n]]
            err = run_batch("ip", up, netns=d.netns)
            if err:
                raise LabError(f"could not bring the switch ports of {d.netns} up: {err.splitlines()[0]}")
        for h in self.plan.hosts:  # made in the host's namespace: nothing for Mininet to move
            Intf(f"{h.name}-eth0", node=net[h.name], port=0, moveIntfFn=lambda *args, **kwargs: True)
        datapath_type = "system" if self.datapath == "kernel" else "netdev"
        add_bridges(self.daemons, self.plan, datapath_type, self.openflow_socket, ports)
        net.build()  # addresses and MACs of the hosts

    def _shape(self) -> None:
        """HTB at each link's capacity on both directions' egress, each with its finite queue
        (+ netem delay if chosen)."""
        cmds: dict[str | None, list[str]] = {}
        for lk in self.topo.links:
            delay = lk.delay_ms if self.delay_backend == "netem" else None
            for node in (lk.a, lk.b):
                cmds.setdefault(self.shaped_netns(lk.id, node), []).extend(
                    htb_commands(self.shaped_intf(lk.id, node), lk.capacity_mbps, delay, lk.queue_pkts))
        for netns, batch in cmds.items():
            err = run_batch("tc", batch, netns=netns)
            if err:
                raise LabError(f"could not shape the links: {err.splitlines()[0]}")

    def _configure_hosts(self) -> None:
        for h in self.net.hosts:
            # Userspace datapath + veth: checksums must be computed by the sender (DESIGN.md).
            h.cmd(f"ethtool -K {h.defaultIntf().name} tx off; "
                  "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 "
                  f"net.ipv4.tcp_notsent_lowat={TCP_NOTSENT_LOWAT}")
        for intf in self.root_interfaces():
            knob = Path(f"/proc/sys/net/ipv6/conf/{intf}/disable_ipv6")
            if knob.exists():
                knob.write_text("1")

    def _start_relay(self) -> None:
        pairs, link_cmds = [], []
        for lk in self.topo.links:
            r = self.relay_name(lk.id)
            for intf in (f"{r}-eth0", f"{r}-eth1"):
                system.run(["ethtool", "-K", intf, "tx", "off", "tso", "off", "gso", "off", "gro", "off"])
                link_cmds.append(f"link set dev {intf} promisc on up")
            pairs.append(f"{r}-eth0,{r}-eth1,{lk.delay_ms}")
        err = run_batch("ip", link_cmds)
        if err:
            raise LabError(f"could not bring the relay interfaces up: {err.splitlines()[0]}")
        log = open(self.workdir / "relay.log", "wb")
        self.relay = subprocess.Popen([sys.executable, "-m", "ptwin.relay", *pairs], stdout=subprocess.PIPE,
                                      stderr=log, stdin=subprocess.DEVNULL, text=True)
        log.close()
        try:  # the delay element is part of the network: it runs at the priority ovs-ctl gives ovs-vswitchd
            os.setpriority(os.PRIO_PROCESS, self.relay.pid, RELAY_NICE)
        except OSError:
            pass  # not permitted here: it runs at normal priority
        self.relay_rec = process_record(self.relay.pid, "relay")
        self._record("process", self.relay_rec)
        ready, _, _ = select.select([self.relay.stdout], [], [], 30)
        line = self.relay.stdout.readline() if ready else ""
        if not line.startswith("relay ready"):
            raise LabError(f"the delay relay did not start; see {self.workdir / 'relay.log'}")

    def _wait_switches(self) -> None:
        want = len(self.topo.nodes)
        deadline = time.monotonic() + self.config.ready_timeout
        seen = 0
        while time.monotonic() < deadline:
            if self.controller and self.controller.poll() is not None:
                raise LabError("the controller exited while switches were connecting")
            if self.relay and self.relay.poll() is not None:
                raise LabError(f"the delay relay exited; see {self.workdir / 'relay.log'}")
            try:
                switches = requests.get(self.rest_url + "/switches", timeout=2).json()
                seen = sum(1 for s in switches if s.get("connected") and s.get("ready"))
            except (requests.RequestException, ValueError):
                seen = 0
            if seen == want:
                return
            time.sleep(0.3)
        raise LabError(f"only {seen} of {want} switches connected to the controller within "
                       f"{self.config.ready_timeout:g} s")

    # -- faults -----------------------------------------------------------------------------------
    def set_link(self, link_id: str, up: bool) -> None:
        """Take a link down or up at both switch ports (the controller sees the port status)."""
        lk = self.topo.link(link_id)
        state = "up" if up else "down"
        for node in (lk.a, lk.b):
            intf = self.switch_intf(lk.id, node)
            r = system.run(["ip", "-n", self.netns_of[node], "link", "set", "dev", intf, state])
            if r.returncode != 0:
                raise LabError(f"could not set link {link_id} {state}: {r.stderr.strip()}")
        self.link_up[link_id] = up
        self._tell_controller(link_id, {"up": up})

    def set_capacity(self, link_id: str, capacity_mbps: float, tell: bool = True) -> float:
        """Reshape a link to `capacity_mbps` (topology units); returns the emulated rate. Without
        `tell` the controller is not told: a fault behind the twin's back (its topology keeps the
        old capacity), as a degraded link is until someone notices."""
        lk = self.topo.link(link_id)
        if not capacity_mbps > 0:
            raise LabError(f"capacity must be positive, got {capacity_mbps}")
        rate = capacity_mbps * self.scale
        if rate > MAX_SHAPED_MBPS:
            raise LabError(f"{rate:g} Mbit/s is above the {MAX_SHAPED_MBPS:g} Mbit/s the lab can shape")
        for node in (lk.a, lk.b):
            err = run_batch("tc", rate_commands(self.shaped_intf(lk.id, node), rate),
                            netns=self.shaped_netns(lk.id, node))
            if err:
                raise LabError(f"could not reshape {link_id}: {err.splitlines()[0]}")
        self.topo = replace(self.topo, links=tuple(replace(x, capacity_mbps=rate) if x.id == link_id else x
                                                   for x in self.topo.links))
        if tell:
            self._tell_controller(link_id, {"capacity_mbps": rate})
        return rate

    def _tell_controller(self, link_id: str, body: dict[str, Any]) -> None:
        try:
            requests.post(f"{self.rest_url}/links/{link_id}", json=body, timeout=5).raise_for_status()
        except requests.RequestException as exc:
            raise LabError(f"the controller did not take the change to {link_id}: {exc}") from None

    # -- tear down --------------------------------------------------------------------------------
    def down(self) -> None:
        """Stop everything this lab started; safe to call on a half-built lab."""
        remove_recorded(self.resources)
