"""Which links the twin should call full: the shipped base model scored with its learned
full-buffer gate and with the gate held open (every link the fluid model calls overloaded adds its
whole buffer to the delay of the flows crossing it), each with links counted as full once the
traffic reaching them exceeds their capacity (the rule the model was trained on before
`features.FULL_MARGIN`) or exceeds it by 5 or 10 %; on a corpus' held-out windows (the split `ndt
model base build` holds out), on every window of other corpora (the unseen networks, by topology)
and of stored runs. Per set and variant: delay MAPE, both NMSE definitions (ours / the variance,
the paper's / mean y^2), and for flows crossing a full buffer (at margin 1.0: the same flows for
every variant), UDP and TCP apart, their MAPE and median predicted over measured delay. Prints
one JSON document.

    .venv/bin/python bench/full_gate.py [--corpus CORPUS] [--unseen DATA ...] [--data DATA ...]
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
sys.path.insert(0, str(ROOT / "bench"))

from loss_overload import crosses_full_buffer  # noqa: E402

import vtwin.features as features  # noqa: E402
from traffic.store import Stores  # noqa: E402
from vtwin.base_model import load as load_base  # noqa: E402
from vtwin.dataset import from_corpus, from_stores, split  # noqa: E402
from vtwin.evaluate import mape, nmse_db, nmse_power_db  # noqa: E402

OPEN_BIAS = 30.0  # sigmoid(30) = 1 - 1e-13
MARGINS = (1.0, 1.05, 1.1)
TCP = features.FLOW_COLUMNS.index("is_tcp")


def twins() -> dict[str, Any]:
    """The base model as shipped, and the same weights with the gate's input cut and its bias
    saturated: gate 1 on every link."""
    learned, opened = load_base().twin(xla=False), load_base().twin(xla=False)
    gate = opened.model.full_gate
    gate.kernel.assign(np.zeros(gate.kernel.shape, np.float32))
    gate.bias.assign(np.full(gate.bias.shape, OPEN_BIAS, np.float32))
    return {"learned": learned, "open": opened}


def with_margin(margin: float, fn: Any, *args: Any) -> Any:
    kept = features.FULL_MARGIN
    features.FULL_MARGIN = margin
    try:
        return fn(*args)
    finally:
        features.FULL_MARGIN = kept


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(float(x), nd)


def score(pred: np.ndarray, y: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, Any]:
    """Delay MAPE and both NMSE definitions over all flows; per group its flows, MAPE and median
    predicted over measured delay."""
    ok = np.isfinite(y) & (y > 0)
    out: dict[str, Any] = {"flows": int(ok.sum()), "delay_mape": _r(mape(pred[ok], y[ok])),
                           "delay_nmse_db": _r(nmse_db(pred[ok], y[ok])),
                           "delay_nmse_power_db": _r(nmse_power_db(pred[ok], y[ok]))}
    for name, mask in groups.items():
        m = ok & mask
        out[name] = {"flows": int(m.sum()), "delay_mape": _r(mape(pred[m], y[m])) if m.any() else None,
                     "median_pred_over_measured": _r(np.median(pred[m] / y[m]), 3) if m.any() else None}
    return out


def flow_groups(samples: list) -> dict[str, np.ndarray]:
    """Flows crossing a link the fluid model calls full at margin 1.0, UDP and TCP apart, and the others."""
    full, tcp = [], []
    for s in samples:
        t = with_margin(1.0, features.snapshot_tensors, s.snapshot)
        full.append(crosses_full_buffer(t))
        tcp.append(t["flow_x"][:, TCP] > 0)
    full_, tcp_ = np.concatenate(full), np.concatenate(tcp)
    return {"full_buffer_udp": full_ & ~tcp_, "full_buffer_tcp": full_ & tcp_, "other": ~full_}


def sets(args: argparse.Namespace) -> dict[str, list]:
    out: dict[str, list] = {}
    if args.corpus:
        out["held_out"] = split(from_corpus(Stores(args.corpus)))[1]
    for data in args.unseen:
        for s in from_corpus(Stores(data)):
            out.setdefault(f"unseen {s.topology}", []).append(s)
    for data in args.data:
        stores = Stores(data)
        for run in stores.runs():
            smp = from_stores(stores, [run["id"]])
            if smp:
                out[f"run {run['id']} ({smp[0].topology})"] = smp
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", help="a 'ndt dataset build' corpus: its held-out windows")
    ap.add_argument("--unseen", nargs="*", default=[], help="corpora scored on every window, by topology")
    ap.add_argument("--data", nargs="*", default=[], help="data directories of runs, scored on every window")
    args = ap.parse_args()
    chosen = sets(args)
    if not chosen:
        sys.exit("bench/full_gate.py: error: nothing to score (give --corpus, --unseen or --data)")
    tw = twins()
    out: dict[str, Any] = {"open_bias": OPEN_BIAS, "shipped_margin": features.FULL_MARGIN, "sets": {}}
    for name, samples in chosen.items():
        y, groups = np.concatenate([s.delay_ms for s in samples]), flow_groups(samples)
        snaps = [s.snapshot for s in samples]
        res: dict[str, Any] = {"windows": len(samples)}
        for gate, twin in tw.items():
            for m in MARGINS:
                pred = with_margin(m, twin.predict, snaps)[0]
                res[f"{gate}_margin_{m:g}"] = score(np.asarray(pred), y, groups)
        out["sets"][name] = res
        print(f"{name}: {json.dumps(res)}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
