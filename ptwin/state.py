"""The lab's run directory and state file, and the identity of the processes it records.

The state file lists every resource the lab created (bridges, root-namespace interfaces,
processes with their start times) as soon as it is created, so `ndt lab down` can remove
exactly those even when the lab's own process died. Processes that other programs start for
the running lab (a traffic run's D-ITG senders and receivers and its collector, the closed
loop's training worker) are recorded beside it, one file each in `adopted/`
(`adopt`/`release`), so that `ndt lab down` ends them too when the program that started them
was killed.
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


def token_path() -> Path:
    """The controller's bearer token for routing changes (0600, written when the lab starts)."""
    return lab_dir() / "controller.token"


def adopted_dir() -> Path:
    return lab_dir() / "adopted"


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


#: Clock ticks per second of /proc/PID/stat's times.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> tuple[str, list[bytes]] | None:
    """(command name, the fields after it) of /proc/PID/stat, None if the process is gone or a
    zombie. Field 0 is the state, 11 and 12 user and system time, 19 the start time (ticks)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # bytes: the command name in parentheses is whatever the process set, not always UTF-8
    head, _, tail = stat.rpartition(b")")
    fields = tail.split()
    if not fields or fields[0] in (b"Z", b"X"):
        return None  # a zombie has finished running
    return head.split(b"(", 1)[-1].decode(errors="replace"), fields


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone."""
    st = proc_stat(pid)
    return None if st is None else int(st[1][19])


def cpu_ticks(pid: int) -> int | None:
    """User + system CPU time `pid` has used (clock ticks), None if it is gone."""
    st = proc_stat(pid)
    return None if st is None else int(st[1][11]) + int(st[1][12])


def process_record(pid: int, what: str, stop: str = "TERM") -> dict[str, Any]:
    """A process the lab started; `stop` names the signal that ends it (HUP for Mininet shells,
    which ignore TERM), sent to its process group when it leads one."""
    return {"pid": pid, "start": start_time(pid), "what": what, "stop": stop}


def adopt(pid: int, what: str, stop: str = "TERM") -> Path | None:
    """Record a process started for the running lab by another program, so `ndt lab down` ends
    it even if that program dies; returns the record's path (for `release`), or None when no lab
    is recorded (a store-only run: nothing would take it down)."""
    if not state_path().exists():
        return None
    rec = process_record(pid, what, stop)
    if rec["start"] is None:
        return None  # it has already ended
    d = adopted_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{pid}-{rec['start']}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, path)
    return path


def release(path: Path | None) -> None:
    """Forget an adopted process (its owner stopped it)."""
    if path is not None:
        path.unlink(missing_ok=True)


def adopted_processes() -> list[dict[str, Any]]:
    """The adopted processes' records (whether or not they still run)."""
    out = []
    try:
        paths = sorted(adopted_dir().glob("*.json"))
    except OSError:
        return out
    for path in paths:
        try:
            rec = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("pid"), int):
            out.append(rec)
    return out


def is_alive(rec: dict[str, Any]) -> bool:
    """True when the recorded process still runs (same pid and same start time: not a reuse)."""
    return rec.get("start") is not None and start_time(rec["pid"]) == rec["start"]


def _signal(rec: dict[str, Any], sig: int) -> None:
    pid = rec["pid"]
    try:
        if sig != signal.SIGKILL and rec.get("stop") == "HUP" and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_processes(recs: list[dict[str, Any]], timeout: float = 5.0) -> None:
    """Signal every recorded process that still runs, wait up to `timeout` seconds for all of
    them, then SIGKILL the ones left. Processes are checked by start time, never by name."""
    alive = [r for r in recs if is_alive(r)]
    for rec in alive:
        _signal(rec, signal.SIGHUP if rec.get("stop") == "HUP" else signal.SIGTERM)
    for sig_wait in (timeout, 2.0):
        deadline = time.monotonic() + sig_wait
        while alive and time.monotonic() < deadline:
            for rec in alive:
                _reap(rec["pid"])
            alive = [r for r in alive if is_alive(r)]
            if alive:
                time.sleep(0.05)
        for rec in alive:
            _signal(rec, signal.SIGKILL)


def stop_process(rec: dict[str, Any], timeout: float = 5.0) -> None:
    stop_processes([rec], timeout)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
