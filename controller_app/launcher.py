"""Start the controller: os-ken 4.x has no manager script, so this loads the app through
os_ken.base.app_manager, listening for OpenFlow on 127.0.0.1:PORT (and on a Unix socket with
--ofp-unix, for switches whose daemon runs in another network namespace) and serving REST.

    python -m controller_app.launcher --topology TOPO.json [--ofp-port 6653] [--rest-port 8080]
        [--ofp-unix PATH] [--token-file PATH]

With --token-file, the REST API's routing changes need that file's token as a bearer token.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys

from topologies.addressing import CONTROL_HOST, OF_PORT, REST_PORT


class UnixConnection:
    """A switch's Unix stream connection as os-ken's Datapath takes it: Datapath sets TCP_NODELAY
    on every socket, which a Unix socket refuses (and does not need)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if level != socket.IPPROTO_TCP:
            self._sock.setsockopt(level, option, value)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def serve_unix(path: str) -> None:
    """Accept OpenFlow connections on the Unix socket `path`, beside the TCP listener."""
    from os_ken.controller.controller import datapath_connection_factory
    from os_ken.lib import hub

    if os.path.exists(path):
        os.unlink(path)  # a socket file left by a killed controller of this lab
    server = hub.StreamServer((path, 0), lambda sock, _addr: datapath_connection_factory(
        UnixConnection(sock), ("unix", path)))
    os.chmod(path, 0o600)
    hub.spawn(server.serve_forever)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="controller_app.launcher")
    ap.add_argument("--topology", required=True, help="topology JSON the lab wrote")
    ap.add_argument("--ofp-host", default=CONTROL_HOST)
    ap.add_argument("--ofp-port", type=int, default=OF_PORT)
    ap.add_argument("--rest-host", default=CONTROL_HOST)
    ap.add_argument("--rest-port", type=int, default=REST_PORT)
    ap.add_argument("--idle-timeout", type=int, default=30)
    ap.add_argument("--stats-interval", type=float, default=1.0)
    ap.add_argument("--ofp-unix", default=None, help="also accept OpenFlow connections on this Unix socket")
    ap.add_argument("--token-file", default="", help="the bearer token of routing changes (a 0600 file)")
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
    cfg.CONF.set_override("token_file", args.token_file, group="ndt")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("os_ken").setLevel(logging.WARNING)

    def on_term(*_: object) -> None:
        # os-ken's native-thread hub leaves non-daemon threads that a SystemExit would wait for;
        # the controller holds nothing that needs flushing, so leave at once.
        logging.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    if args.ofp_unix:
        serve_unix(args.ofp_unix)
    AppManager.run_apps(["controller_app.app"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
