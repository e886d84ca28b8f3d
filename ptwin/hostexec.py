"""Run programs inside a lab host's network namespace from outside the lab process
(`mnexec -a PID`), given the host pids that `ndt lab status --json` reports. The caller owns
what it starts and stops it by pid."""

from __future__ import annotations

import subprocess
from typing import Any

from .control import lab_status
from .errors import LabError


def host_pids() -> dict[str, int]:
    st = lab_status()
    if st.get("status") != "ready":
        raise LabError("no lab is ready; start one with 'ndt lab up TOPO'")
    return {name: h["pid"] for name, h in st["info"]["hosts"].items()}


def host_command(pid: int, args: list[str]) -> list[str]:
    return ["mnexec", "-a", str(pid), *args]


def popen(pid: int, args: list[str], **kwargs: Any) -> subprocess.Popen:
    """Start `args` (no shell) in the namespace of host process `pid`."""
    return subprocess.Popen(host_command(pid, args), **kwargs)


def run(pid: int, args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(host_command(pid, args), capture_output=True, text=True, timeout=timeout)
