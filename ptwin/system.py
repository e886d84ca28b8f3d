"""What this machine can do for a lab: root, required programs, kernel datapath, netem.
Everything is detected, nothing assumed; probes touch only interfaces they create. The lab runs
Open vSwitch daemons of its own (ptwin.switchd): the machine's need not run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import LabError

#: program -> Debian package that provides it
REQUIRED_PROGRAMS = {
    "mnexec": "mininet",
    "ovs-vsctl": "openvswitch-switch",
    "ovs-vswitchd": "openvswitch-switch",
    "ovsdb-server": "openvswitch-switch",
    "ovsdb-tool": "openvswitch-switch",
    "tc": "iproute2",
    "ip": "iproute2",
    "ethtool": "ethtool",
    "ping": "iputils-ping",
}


def run(args: list[str], timeout: float = 30.0, check: bool = False) -> subprocess.CompletedProcess:
    """Run a program without a shell (arguments are never shell-parsed)."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (Mininet and Open vSwitch): run as root or with sudo")


def missing_packages() -> list[str]:
    missing = sorted({pkg for prog, pkg in REQUIRED_PROGRAMS.items() if shutil.which(prog) is None})
    try:
        import mininet.net  # noqa: F401
    except ImportError:
        missing.append("mininet (Python module)")
    return missing


def require_packages() -> None:
    missing = missing_packages()
    if missing:
        raise LabError(f"missing packages: {', '.join(missing)}; run 'make install' (or sudo make install)")


def kernel_datapath_available() -> bool:
    """True when the openvswitch kernel module is loaded (else the userspace datapath is used)."""
    return Path("/sys/module/openvswitch").exists()


def netem_available() -> bool:
    """Probe netem on a veth pair of our own, then delete it."""
    name = f"ndtp{os.getpid() % 100000}"
    if run(["ip", "link", "add", name + "a", "type", "veth", "peer", "name", name + "b"]).returncode != 0:
        return False
    try:
        r = run(["tc", "qdisc", "add", "dev", name + "a", "root", "netem", "delay", "1ms"])
        return r.returncode == 0
    finally:
        run(["ip", "link", "del", name + "a"])


def existing_interfaces() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False
