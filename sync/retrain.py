"""One retraining job, run by the model manager as a separate low-priority process.

It trains on the run's labeled windows from `--from-window` on (the post-drift data) plus a replay
sample of older labeled windows, warm-started from `--parent` (or from scratch for the bootstrap
model), within a time budget; holds back the newest post-drift windows; scores the candidate and
the parent on them; registers the candidate (status `candidate`) and prints one JSON line:
{"version", "candidate": {...}, "serving": {...}, "train_windows", "held_out_windows", ...}.

The process puts itself in the SCHED_IDLE class (it only gets CPU time nothing else wants), at
nice 19, with one TensorFlow thread, so that the emulated network it shares the cores with is not
starved (a starved switch daemon or delay relay adds delay that is not the network's; see
bench/distortion.py). The manager kills it on timeout.

    python -m sync.retrain --data DIR --run RUN --from-window W [--parent v3] [--budget 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: Budgets (s) under which training runs eagerly instead of tracing the step first.
EAGER_BELOW_S = 45.0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m sync.retrain")
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--from-window", type=int, default=0, help="first post-drift window")
    ap.add_argument("--to-window", type=int, default=None, help="last window to use (default: all labeled)")
    ap.add_argument("--parent", default=None, help="warm start from this version (and compare against it)")
    ap.add_argument("--replay", type=int, default=20, help="older labeled windows mixed in")
    ap.add_argument("--held-out", type=float, default=0.25, help="share of post-drift windows held back")
    ap.add_argument("--budget", type=float, default=60.0, help="training time budget (s)")
    ap.add_argument("--state", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1, help="TensorFlow threads")
    ap.add_argument("--nice", type=int, default=19)
    ap.add_argument("--idle", action=argparse.BooleanOptionalAction, default=True,
                    help="SCHED_IDLE: run only on CPU time nothing else wants (default on)")
    ap.add_argument("--lr", type=float, default=3e-3, help="learning rate (few epochs: higher than ndt train's)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.nice:
        os.nice(args.nice)
    if args.idle and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    from vtwin.tfload import tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from traffic.store import Stores
    from vtwin.dataset import from_stores
    from vtwin.evaluate import scores
    from vtwin.registry import Registry, uri
    from vtwin.train import TwinModel, data_range, train

    t0 = time.monotonic()
    stores = Stores(args.data)
    registry = Registry(stores)
    samples = from_stores(stores)
    upto = args.to_window if args.to_window is not None else 1 << 62
    post = sorted((s for s in samples if s.run == args.run and args.from_window <= s.window <= upto),
                  key=lambda s: s.window)
    older = [s for s in samples if not (s.run == args.run and s.window >= args.from_window)]
    if len(post) < 4:
        raise SystemExit(f"retrain: only {len(post)} labeled window(s) from window {args.from_window} of {args.run}")
    k = max(1, round(len(post) * args.held_out))
    fit_post, held = post[:-k], post[-k:]
    rng = random.Random(args.seed)
    replay = rng.sample(older, min(args.replay, len(older)))
    model = norm = None
    parent_uri = None
    if args.parent:
        model, norm, _ = registry.load("delay", args.parent)
        parent_uri = uri("delay", args.parent)
    # Tracing the training step costs ~16 s on one thread, then saves ~2 s per epoch of ~40 windows:
    # under a short budget, eager steps get more epochs done.
    res = train(fit_post + replay, model=model, norm=norm, state=args.state, iterations=args.iterations,
                budget_s=args.budget, epochs=1000, patience=15, seed=args.seed, progress=False, lr=args.lr,
                eager=args.budget < EAGER_BELOW_S)

    def score(twin: TwinModel) -> dict:
        import numpy as np

        d, j = twin.predict(held)
        return scores(d, j, np.concatenate([s.delay_ms for s in held]), np.concatenate([s.jitter_ms for s in held]))

    cand = score(TwinModel(res.model, res.norm, xla=False))
    serving = None
    if args.parent:
        pm, pn, _ = registry.load("delay", args.parent)
        serving = score(TwinModel(pm, pn, xla=False))
    metrics = {"validation": {"candidate": cand, "serving": serving, "windows": [held[0].window, held[-1].window]},
               "training": {"epochs": res.epochs, "best_epoch": res.best_epoch, "seconds": res.seconds,
                            "stopped": res.stopped, "val_delay_mape": res.best_val_mape}}
    version = registry.register("delay", res.model, res.norm, data_range=data_range(fit_post + replay),
                                metrics=metrics, parent=parent_uri)
    print(json.dumps({"version": version, "candidate": cand, "serving": serving, "post_windows": len(post),
                      "train_windows": len(fit_post), "replay_windows": len(replay), "held_out_windows": len(held),
                      "first_train_window": fit_post[0].window if fit_post else None,
                      "training": metrics["training"], "seconds": round(time.monotonic() - t0, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
