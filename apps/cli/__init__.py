"""The `ndt` command line: one entry point, a command group per module, each registering its
own subcommands (`register(sub)`): topo, lab (and ctl), data (and traffic), model (and train),
dataset, loop (run, drift, sla, report), whatif, optimize, plan, serve, console, demo.

Every command that prints data has --json. Every error is one line on stderr and a non-zero
exit code, never a traceback.
"""

from __future__ import annotations

import os

# TensorFlow's C++ start-up chatter would break the one-line error rule.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import faulthandler  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

from apps.common.config import ConfigError  # noqa: E402
from controller_app.client import ControllerError  # noqa: E402
from ptwin.errors import LabError  # noqa: E402
from topologies import TopologyError  # noqa: E402
from traffic.runner import TrafficError  # noqa: E402
from traffic.schedule import ScheduleError  # noqa: E402
from traffic.store import StoreError  # noqa: E402
from vtwin.errors import IntervalError, RegistryError, SnapshotError  # noqa: E402

from . import console, data, dataset, demo, lab, loop, model, optimize, plan, serve, topo, whatif  # noqa: E402
from .base import CliError, Parser  # noqa: E402

GROUPS = (topo, lab, data, dataset, model, loop, whatif, optimize, plan, serve, console, demo)


def build_parser() -> Parser:
    p = Parser(prog="ndt", description="Self-adaptive network digital twin lab.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `kill -USR1 PID` prints every thread's stack on stderr: where a long command is, without stopping it
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        args.func(args)
    except (CliError, LabError, TopologyError, ControllerError, ScheduleError, StoreError, TrafficError,
            RegistryError, SnapshotError, ConfigError, IntervalError) as exc:
        print(f"ndt: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ndt: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
