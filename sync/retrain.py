"""Retraining jobs, run by the model manager in a separate low-priority process.

A job trains on the run's labeled windows from `from_window` on (the post-drift data) plus a replay
sample of the run's older labeled windows, warm-started from `parent` (or from scratch for the bootstrap
model), within a time budget, with early stopping; holds back the newest post-drift windows;
scores the parent (before training) and the candidate on them; registers the candidate (status
`candidate`) and prints one JSON line:
{"version", "candidate": {...}, "serving": {...}, "train_windows", "held_out_windows", ...}.

With `--serve` the process is a worker: it imports TensorFlow and traces the training step once
(about 12 s on one thread), prints `{"ready": true, "seconds": ...}`, then runs one job per JSON
line read on stdin (`{"from_window": 130, "parent": "v2", "budget": 30}`; the keys are the
options below) and answers each with its result line, or `{"error": "..."}`; it ends at the end
of its input. Without `--serve` it runs the one job its options describe and exits.

The process puts itself in the SCHED_IDLE class (it only gets CPU time nothing else wants), at
nice 19, with one TensorFlow thread, so that the emulated network it shares the cores with is not
starved (a starved switch daemon or delay relay adds delay that is not the network's; see
bench/distortion.py). The manager kills it on timeout.

    python -m sync.retrain --data DIR --run RUN --from-window W [--parent v3] [--budget 30]
    python -m sync.retrain --data DIR --run RUN --serve
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@dataclass
class Job:
    """One retraining job: what the options (one-shot) or a stdin line (worker) ask for."""

    from_window: int = 0
    to_window: int | None = None
    parent: str | None = None
    replay: int = 20
    held_out: float = 0.25
    budget: float = 30.0
    patience: int = 30
    min_delta: float = 0.01
    lr: float = 3e-3
    seed: int = 0

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Job:
        unknown = set(d) - set(Job.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown job keys: {', '.join(sorted(unknown))}")
        return Job(**d)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m sync.retrain")
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--serve", action="store_true", help="a worker: trace once, then one job per stdin line")
    d = Job()
    ap.add_argument("--from-window", type=int, default=d.from_window, help="first post-drift window")
    ap.add_argument("--to-window", type=int, default=None, help="last window to use (default: all labeled)")
    ap.add_argument("--parent", default=None, help="warm start from this version (and compare against it)")
    ap.add_argument("--replay", type=int, default=d.replay, help="older labeled windows mixed in")
    ap.add_argument("--held-out", type=float, default=d.held_out, help="share of post-drift windows held back")
    ap.add_argument("--budget", type=float, default=d.budget, help="training time budget (s)")
    ap.add_argument("--patience", type=int, default=d.patience, help="epochs without progress before stopping")
    ap.add_argument("--min-delta", type=float, default=d.min_delta,
                    help="an epoch is progress only if it betters the best validation MAPE by this share")
    ap.add_argument("--lr", type=float, default=d.lr, help="learning rate (few epochs: higher than ndt train's)")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--state", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    ap.add_argument("--nice", type=int, default=19)
    ap.add_argument("--idle", action=argparse.BooleanOptionalAction, default=True,
                    help="SCHED_IDLE: run only on CPU time nothing else wants (default on)")
    return ap.parse_args(argv)


class Retrainer:
    """The worker's state: the stores, the registry and one traced Fitter, reused by every job
    whose parent has the same architecture."""

    def __init__(self, data: str, run: str, state: int, iterations: int) -> None:
        from traffic.store import Stores
        from vtwin.model import build_model
        from vtwin.registry import Registry
        from vtwin.train import Fitter

        self.stores = Stores(data)
        self.registry = Registry(self.stores)
        self.run = run
        self.fitter = Fitter(build_model(state, iterations))
        self.fitter.warm_up()
        self.initial = self.fitter.model.get_weights()  # a bootstrap job starts from these

    def _fitter_for(self, parent: str | None) -> Any:
        """The traced fitter, ready for the job: a new one if the parent has another architecture;
        for a bootstrap (no parent), at its initial weights."""
        from vtwin.train import Fitter

        if parent is None:
            self.fitter.model.set_weights(self.initial)
            return self.fitter
        cfg = self.registry.show("delay", parent)["config"]
        if (self.fitter.model.state, self.fitter.model.iterations) != (cfg["state"], cfg["iterations"]):
            from vtwin.model import build_model

            self.fitter = Fitter(build_model(cfg["state"], cfg["iterations"]))
            self.fitter.warm_up()
            self.initial = self.fitter.model.get_weights()
        return self.fitter

    def run_job(self, job: Job) -> dict[str, Any]:
        from vtwin.dataset import from_stores
        from vtwin.lifecycle import TrainSpec, train_and_register
        from vtwin.registry import uri

        t0 = time.monotonic()
        # the run's own windows only: reading every run of the data directory per job grew with it
        samples = from_stores(self.stores, runs=[self.run])
        upto = job.to_window if job.to_window is not None else 1 << 62
        post = sorted((s for s in samples if job.from_window <= s.window <= upto), key=lambda s: s.window)
        older = [s for s in samples if s.window < job.from_window]
        if len(post) < 4:
            raise ValueError(f"only {len(post)} labeled window(s) from window {job.from_window} of {self.run}")
        k = max(1, round(len(post) * job.held_out))
        fit_post, held = post[:-k], post[-k:]
        replay = random.Random(job.seed).sample(older, min(job.replay, len(older)))
        spec = TrainSpec(source="loop", epochs=1000, budget_s=job.budget, patience=job.patience,
                         min_delta=job.min_delta, seed=job.seed, lr=job.lr,
                         warm_start=uri("delay", job.parent) if job.parent else None)
        # registered as a candidate: the model manager validates it against the serving model
        out = train_and_register(self.registry, fit_post + replay, held, spec, fitter=self._fitter_for(job.parent))
        m = out["metrics"]
        return {"version": out["version"], "candidate": m["held_out"]["overall"], "serving": m["parent"],
                "post_windows": len(post), "train_windows": len(fit_post), "replay_windows": len(replay),
                "held_out_windows": len(held), "first_train_window": fit_post[0].window if fit_post else None,
                "training": m["training"], "seconds": round(time.monotonic() - t0, 2)}


def _print(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.serve:  # the manager owns a worker's life: a Ctrl-C on the terminal is the loop's to handle
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.nice:
        os.nice(args.nice)
    if args.idle and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    t0 = time.monotonic()
    from vtwin.tfload import tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    worker = Retrainer(args.data, args.run, args.state, args.iterations)
    if not args.serve:
        job = Job(**{name: getattr(args, name) for name in Job.__dataclass_fields__})
        try:
            result = worker.run_job(job)
        except ValueError as exc:
            raise SystemExit(f"retrain: {exc}") from None
        _print({**result, "seconds": round(time.monotonic() - t0, 2)})
        return 0
    _print({"ready": True, "seconds": round(time.monotonic() - t0, 2), "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            result = worker.run_job(Job.from_dict(json.loads(line)))
        except Exception as exc:  # noqa: BLE001 - a failed job answers with its error; the worker stays
            result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
