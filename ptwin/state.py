"""The lab's run directory and state file, and the identity of the processes it records.

The state file lists every resource the lab created (bridges, root-namespace interfaces,
processes with their start times) as soon as it is created, so `ndt lab down` can remove
exactly those even when the lab's own process died.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any


def run_dir() -> Path:
    return Path(os.environ.get("NDT_RUN_DIR", "/run/ndt"))


def lab_dir() -> Path:
    return run_dir() / "lab"


def state_path() -> Path:
    return lab_dir() / "state.json"


def control_path() -> Path:
    return lab_dir() / "control.sock"


def key_path() -> Path:
    return lab_dir() / "control.key"


def read_state() -> dict[str, Any] | None:
    try:
        return json.loads(state_path().read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return {"status": "corrupt"}


def write_state(state: dict[str, Any]) -> None:
    """Atomic write: a reader sees the old or the new file, never half of one."""
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None  # a zombie has finished running
    return int(fields[19])


def process_record(pid: int, what: str) -> dict[str, Any]:
    return {"pid": pid, "start": start_time(pid), "what": what}


def is_alive(rec: dict[str, Any]) -> bool:
    """True when the recorded process still runs (same pid and same start time: not a reuse)."""
    return rec.get("start") is not None and start_time(rec["pid"]) == rec["start"]


def stop_process(rec: dict[str, Any], timeout: float = 5.0) -> None:
    """SIGTERM the recorded process, SIGKILL it if it has not gone after `timeout` seconds."""
    if not is_alive(rec):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        try:
            os.kill(rec["pid"], sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not is_alive(rec):
                return
            _reap(rec["pid"])
            time.sleep(0.05)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
