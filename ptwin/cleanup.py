"""Remove exactly what a lab recorded in its state file: its processes (checked by pid and start
time: hosts, switch daemons, relay, controller), the processes adopted for it (a traffic run's
D-ITG processes and collector, a training worker), its switch daemons' network namespaces (with
every interface in them and their veth peers) and its root-namespace interfaces. Nothing else
is touched."""

from __future__ import annotations

from typing import Any

from . import system
from .shaping import run_batch
from .state import adopted_processes, is_alive, stop_processes
from .switchd import existing_namespaces


def stop_adopted() -> list[str]:
    """End the adopted processes that still run (before the lab: they run in its hosts)."""
    alive = [r for r in adopted_processes() if is_alive(r)]
    stop_processes(alive)
    return [f"process {r['pid']} ({r.get('what')})" for r in alive]


def remove_recorded(state: dict[str, Any]) -> list[str]:
    """Remove the state's resources that still exist; return what was removed."""
    removed = []
    procs = state.get("processes", [])
    # Controller last: switches and relays go first, so nothing reconnects.
    first = [r for r in procs if r.get("what") != "controller" and is_alive(r)]
    last = [r for r in procs if r.get("what") == "controller" and is_alive(r)]
    for group in (first, last):
        stop_processes(group)
        removed += [f"process {r['pid']} ({r.get('what')})" for r in group]
    spaces = [n for n in state.get("namespaces", []) if n in existing_namespaces()]
    run_batch("ip", [f"netns del {n}" for n in spaces], force=True)
    removed += [f"network namespace {n}" for n in spaces]
    present = system.existing_interfaces()
    intfs = [i for i in state.get("interfaces", []) if i in present]
    # Deleting one end of a veth pair deletes the other: -force goes on past those.
    run_batch("ip", [f"link del dev {i}" for i in intfs], force=True)
    removed += [f"interface {i}" for i in intfs]
    return removed


def leftovers(state: dict[str, Any]) -> list[str]:
    """Recorded resources that still exist (empty after a clean down)."""
    procs = [*adopted_processes(), *state.get("processes", [])]
    out = [f"process {r['pid']} ({r.get('what')})" for r in procs if is_alive(r)]
    out += [f"network namespace {n}" for n in state.get("namespaces", []) if n in existing_namespaces()]
    present = system.existing_interfaces()
    out += [f"interface {i}" for i in state.get("interfaces", []) if i in present]
    return out

