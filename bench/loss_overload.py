"""Which training loss lets the twin learn a full buffer: the base model fine-tuned on a stored
run's first windows with the MAPE loss and with the log loss (|log(pred / y)|, `vtwin.train.LOSSES`),
the same budget and seed, each scored on the run's later windows (held out by time) beside the
base model untouched: delay MAPE, both NMSE definitions, and for the flows whose path crosses a
link the fluid model calls overloaded (a full buffer), MAPE and the median predicted over
measured delay. Prints one JSON document.

    .venv/bin/python bench/loss_overload.py --data DATA [--run RUN] [--train-share 0.6] [--budget 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from traffic.store import Stores  # noqa: E402
from vtwin.base_model import load as load_base  # noqa: E402
from vtwin.dataset import from_stores  # noqa: E402
from vtwin.evaluate import mape, nmse_db, nmse_power_db  # noqa: E402
from vtwin.features import snapshot_tensors  # noqa: E402
from vtwin.train import train  # noqa: E402
from vtwin.twin import Twin  # noqa: E402


def crosses_full_buffer(t: dict[str, np.ndarray]) -> np.ndarray:
    """Per flow of a snapshot's raw tensors: does its path cross a link with a full buffer (fluid model)?"""
    return np.concatenate([t["link_full"] > 0, [False]])[t["path"]].any(axis=1)


def full_buffer_flows(sample: Any) -> np.ndarray:
    return crosses_full_buffer(snapshot_tensors(sample.snapshot))


def score(predict: Any, test: list) -> dict[str, Any]:
    pd = np.asarray(predict([s.snapshot for s in test])[0])
    yd = np.concatenate([s.delay_ms for s in test])
    over = np.concatenate([full_buffer_flows(s) for s in test])
    ok = np.isfinite(yd)
    o = ok & over
    ratio = [float(p / y) for p, y in zip(pd[o], yd[o], strict=True) if y > 0]
    return {"flows": int(ok.sum()), "delay_mape": round(mape(pd, yd), 2), "delay_nmse_db": round(nmse_db(pd, yd), 2),
            "delay_nmse_power_db": round(nmse_power_db(pd, yd), 2),
            "full_buffer_flows": int(o.sum()),
            "full_buffer_mape": round(mape(pd[o], yd[o]), 2) if o.any() else None,
            "full_buffer_median_pred_over_measured": round(statistics.median(ratio), 3) if ratio else None,
            "other_mape": round(mape(pd[ok & ~over], yd[ok & ~over]), 2) if (ok & ~over).any() else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--run", default=None)
    ap.add_argument("--train-share", type=float, default=0.6)
    ap.add_argument("--budget", type=float, default=60.0)
    args = ap.parse_args()
    stores = Stores(Path(args.data))
    run = args.run or stores.runs()[0]["id"]
    smp = sorted(from_stores(stores, [run]), key=lambda s: s.window)
    k = int(len(smp) * args.train_share)
    fit, test = smp[:k], smp[k:]
    base = load_base()
    out: dict[str, Any] = {"data": args.data, "run": run, "train_windows": len(fit), "test_windows": len(test),
                           "budget_s": args.budget, "base": score(base.twin(xla=False).predict, test)}
    for loss in ("mape", "log"):
        tw = load_base().twin(xla=False)
        r = train(fit, model=tw.model, norm=tw.norm, budget_s=args.budget,
                  epochs=1000, patience=1000, seed=0, progress=False, loss=loss)
        out[loss] = {"epochs": r.epochs, **score(Twin(r.model, r.norm, xla=False).predict, test)}
        print(f"{loss}: {out[loss]}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
