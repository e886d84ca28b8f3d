"""`ndt demo`: the closed loop on the built-in default topology with the short `demo-drift`
schedule (a few minutes, two drifts, then a congested phase), ending with the report. It is
`ndt run` with the demo's defaults, the optimizer in autonomous mode among them (a plan the
what-if engine approves at low risk is applied, measured, kept or rolled back; any other waits
for an operator); the lab is taken down at the end, also on error or Ctrl-C."""

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
    d.add_argument("--optimize", choices=("off", "propose", "auto"), default="auto",
                   help="the optimizer in the loop (default auto: plans the what-if engine approves are applied)")
    add_base_model_arg(d)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    defaults = loop.run_parser_defaults()
    defaults.update({k: v for k, v in vars(args).items() if k != "func"})
    loop.cmd_run(argparse.Namespace(**defaults))
