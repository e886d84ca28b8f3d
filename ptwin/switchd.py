"""The lab's own Open vSwitch daemons: its switches are split among a few private ovs-vswitchd
processes, each with its own ovsdb-server and its own network namespace, instead of living in
the machine's shared daemon.

Why: the userspace datapath (no kernel module) polls every port of every bridge in one loop,
and each poll of a packet socket is a syscall plus 32 buffer allocations (perf: a third of the
daemon's cycles in malloc and free). With all of a 50-switch lab's 226 ports in one daemon,
every frame a switch forwards waits for a pass over all of them, and the loop, woken by every
frame, takes a core. Cut into daemons of about `PORTS_PER_DAEMON` ports, a hop waits only for
its own daemon's few ports. A daemon needs a namespace of its own because every userspace
datapath creates a tap device named `ovs-netdev`; switches reach the controller through a Unix
socket, which crosses namespaces.

Each daemon's files (database, sockets, logs) are under the lab's run directory; its namespace
and processes are recorded before or as they are created, so `ptwin.cleanup` removes exactly
them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topologies import Topology
from topologies.addressing import Plan

from . import system
from .errors import LabError
from .state import process_record

#: Ports per daemon (a switch has one per link plus its host's). Measured with bench/emulator.py
#: on germany_50 (226 ports), 40 TCP flows at load 0.1, two cores: median delay above
#: propagation 20.2 ms with one daemon (16 % of flow-windows within the 2 ms / 10 % overhead
#: goal, ovs-vswitchd 0.92 core), 7.9 ms at 24 ports (94 %, 1.17 cores), 4.9 ms at 8 (100 %,
#: 0.78 core), 4.4 ms at 4 (99.7 %, 0.72 core); HPASSION_128 (577 ports): 5.7 ms at 8, 5.9 ms
#: at 4. Each daemon costs ~22 MB (ovs-vswitchd) + ~7 MB (ovsdb-server) of memory.
PORTS_PER_DAEMON = 8
#: Namespace names: ndt-sw0, ndt-sw1, ...
NETNS_PREFIX = "ndt-sw"
#: ovs-ctl starts the machine's ovs-vswitchd at this nice value; the lab's daemons run the same.
VSWITCHD_NICE = -10
SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


@dataclass
class SwitchDaemon:
    """One private ovsdb-server + ovs-vswitchd pair serving some of the lab's bridges."""

    index: int
    rundir: Path
    nodes: list[int] = field(default_factory=list)

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.index}"

    @property
    def db(self) -> str:
        return f"unix:{self.rundir / 'db.sock'}"

    def vsctl(self, *args: str) -> list[str]:
        return ["ovs-vsctl", f"--db={self.db}", "--timeout=60", *args]

    def to_dict(self) -> dict[str, Any]:
        return {"netns": self.netns, "db": self.db, "rundir": str(self.rundir),
                "bridges": [Plan.switch_name(n) for n in self.nodes]}


def split(topo: Topology, ports_per_daemon: int = PORTS_PER_DAEMON) -> list[list[int]]:
    """Nodes grouped in order so that each group's bridges hold at most `ports_per_daemon` ports
    (one host port plus one per link) unless one switch alone has more. Which switches share a
    daemon does not matter: every hop crosses the relay (or a veth pair) between two ports anyway."""
    degree = {n.id: 1 for n in topo.nodes}
    for lk in topo.links:
        degree[lk.a] += 1
        degree[lk.b] += 1
    groups: list[list[int]] = [[]]
    ports = 0
    for n in sorted(degree):
        if groups[-1] and ports + degree[n] > ports_per_daemon:
            groups.append([])
            ports = 0
        groups[-1].append(n)
        ports += degree[n]
    return groups


def existing_namespaces() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except OSError:
        return set()


