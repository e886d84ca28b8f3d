"""The options that say how a lab emulates its topology (capacity scale, link buffers), shared by
`ndt lab up` and `ndt run`, and the LabConfig they make."""

from __future__ import annotations

import argparse

from ptwin.lab import DEFAULT_QUEUE_PKTS, LabConfig


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


def queue_packets(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of packets: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("a buffer holds at least 1 packet")
    return value


def add_emulation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--capacity-scale", default="auto", type=capacity_scale,
                   help="factor from topology capacity to emulated rate (default auto: "
                        "the fastest link at most 20 Mbit/s)")
    p.add_argument("--queue", type=queue_packets, default=DEFAULT_QUEUE_PKTS, metavar="PACKETS",
                   help=f"buffer of each link direction without one in the topology (default {DEFAULT_QUEUE_PKTS})")
    p.add_argument("--of-port", type=int, default=6653)
    p.add_argument("--rest-port", type=int, default=8080)


def lab_config(args: argparse.Namespace, **more: object) -> LabConfig:
    """The LabConfig of the parsed emulation options (plus `more`)."""
    return LabConfig(capacity_scale=args.capacity_scale, queue_pkts=args.queue, of_port=args.of_port,
                     rest_port=args.rest_port, **more)
