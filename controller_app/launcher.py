"""Start the controller: os-ken 4.x has no manager script, so this loads the app through
os_ken.base.app_manager, listening for OpenFlow on 127.0.0.1:PORT and serving REST.

    python -m controller_app.launcher --topology TOPO.json [--ofp-port 6653] [--rest-port 8080]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="controller_app.launcher")
    ap.add_argument("--topology", required=True, help="topology JSON the lab wrote")
    ap.add_argument("--ofp-host", default="127.0.0.1")
    ap.add_argument("--ofp-port", type=int, default=6653)
    ap.add_argument("--rest-host", default="127.0.0.1")
    ap.add_argument("--rest-port", type=int, default=8080)
    ap.add_argument("--idle-timeout", type=int, default=30)
    ap.add_argument("--stats-interval", type=float, default=1.0)
    args = ap.parse_args(argv)

    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    import controller_app.app  # noqa: F401 - registers the ndt options

    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_listen_host", args.ofp_host)
    cfg.CONF.set_override("ofp_tcp_listen_port", args.ofp_port)
    cfg.CONF.set_override("topology", args.topology, group="ndt")
    cfg.CONF.set_override("rest_host", args.rest_host, group="ndt")
    cfg.CONF.set_override("rest_port", args.rest_port, group="ndt")
    cfg.CONF.set_override("idle_timeout", args.idle_timeout, group="ndt")
    cfg.CONF.set_override("stats_interval", args.stats_interval, group="ndt")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("os_ken").setLevel(logging.WARNING)

    def on_term(*_: object) -> None:
        # os-ken's native-thread hub leaves non-daemon threads that a SystemExit would wait for;
        # the controller holds nothing that needs flushing, so leave at once.
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    AppManager.run_apps(["controller_app.app"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
