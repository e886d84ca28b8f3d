"""Remove exactly what a lab recorded in its state file: its processes (checked by pid and start
time), its Open vSwitch bridges and its root-namespace interfaces. Nothing else is touched."""

from __future__ import annotations

from typing import Any

from . import system
from .state import is_alive, stop_process


def remove_recorded(state: dict[str, Any]) -> list[str]:
    """Remove the state's resources that still exist; return what was removed."""
    removed = []
    procs = state.get("processes", [])
    # Controller last: switches and relays go first, so nothing reconnects.
    for rec in sorted(procs, key=lambda r: r.get("what") == "controller"):
        if is_alive(rec):
            stop_process(rec)
            removed.append(f"process {rec['pid']} ({rec.get('what')})")
    bridges = set(state.get("bridges", []))
    if bridges:
        present = system.existing_bridges() & bridges
        for br in sorted(present):
            system.run(["ovs-vsctl", "--timeout=10", "--if-exists", "del-br", br], timeout=20)
            removed.append(f"bridge {br}")
    present_intfs = system.existing_interfaces()
    for intf in state.get("interfaces", []):
        if intf in present_intfs:
            system.run(["ip", "link", "del", "dev", intf])
            removed.append(f"interface {intf}")
    return removed


def leftovers(state: dict[str, Any]) -> list[str]:
    """Recorded resources that still exist (empty after a clean down)."""
    out = [f"process {r['pid']} ({r.get('what')})" for r in state.get("processes", []) if is_alive(r)]
    out += [f"bridge {b}" for b in sorted(system.existing_bridges() & set(state.get("bridges", [])))]
    present = system.existing_interfaces()
    out += [f"interface {i}" for i in state.get("interfaces", []) if i in present]
    return out
