"""`ndt console`: the live terminal console on the closed loop (`apps.console`)."""

from __future__ import annotations

import argparse


def cmd_console(args: argparse.Namespace) -> None:
    from apps.common.config import load_config
    from apps.console import ConsoleData, TwinConsole
    from traffic.store import Stores

    stores = Stores(args.data)
    data = ConsoleData(stores, args.run, load_config(args.config, stores.root).sla)
    if args.run:
        stores.run(args.run)  # an unknown run is one error line, before the screen opens
    TwinConsole(data, args.refresh).run()


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("console", help="live terminal console on the closed loop (worst flows, SLA, model, events)")
    t.add_argument("--run", default=None, help="this run (default: the one whose loop status changed last)")
    t.add_argument("--refresh", type=float, default=1.0, help="seconds between refreshes")
    t.add_argument("--config", default=None, help="configuration file with the SLA policy")
    t.add_argument("--data", default=None)
    t.set_defaults(func=cmd_console)
