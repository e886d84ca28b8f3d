"""The training worker process as the model manager sees it: start it, hand it a job, read what
it prints without ever blocking the loop, notice when it died, kill it and reap it.

The worker (`python -m sync.retrain --serve`) prints JSON lines: `{"ready": ...}` once it has
traced its model, then one result (`{"version": ...}`) or `{"error": ...}` per job read on its
stdin. Threads read its stdout (into a queue) and its stderr (the last lines, for error reports),
so neither pipe can fill up and stall it. The lab adopts the worker (`ptwin.state.adopt`), so
`ndt lab down` ends it when the loop that started it was killed.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections import deque
from typing import Any

from ptwin.state import adopt, release


class TrainerWorker:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self.ready: dict[str, Any] | None = None
        self.adopted = adopt(proc.pid, "training worker")
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True, name=f"trainer-{proc.pid}-out"),
                         threading.Thread(target=self._read_stderr, daemon=True, name=f"trainer-{proc.pid}-err")]
        for t in self._readers:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_stdout(self) -> None:
        if self.proc.stdout is None:
            return
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue  # not a protocol line (a library printing): ignored
            if isinstance(msg, dict) and msg.get("ready"):
                self.ready = msg
            elif isinstance(msg, dict):
                self.lines.put(msg)

    def _read_stderr(self) -> None:
        if self.proc.stderr is None:
            return
        for line in self.proc.stderr:
            if line.strip():
                self.stderr_tail.append(line.rstrip())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, job: dict[str, Any]) -> bool:
        """Hand the worker a job; False if it cannot take it (its input is closed: it died)."""
        if self.proc.stdin is None:
            return True  # a one-shot trainer that reads nothing: it works from its arguments
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def message(self) -> dict[str, Any] | None:
        """The next result or error line, if one has arrived (the ready line is kept in `ready`)."""
        try:
            return self.lines.get_nowait()
        except queue.Empty:
            return None

    def drain(self, timeout: float = 2.0) -> None:
        """After the process ended: wait for the readers to take its last lines."""
        for t in self._readers:
            t.join(timeout)

    def last_error(self) -> str:
        """The last line it wrote on stderr, else its exit status."""
        self.drain()
        return self.stderr_tail[-1] if self.stderr_tail else f"exit status {self.proc.returncode}"

    def kill(self) -> None:
        """Kill and reap it (no zombie, no open pipes)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        release(self.adopted)
        self.drain()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def close(self, timeout: float = 5.0) -> None:
        """End it cleanly (end of input), killing it if it does not end in `timeout`."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
