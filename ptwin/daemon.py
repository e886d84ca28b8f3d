"""The lab's background process: builds the Lab, records it in the state file, answers control
requests on a Unix socket until told to go down (or SIGTERM), then removes everything.

Started by `ptwin.control.lab_up` as `python -m ptwin.daemon ARGS`; not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Listener
from typing import Any

from topologies import Topology, TopologyError
from topologies.addressing import OF_PORT, REST_PORT
from topologies.resolve import load_json

from .cleanup import remove_recorded, stop_adopted
from .errors import LabError
from .lab import DEFAULT_QUEUE_PKTS, Lab, LabConfig
from .state import control_path, key_path, lab_dir, process_record, read_state, write_state
from .switchd import PORTS_PER_DAEMON


class Stop(Exception):
    """Raised by the SIGTERM handler to leave the control loop."""


class Daemon:
    def __init__(self, topo: Topology, config: LabConfig) -> None:
        self.state: dict[str, Any] = read_state() or {}
        self.state.update({"status": "starting", "progress": "starting", "processes": [],
                           "bridges": [], "interfaces": [], "namespaces": []})
        self.state["processes"].append(process_record(os.getpid(), "lab daemon"))
        self.lab = Lab(topo, config, lab_dir(), record=self.record, progress=self.set_progress)
        self.lock = threading.Lock()
        write_state(self.state)

    def record(self, kind: str, item: Any) -> None:
        if kind == "process":
            self.state["processes"].append(item)
        else:
            self.state[kind] = list(item)
        write_state(self.state)

    def set_progress(self, msg: str) -> None:
        self.state["progress"] = msg
        write_state(self.state)

    def info(self) -> dict[str, Any]:
        lab = self.lab
        hosts = {h.name: {"ip": h.ip, "mac": h.mac, "switch": h.switch, "node": h.node}
                 for h in lab.plan.hosts}
        if lab.net is not None:
            for h in lab.net.hosts:
                hosts[h.name]["pid"] = h.pid
        return {
            "topology": lab.topo.name,
            "switches": len(lab.topo.nodes),
            "links": len(lab.topo.links),
            "datapath": lab.datapath,
            "switch_daemons": [d.to_dict() for d in lab.daemons],
            "delay_backend": lab.delay_backend,
            "capacity_scale": lab.scale,
            "queue_pkts": {"default": lab.config.queue_pkts,
                           "links": {lk.id: lk.queue_pkts for lk in lab.topo.links},
                           "from_topology": sum(lk.queue_pkts is not None for lk in lab.nominal.links)},
            "controller": {"rest": lab.rest_url, "ofp_port": lab.config.of_port},
            "hosts": hosts,
            "links_down": sorted(k for k, v in lab.link_up.items() if not v),
            "topology_file": str(lab.workdir / "topology.json"),
        }

    def handle(self, req: dict[str, Any]) -> Any:
        op = req.get("op")
        if op == "status":
            return self.info()
        if op == "link":
            self.lab.set_link(str(req["link"]), bool(req["up"]))
            return {"link": req["link"], "up": bool(req["up"])}
        if op == "capacity":
            tell = bool(req.get("tell", True))
            rate = self.lab.set_capacity(str(req["link"]), float(req["capacity_mbps"]), tell=tell)
            return {"link": req["link"], "emulated_mbps": rate, "controller_told": tell}
        if op == "pingall":
            from .pingall import pingall

            return pingall(self.lab.net.hosts, count=int(req.get("count", 1)))
        raise LabError(f"unknown request {op!r}")

    def serve(self) -> None:
        key = os.urandom(32)
        kp = key_path()
        kp.touch(mode=0o600)
        kp.write_bytes(key)
        sock = control_path()
        if sock.exists():
            sock.unlink()
        listener = Listener(str(sock), family="AF_UNIX", authkey=key)
        self.state["status"] = "ready"
        self.state["progress"] = "ready"
        self.state["ready_at"] = time.time()
        self.state["info"] = self.info()
        write_state(self.state)
        try:
            while True:
                try:
                    conn = listener.accept()
                except (OSError, EOFError):
                    continue
                with conn:
                    try:
                        req = conn.recv()
                    except (EOFError, OSError):
                        continue
                    if req.get("op") == "down":
                        conn.send({"ok": True, "result": "going down"})
                        return
                    try:
                        conn.send({"ok": True, "result": self.handle(req)})
                        self.state["info"] = self.info()
                        write_state(self.state)
                    except (LabError, TopologyError, KeyError, ValueError) as exc:
                        conn.send({"ok": False, "error": str(exc)})
                    except Exception as exc:  # noqa: BLE001 - report, keep the lab serving
                        conn.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
                        traceback.print_exc()
        finally:
            listener.close()

    def teardown(self) -> None:
        self.state["status"] = "stopping"
        write_state(self.state)
        stop_adopted()  # traffic and training started for this lab run in its hosts
        self.lab.down()
        mine = os.getpid()
        rest = dict(self.state, processes=[p for p in self.state["processes"] if p["pid"] != mine])
        remove_recorded(rest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ptwin.daemon")
    ap.add_argument("--topology", required=True)
    ap.add_argument("--delay-backend", default="auto")
    ap.add_argument("--capacity-scale", default="auto")
    ap.add_argument("--of-port", type=int, default=OF_PORT)
    ap.add_argument("--rest-port", type=int, default=REST_PORT)
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument("--idle-timeout", type=int, default=30)
    ap.add_argument("--stats-interval", type=float, default=1.0)
    ap.add_argument("--queue", type=int, default=DEFAULT_QUEUE_PKTS)
    ap.add_argument("--ports-per-daemon", type=int, default=PORTS_PER_DAEMON)
    args = ap.parse_args(argv)

    def on_term(*_: object) -> None:
        raise Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    scale: str | float = args.capacity_scale if args.capacity_scale == "auto" else float(args.capacity_scale)
    config = LabConfig(delay_backend=args.delay_backend, capacity_scale=scale,
                       of_port=args.of_port, rest_port=args.rest_port,
                       ready_timeout=args.ready_timeout, flow_idle_timeout=args.idle_timeout,
                       stats_interval=args.stats_interval, queue_pkts=args.queue,
                       ports_per_daemon=args.ports_per_daemon)
    daemon = None
    try:
        daemon = Daemon(load_json(__import__("pathlib").Path(args.topology)), config)
        daemon.lab.up()
        daemon.serve()
    except Stop:
        pass
    except (LabError, TopologyError) as exc:
        _fail(daemon, str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - any failure must still tear the lab down
        traceback.print_exc()
        _fail(daemon, f"{type(exc).__name__}: {exc} (at {_where(exc)}; traceback in {lab_dir() / 'daemon.log'})")
        return 1
    if daemon is not None:
        daemon.teardown()
        daemon.state["status"] = "stopped"
        write_state(daemon.state)
    return 0


def _where(exc: BaseException) -> str:
    """file:line of the innermost frame of an unexpected failure, for its one-line report."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{'/'.join(f.filename.split('/')[-2:])}:{f.lineno} {f.name}"


def _fail(daemon: Daemon | None, message: str) -> None:
    print(f"lab failed: {message}", file=sys.stderr)
    if daemon is None:
        state = read_state() or {}
        state.update({"status": "failed", "error": message})
        write_state(state)
        return
    try:
        daemon.teardown()
    finally:
        daemon.state.update({"status": "failed", "error": message})
        write_state(daemon.state)


if __name__ == "__main__":
    sys.exit(main())
