"""What a UDP flow's counted rate does to the twin against its asked rate. The shipped base model
was trained on asked rates; since 2026-12-04 the snapshots give UDP flows of a live run the rate
their ingress switch counted in the window (`vtwin.dataset.sending_rate`). This scores the
shipped model on a corpus both ways (delay and jitter MAPE, both NMSE definitions, overall and
per topology, UDP flows and all flows); with `--train`, it also trains two models the same way on
`--train` (a corpus), one per input, and scores both. Prints one JSON document.

    .venv/bin/python bench/sending_rate.py --data DATA [--train CORPUS --budget 300]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vtwin.dataset as dataset  # noqa: E402
from traffic.store import Stores  # noqa: E402
from vtwin.evaluate import scores  # noqa: E402

COUNTED = dataset.sending_rate
KEEP = ("delay_mape", "delay_nmse_db", "delay_nmse_power_db", "jitter_mape", "flows")


def asked(f: Any) -> float:
    return f.rate_bps


def samples(data: str, rate: Any) -> list:
    dataset.sending_rate = rate
    try:
        return dataset.from_corpus(Stores(Path(data)))
    finally:
        dataset.sending_rate = COUNTED


def score(predict: Any, smp: list) -> dict[str, Any]:
    """Overall and per topology, all flows and UDP flows only."""
    out: dict[str, Any] = {}
    for topo in [None, *sorted({s.topology for s in smp})]:
        part = [s for s in smp if topo is None or s.topology == topo]
        pd, pj = predict([s.snapshot for s in part])
        yd = np.concatenate([s.delay_ms for s in part])
        yj = np.concatenate([s.jitter_ms for s in part])
        udp = np.concatenate([[f.proto == "udp" for f in s.snapshot.flows] for s in part])
        row = {k: v for k, v in scores(pd, pj, yd, yj).items() if k in KEEP}
        row["udp"] = {k: v for k, v in scores(pd[udp], pj[udp], yd[udp], yj[udp]).items() if k in KEEP}
        out[topo or "overall"] = row
    return out


def shipped(data: str) -> dict[str, Any]:
    from vtwin.base_model import load

    twin = load().twin(xla=False)
    return {name: score(twin.predict, samples(data, rate)) for name, rate in (("asked", asked), ("counted", COUNTED))}


def trained(corpus: str, data: str, budget: float) -> dict[str, Any]:
    from vtwin.train import train
    from vtwin.twin import Twin

    res: dict[str, Any] = {}
    for name, rate in (("asked", asked), ("counted", COUNTED)):
        fit, held = dataset.split(samples(corpus, rate))
        print(f"{name}: training on {len(fit)} windows; {budget:g} s", file=sys.stderr, flush=True)
        r = train(fit, state=24, iterations=3, budget_s=budget, patience=40, seed=0, progress=False, halve_after=10)
        twin = Twin(r.model, r.norm, xla=False)
        res[name] = {"training_s": r.seconds, "epochs": r.epochs, "held_out": score(twin.predict, held)["overall"],
                     "data": score(twin.predict, samples(data, rate))}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a corpus to score on (e.g. the unseen networks')")
    ap.add_argument("--train", default=None, help="also train one model per input on this corpus")
    ap.add_argument("--budget", type=float, default=300.0, help="training seconds per model (with --train)")
    args = ap.parse_args()
    out: dict[str, Any] = {"data": args.data, "shipped": shipped(args.data)}
    if args.train:
        out["trained"] = trained(args.train, args.data, args.budget)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
