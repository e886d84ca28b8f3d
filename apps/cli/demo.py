"""`ndt demo`: the closed loop on the built-in default topology with the short `demo-drift`
schedule (a few minutes, two drifts), ending with the report. It is `ndt run` with the demo's
defaults; the lab is taken down at the end, also on error or Ctrl-C."""

from __future__ import annotations

import argparse

from topologies import builtin as builtin_topos

from . import loop
from .model import add_base_model_arg


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="the closed loop on the default topology with a short drift schedule, "
                                    "then the report")
    d.add_argument("topo", metavar="TOPO", nargs="?", default=builtin_topos.DEFAULT)
    d.add_argument("--schedule", default="demo-drift")
    d.add_argument("--data", default=None)
    add_base_model_arg(d)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    defaults = loop.run_parser_defaults()
    defaults.update({k: v for k, v in vars(args).items() if k != "func"})
    loop.cmd_run(argparse.Namespace(**defaults))
