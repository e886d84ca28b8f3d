"""The model manager: a lock and a state machine around retraining.

    serving -> collecting (post-drift labels) -> training -> validating -> swapping -> serving

A drift while the manager is not serving is recorded and not acted on. Training runs in a separate,
lower-priority worker process (`sync.retrain --serve`, started with the loop so that its TensorFlow
import and trace are paid once, before the first drift), so the loop keeps predicting, and a crash
or a timeout of the trainer only costs that attempt: the worker is killed (a new one is started
for the next job), the serving model keeps serving and the event is recorded.
The validation gate: the candidate replaces the serving model only if its delay MAPE on held-out
post-drift windows is lower; otherwise it is archived as rejected. The manager's first job can be
the bootstrap: with no model yet, it collects the first labeled windows and trains the initial one;
when the serving model is the shipped base model (`vtwin.base_model`), its first job adapts it:
a warm start from the base on the first labeled windows, swapped in only if it beats the base.
Labels pause while a job trains (`Stores.pause_labels`): a training job slows the lab's userspace
switches and delay relays, so windows measured then are left unlabeled rather than stored with
delay that is not the network's (bench/distortion.py). The worker's own start-up (TensorFlow
import and trace, as distorting) happens before the loop's traffic starts, so it needs no pause;
only a worker started mid-run (replacing one that crashed or timed out) pauses labels until ready.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from traffic.store import Stores
from vtwin.registry import Registry

from .worker import TrainerWorker

STATES = ("bootstrap", "serving", "collecting", "training", "validating", "swapping")


@dataclass
class ManagerConfig:
    min_post_windows: int = 10  # labeled windows after the detection before retraining starts
    replay: int = 20
    budget_s: float = 30.0  # training budget given to the trainer (early stopping usually ends it sooner)
    timeout_s: float = 180.0  # the trainer is killed after this
    # retraining: epochs without progress (a 1 % better validation MAPE) before stopping; a warm-started
    # model facing an overloaded phase crawls for 60 epochs before its queues grow (10 stopped it there)
    patience: int = 30
    bootstrap_patience: int = 50  # a new model plateaus for a while before it learns: any progress counts
    threads: int = 1
    nice: int = 19
    state: int = 32
    iterations: int = 6

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: Starts a training worker with these arguments. A worker reads jobs as JSON lines on its stdin;
#: a process without a stdin pipe is a one-shot trainer, which prints one result and ends.
Trainer = Callable[[list[str]], subprocess.Popen]


def default_trainer(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sync.retrain", "--serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True, bufsize=1,
                            cwd=Path(__file__).resolve().parents[1])


@dataclass
class Job:
    kind: str  # bootstrap | adapt (the base model to this network) | retrain
    from_window: int
    drift_window: int | None
    proc: subprocess.Popen | None = None  # the worker's process while it runs this job
    started: float = 0.0
    result: dict[str, Any] | None = None


@dataclass
class ModelManager:
    stores: Stores
    run_id: str
    on_swap: Callable[[str], dict[str, Any]]  # serve this version from now on; returns the swap record
    config: ManagerConfig = field(default_factory=ManagerConfig)
    trainer: Trainer = default_trainer

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.registry = Registry(self.stores)
        self.serving = self.registry.active("delay")
        self.state = "serving" if self.serving else "bootstrap"
        self.job: Job | None = Job("bootstrap", 0, None) if self.serving is None else None
        if self.serving:
            rec = self.registry.show("delay", self.serving)
            # the worker trains models of the serving one's architecture (warm starts)
            self.config = replace(self.config, state=rec["config"]["state"], iterations=rec["config"]["iterations"])
            if ((rec.get("metrics") or {}).get("training") or {}).get("source") == "base":
                # the base model serves from the first window; the first labels fine-tune it to this network
                self.job = Job("adapt", 0, None)
                self.state = "collecting"
        self.history: list[dict[str, Any]] = []
        self.swaps = 0
        self.training_s = 0.0
        self.worker: TrainerWorker | None = None
        self.worker_started = 0.0
        self._ready_pid: int | None = None  # the worker whose readiness was recorded
        self._pauses: dict[str, int] = {}  # open label pauses: "warmup" (the worker's trace), "job"

    # -- events -----------------------------------------------------------------------------------
    def _event(self, kind: str, **detail: Any) -> None:
        rec = {"kind": kind, "at": time.time(), "state": self.state, **detail}
        self.history.append(rec)
        self.stores.event(self.run_id, rec["at"], kind, {k: v for k, v in rec.items() if k not in ("kind", "at")})

    def _to(self, state: str) -> None:
        self.state = state

    # -- inputs -----------------------------------------------------------------------------------
    def on_drift(self, window: int, detail: dict[str, Any] | None = None) -> bool:
        """A detection at `window`; True if it starts a retraining, False if one is under way."""
        with self.lock:
            if self.state != "serving":
                self._event("drift_ignored", window=window, reason=f"manager is {self.state}", **(detail or {}))
                return False
            self.job = Job("retrain", window, window)
            self._to("collecting")
            self._event("drift", window=window, **(detail or {}))
            return True

    def labeled_windows_from(self, window: int) -> int:
        return self.stores.labeled_windows_from(self.run_id, window)

    def tick(self) -> None:
        """Advance the state machine; called by the loop every window (never blocks for long)."""
        with self.lock:
            self._note_ready()
            job = self.job
            if job is None:
                return
            if self.state in ("bootstrap", "collecting") and job.proc is None:
                if self.labeled_windows_from(job.from_window) >= self.config.min_post_windows:
                    self._start(job)
            elif self.state == "training" and job.proc is not None:
                self._poll(job)

    # -- training ---------------------------------------------------------------------------------
    def start_worker(self, pause: bool = True) -> None:
        """Start the training worker now (the loop does, before its traffic starts), so that its
        TensorFlow import and trace are done before the first job. `pause=False` when no window
        is being measured yet: then its start-up needs no label pause (`warmup_pause` opens one
        if the traffic has to start before it is ready)."""
        with self.lock:
            self._worker(pause=pause)

    def worker_ready(self) -> bool | None:
        """True once the worker has traced, None if it died, else False."""
        with self.lock:
            self._note_ready()
            w = self.worker
            if w is None or not w.alive():
                return None if w is None or w.ready is None else True
            return w.ready is not None

    def warmup_pause(self) -> None:
        """Labels pause until the worker is ready (traffic started while it still traces)."""
        with self.lock:
            if self.worker is not None and self.worker.ready is None:
                self._pause("warmup", "training worker start-up")

    def _pause(self, key: str, reason: str) -> None:
        """No labels while training shares the lab's cores (bench/distortion.py: a restrained job
        still added 0.09-0.12 ms to delays whose per-window deviation was 0.07 ms)."""
        if key not in self._pauses:
            self._pauses[key] = self.stores.pause_labels(self.run_id, time.time(), reason)

    def _resume(self, key: str) -> None:
        pid = self._pauses.pop(key, None)
        if pid is not None:
            self.stores.resume_labels(pid, time.time())

    def _drop_worker(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        self._resume("warmup")

    def _worker(self, pause: bool = True) -> TrainerWorker:
        if self.worker is not None and not self.worker.alive():
            self._drop_worker()  # reap it; a new one takes the job
        if self.worker is None:
            c = self.config
            args = ["--data", str(self.stores.root), "--run", self.run_id, "--threads", str(c.threads),
                    "--nice", str(c.nice), "--state", str(c.state), "--iterations", str(c.iterations)]
            if pause:  # a worker started while traffic runs (a replacement): its trace shares the cores
                self._pause("warmup", "training worker start-up")
            self.worker = TrainerWorker(self.trainer(args))
            self.worker_started = time.monotonic()
        return self.worker

    def _note_ready(self) -> None:
        w = self.worker
        if w is not None and w.ready is not None and self._ready_pid != w.pid:
            self._ready_pid = w.pid
            self._resume("warmup")
            self._event("trainer_ready", pid=w.pid, seconds=w.ready.get("seconds"),
                        wall_s=round(time.monotonic() - self.worker_started, 1))

    def _start(self, job: Job) -> None:
        c = self.config
        request: dict[str, Any] = {"from_window": job.from_window, "replay": c.replay, "budget": c.budget_s}
        if job.kind in ("retrain", "adapt") and self.serving:
            request.update(parent=self.serving, patience=c.patience, min_delta=0.01)
        else:
            request.update(patience=c.bootstrap_patience, min_delta=0.0)
        worker = self._worker()
        if not worker.send(request):  # it died since it was started: one fresh try
            self._drop_worker()
            worker = self._worker()
            worker.send(request)
        self._pause("job", f"{job.kind} training")
        job.proc = worker.proc
        job.started = time.monotonic()
        self._to("training")
        self._event("training_started", job=job.kind, from_window=job.from_window, pid=worker.pid,
                    trainer_ready=worker.ready is not None,
                    labeled_windows=self.labeled_windows_from(job.from_window))

    def _poll(self, job: Job) -> None:
        worker = self.worker
        if worker is None:  # stopped under it: nothing will answer
            self._finish(job, "training_failed", seconds=0.0, error="no trainer")
            return
        elapsed = time.monotonic() - job.started
        msg = worker.message()
        if msg is None and worker.alive():
            if elapsed > self.config.timeout_s:
                self._drop_worker()
                self.training_s += elapsed
                self._finish(job, "training_timeout", seconds=round(elapsed, 1))
            return
        if msg is None:  # it ended: its last lines may still be on their way
            worker.drain()
            msg = worker.message()
        self.training_s += elapsed
        if msg is None:
            error = worker.last_error()
            self._drop_worker()
            self._finish(job, "training_failed", seconds=round(elapsed, 1), error=error[:300])
            return
        if "error" in msg or "version" not in msg:
            self._finish(job, "training_failed", seconds=round(elapsed, 1),
                         error=str(msg.get("error") or "the trainer printed no result")[:300])
            return
        job.result = msg
        self._to("validating")
        self._validate(job, round(elapsed, 1))

    def _validate(self, job: Job, seconds: float) -> None:
        r = job.result or {}
        version = r["version"]
        cand = (r.get("candidate") or {}).get("delay_mape")
        serv = (r.get("serving") or {}).get("delay_mape")
        better = job.kind == "bootstrap" or (cand is not None and (serv is None or cand < serv))
        detail = {"job": job.kind, "version": version, "candidate_mape": cand, "serving_mape": serv,
                  "seconds": seconds, "drift_window": job.drift_window, "from_window": job.from_window,
                  "train_windows": r.get("train_windows"), "replay_windows": r.get("replay_windows"),
                  "held_out_windows": r.get("held_out_windows"), "first_train_window": r.get("first_train_window")}
        if not better:
            self.registry.set_status("delay", version, "rejected")
            self._finish(job, "candidate_rejected", **detail)
            return
        self._to("swapping")
        self.registry.promote("delay", version)
        try:
            swap = self.on_swap(version)
        except Exception as exc:  # noqa: BLE001 - a failed swap keeps the old model serving
            self.registry.rollback("delay") if self.serving else self.registry.set_status("delay", version, "rejected")
            self._finish(job, "swap_failed", error=repr(exc)[:300], **detail)
            return
        self.serving = version
        self.swaps += 1
        self._finish(job, "swapped", swap=swap, **detail)

    def _finish(self, current: Job, kind: str, **detail: Any) -> None:
        self._resume("job")
        self._to("serving" if self.serving else "bootstrap")
        self._event(kind, **detail)
        if self.serving:
            self.job = None
        else:  # the bootstrap failed: try again on the windows labeled since
            self.job = Job("bootstrap", current.from_window, None)

    def stop(self) -> None:
        """End the worker, killing a running job (the loop is ending)."""
        with self.lock:
            worker, self.worker = self.worker, None
            if worker is not None and self.state == "training":
                worker.kill()
                self._event("training_cancelled", pid=worker.pid)
            elif worker is not None and worker.ready is None:
                worker.kill()  # still importing and tracing: nothing to finish, and it reads no input yet
            elif worker is not None:
                worker.close()
            for key in list(self._pauses):
                self._resume(key)

    def status(self) -> dict[str, Any]:
        w = self.worker
        return {"state": self.state, "serving": self.serving, "swaps": self.swaps,
                "training_s": round(self.training_s, 1),
                "worker": None if w is None else {"pid": w.pid, "ready": w.ready is not None},
                "job": None if self.job is None else {"kind": self.job.kind, "from_window": self.job.from_window,
                                                      "pid": self.job.proc.pid if self.job.proc else None}}
