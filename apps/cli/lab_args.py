"""The options that say how a lab emulates its topology (capacity scale, link buffers, switches
per daemon), shared by `ndt lab up` and `ndt run`, and the LabConfig they make."""

from __future__ import annotations

import argparse

from ptwin.lab import DEFAULT_QUEUE_PKTS, LabConfig
from ptwin.switchd import PORTS_PER_DAEMON
from topologies.addressing import OF_PORT, REST_PORT


def capacity_scale(text: str) -> str | float:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'auto': {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def at_least_one(unit: str, holder: str):
    """An argparse type: a whole number of `unit`s, at least one (`holder` names what holds them)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number of {unit}s: {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{holder} holds at least 1 {unit}")
        return value

    return parse


queue_packets = at_least_one("packet", "a buffer")
ports_per_daemon = at_least_one("port", "a daemon")


def add_emulation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--capacity-scale", default="auto", type=capacity_scale,
                   help="factor from topology capacity to emulated rate (default auto: "
                        "the fastest link at most 20 Mbit/s)")
    p.add_argument("--queue", type=queue_packets, default=DEFAULT_QUEUE_PKTS, metavar="PACKETS",
                   help=f"buffer of each link direction without one in the topology (default {DEFAULT_QUEUE_PKTS})")
    add_daemon_args(p)


def add_daemon_args(p: argparse.ArgumentParser) -> None:
    """The lab's processes: switch daemons and the controller's ports (a corpus campaign sets
    its runs' rates and buffers itself, and takes only these)."""
    p.add_argument("--ports-per-daemon", type=ports_per_daemon, default=PORTS_PER_DAEMON, metavar="PORTS",
                   help="split the switches among Open vSwitch daemons of about this many ports each "
                        f"(userspace datapath; default {PORTS_PER_DAEMON})")
    p.add_argument("--of-port", type=int, default=OF_PORT, help=f"the controller's OpenFlow port (default {OF_PORT})")
    p.add_argument("--rest-port", type=int, default=REST_PORT,
                   help=f"the controller's REST port (default {REST_PORT})")


def lab_config(args: argparse.Namespace, **more: object) -> LabConfig:
    """The LabConfig of the parsed emulation options (plus `more`)."""
    return LabConfig(capacity_scale=args.capacity_scale, queue_pkts=args.queue, of_port=args.of_port,
                     rest_port=args.rest_port, ports_per_daemon=args.ports_per_daemon, **more)
