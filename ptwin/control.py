"""The user's side of the lab: start the background lab process and wait until it is ready,
send it requests, and take it down (or clear the remains of one that died)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Client
from typing import Any

from topologies import Topology

from . import system
from .cleanup import leftovers, remove_recorded, stop_adopted
from .errors import LabError
from .lab import DELAY_BACKENDS, LabConfig
from .state import (
    adopted_dir,
    control_path,
    is_alive,
    key_path,
    lab_dir,
    process_record,
    read_state,
    state_path,
    stop_process,
    token_path,
    write_state,
)


def _daemon_rec(state: dict[str, Any]) -> dict[str, Any] | None:
    for rec in state.get("processes", []):
        if rec.get("what") == "lab daemon":
            return rec
    return None


def lab_alive(state: dict[str, Any] | None) -> bool:
    if not state:
        return False
    rec = _daemon_rec(state)
    return rec is not None and is_alive(rec)


def lab_up(topo: Topology, config: LabConfig, progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Start a lab in the background; return its status once every switch is connected."""
    system.require_root()
    system.require_packages()
    if config.delay_backend not in DELAY_BACKENDS:
        raise LabError(f"unknown delay backend {config.delay_backend!r}; use one of {', '.join(DELAY_BACKENDS)}")
    if config.delay_backend == "netem" and not system.netem_available():
        raise LabError("--delay-backend netem: this kernel has no netem (sch_netem); use relay or auto")
    d = lab_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read_state()
        if state is not None:
            if lab_alive(state) or state.get("status") == "starting" and _starting_recently(state):
                raise LabError(f"a lab is already running ({state.get('topology', '?')}); "
                               "run 'ndt lab down' first")
            raise LabError("a previous lab died without cleaning up; run 'ndt lab down' to clear it")
        nominal = d / "nominal-topology.json"
        nominal.write_text(topo.to_json())
        write_state({"status": "starting", "progress": "starting", "topology": topo.name,
                     "started_at": time.time(), "processes": [], "bridges": [], "interfaces": [],
                     "namespaces": []})
        log = open(d / "daemon.log", "wb")
        cmd = [sys.executable, "-m", "ptwin.daemon", "--topology", str(nominal),
               "--delay-backend", config.delay_backend, "--capacity-scale", str(config.capacity_scale),
               "--of-port", str(config.of_port), "--rest-port", str(config.rest_port),
               "--ready-timeout", str(config.ready_timeout),
               "--idle-timeout", str(config.flow_idle_timeout),
               "--stats-interval", str(config.stats_interval), "--queue", str(config.queue_pkts),
               "--ports-per-daemon", str(config.ports_per_daemon)]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd="/")
        log.close()
        # recorded at once: until the daemon writes its own record, only this one lets 'lab down' find it
        state = read_state() or {}
        if not state.get("processes"):
            write_state({**state, "processes": [process_record(proc.pid, "lab daemon")]})
    try:
        return _wait_ready(proc, config, progress)
    except BaseException:  # Ctrl-C or a timeout while it starts: the daemon removes what it built
        _abort_start(proc)
        raise


def _wait_ready(proc: subprocess.Popen, config: LabConfig, progress: Callable[[str], None]) -> dict[str, Any]:
    last = ""
    d = lab_dir()
    deadline = time.monotonic() + config.ready_timeout + 90
    while time.monotonic() < deadline:
        state = read_state() or {}
        msg = state.get("progress", "")
        if msg and msg != last:
            progress(msg)
            last = msg
        status = state.get("status")
        if status == "ready":
            return state
        if status == "failed" or proc.poll() is not None:
            proc.wait()
            error = state.get("error") or f"the lab process exited ({proc.returncode}); see {d / 'daemon.log'}"
            _clear(state)
            raise LabError(error)
        time.sleep(0.2)
    raise LabError("the lab did not become ready in time; it was taken down")


def _abort_start(proc: subprocess.Popen, timeout: float = 25.0) -> None:
    """Stop a lab daemon that is still starting: SIGTERM makes it tear down what it built so far."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    state = read_state()
    if state is not None:
        remove_recorded(state)
        _clear(state)


def _starting_recently(state: dict[str, Any]) -> bool:
    return time.time() - float(state.get("started_at", 0)) < 30


def request(op: str, timeout: float = 120.0, **kwargs: Any) -> Any:
    """Send one request to the running lab and return its result."""
    state = read_state()
    if not lab_alive(state):
        raise LabError("no lab is running; start one with 'ndt lab up TOPO'"
                       if state is None else "the lab process is not running; run 'ndt lab down' to clear it")
    try:
        conn = Client(str(control_path()), family="AF_UNIX", authkey=key_path().read_bytes())
    except (OSError, EOFError) as exc:
        raise LabError(f"cannot reach the lab: {exc}") from None
    with conn:
        conn.send({"op": op, **kwargs})
        if not conn.poll(timeout):
            raise LabError(f"the lab did not answer '{op}' within {timeout:g} s")
        reply = conn.recv()
    if not reply.get("ok"):
        raise LabError(reply.get("error", "request failed"))
    return reply.get("result")


def lab_status() -> dict[str, Any]:
    state = read_state()
    if state is None:
        return {"status": "down"}
    out = {k: v for k, v in state.items() if k not in ("processes", "interfaces", "bridges", "namespaces")}
    if state.get("status") == "ready" and not lab_alive(state):
        out["status"] = "dead"
        out["hint"] = "the lab process died; run 'ndt lab down' to clear it"
    return out


def lab_down(timeout: float = 120.0) -> dict[str, Any]:
    """Stop the running lab, or clear what a dead one left; return what was removed."""
    system.require_root()
    state = read_state()
    if state is None:
        return {"status": "down", "was_running": False, "removed": []}
    was_alive = lab_alive(state)
    # first what runs in its hosts for it (traffic, a training worker), left behind if their run was killed
    adopted = stop_adopted()
    if was_alive:
        rec = _daemon_rec(state)
        try:
            request("down", timeout=10)
        except LabError:
            if rec:  # it did not take the request (busy, or its socket is gone): SIGTERM tears it down too
                _signal_daemon(rec)
        deadline = time.monotonic() + timeout
        while rec and is_alive(rec) and time.monotonic() < deadline:
            time.sleep(0.1)
        if rec and is_alive(rec):
            stop_process(rec)
        state = read_state() or state
    removed = adopted + remove_recorded(state)
    left = leftovers(state)
    if left:
        raise LabError(f"could not remove: {', '.join(left[:5])}")
    _clear(state)
    return {"status": "down", "was_running": was_alive, "removed_leftovers": removed}


def _signal_daemon(rec: dict[str, Any]) -> None:
    if is_alive(rec):
        try:
            os.kill(rec["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass


def _clear(state: dict[str, Any]) -> None:
    if state and leftovers(state):
        remove_recorded(state)
    for p in (*adopted_dir().glob("*"), control_path(), key_path(), token_path(), state_path()):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    try:
        adopted_dir().rmdir()
    except OSError:
        pass