def start_daemons(groups: list[list[int]], workdir: Path,
                  record: Callable[[str, Any], None]) -> list[SwitchDaemon]:
    """Create one namespace and start one ovsdb-server and one ovs-vswitchd per group. `record`
    is told each namespace before it is made and each process as it starts."""
    if not SCHEMA.exists():
        raise LabError(f"{SCHEMA} is missing: install openvswitch-switch (make install does)")
    daemons = [SwitchDaemon(i, workdir / f"switchd{i}", nodes) for i, nodes in enumerate(groups)]
    record("namespaces", [d.netns for d in daemons])
    for d in daemons:
        _make_netns(d.netns)
    for d in daemons:
        d.rundir.mkdir(parents=True, exist_ok=True)
        db = d.rundir / "conf.db"
        db.unlink(missing_ok=True)
        r = system.run(["ovsdb-tool", "create", str(db), str(SCHEMA)])
        if r.returncode != 0:
            raise LabError(f"ovsdb-tool could not create {db}: {r.stderr.strip()}")
        record("process", _spawn(["ovsdb-server", str(db), f"--remote=punix:{d.rundir / 'db.sock'}",
                                  f"--unixctl={d.rundir / 'ovsdb.ctl'}", "--no-chdir", "-vconsole:off",
                                  f"--log-file={d.rundir / 'ovsdb-server.log'}"],
                                 d.rundir / "ovsdb-server.out", f"ovsdb-server {d.netns}"))
    for d in daemons:
        _wait_for(lambda d=d: (d.rundir / "db.sock").exists(), 20, f"ovsdb-server of {d.netns}")
        r = system.run(d.vsctl("--no-wait", "init"))
        if r.returncode != 0:
            raise LabError(f"could not initialize the database of {d.netns}: {r.stderr.strip()}")
        rec = _spawn(["ip", "netns", "exec", d.netns, "ovs-vswitchd", d.db, "--no-chdir", "-vconsole:off",
                      f"--log-file={d.rundir / 'ovs-vswitchd.log'}", f"--unixctl={d.rundir / 'vswitchd.ctl'}"],
                     d.rundir / "ovs-vswitchd.out", f"ovs-vswitchd {d.netns}",
                     env={**os.environ, "OVS_RUNDIR": str(d.rundir)})
        record("process", rec)
        try:  # the datapath is the network: it runs at the priority ovs-ctl gives the machine's own
            os.setpriority(os.PRIO_PROCESS, rec["pid"], VSWITCHD_NICE)
        except OSError:
            pass
    for d in daemons:
        _wait_for(lambda d=d: (d.rundir / "vswitchd.ctl").exists(), 20, f"ovs-vswitchd of {d.netns}")
    return daemons


def _make_netns(name: str) -> None:
    r = system.run(["ip", "netns", "add", name])
    if r.returncode != 0:
        raise LabError(f"could not create network namespace {name}: {r.stderr.strip()}")
    # IPv6 off before any interface arrives: new interfaces take the namespace's default, and
    # router solicitations would otherwise be forwarded to the controller.
    for cmd in (["ip", "-n", name, "link", "set", "lo", "up"],
                ["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                 "net.ipv6.conf.default.disable_ipv6=1"]):
        r = system.run(cmd)
        if r.returncode != 0:
            raise LabError(f"could not configure network namespace {name}: {r.stderr.strip()}")


def _spawn(cmd: list[str], out: Path, what: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    with open(out, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    rec = process_record(proc.pid, what)
    if rec["start"] is None:
        raise LabError(f"{what} exited at once; see {out}")
    return rec


def _wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise LabError(f"{what} did not start within {timeout:g} s")


def add_bridges(daemons: list[SwitchDaemon], plan: Plan, datapath_type: str, controller_socket: Path,
                ports: dict[int, list[tuple[str, int]]]) -> None:
    """Create every daemon's bridges with their ports (interface name, OpenFlow port number),
    one transaction per daemon, all daemons at once: OpenFlow 1.3, fail mode secure, the lab's
    datapath ids, the controller's Unix socket (linked into the daemon's run directory:
    ovs-vswitchd connects only to sockets there)."""
    running = []
    for d in daemons:
        link = d.rundir / "openflow.sock"
        link.unlink(missing_ok=True)
        link.symlink_to(controller_socket)
        args: list[str] = []
        for n in d.nodes:
            br = Plan.switch_name(n)
            args += ["--", "add-br", br,
                     "--", "set", "bridge", br, f"datapath_type={datapath_type}", "protocols=OpenFlow13",
                     "fail_mode=secure", f"other-config:datapath-id={Plan.dpid_str(n)}",
                     "other-config:disable-in-band=true", f"other-config:dp-desc={br}",
                     "--", "set-controller", br, f"unix:{link}"]
            for intf, port in ports.get(n, []):
                args += ["--", "add-port", br, intf, "--", "set", "interface", intf, f"ofport_request={port}"]
        running.append((d, subprocess.Popen(d.vsctl(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                            text=True)))
    failed = []
    for d, proc in running:
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            err = "ovs-vsctl timed out"
        if proc.returncode != 0:
            failed.append(f"{d.netns}: {(err.strip().splitlines() or ['?'])[0]}")
    if failed:
        raise LabError(f"could not create the bridges of {failed[0]}")
