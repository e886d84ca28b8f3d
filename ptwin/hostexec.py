"""Run programs inside a lab host's network namespace from outside the lab process
(`mnexec -a PID`), given the host pids that `ndt lab status --json` reports. The caller owns
what it starts and stops it by pid: such a process keeps the namespace alive after `lab down`."""

from __future__ import annotations


def host_command(pid: int, args: list[str]) -> list[str]:
    """The argument list that runs `args` (no shell) in the namespace of host process `pid`."""
    return ["mnexec", "-a", str(pid), *args]
