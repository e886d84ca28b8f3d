"""The closed-loop run report: with and without synchronization side by side.

From a run's stored predictions (serving model and frozen shadow), labels, phases and events:
NMSE (dB, variance definition) over a sliding window of 100 labeled flow-windows, as a plot with phase boundaries,
detections and swaps marked; one row per drift with pre- and post-drift NMSE with and without
sync (the layout of Table 7 of the self-adaptive NDT paper), each segment in both NMSE definitions
(`nmse_var_db_*`, ours, = the unlabeled `with`/`without`; `nmse_power_db_*`, the paper's) beside MAPE;
per phase (the paper's segments) delay and jitter in both definitions and the SLA scores with and
without synchronization, and the labels' own noise floor (`floor_nmse_*_db`: the NMSE of predicting
each flow by its mean label over the segment); detection delays; retraining
durations and the share of the run spent training (the bootstrap model included) and retraining
(after drifts), the training worker's start-up (TensorFlow import and trace, paid once a run, before
the traffic starts), the windows left unlabeled while training ran; the swap count; the SLA monitor's
confusion matrix against measured delay, with precision, recall, F1 and accuracy (the frozen
shadow's under `without_sync`); the predictions' intervals (`intervals`: coverage against the
nominal level and mean width relative to the prediction, per labeled window and over the run, and
the anomalies), drawn under the NMSE so the width's move after a drift shows. Written as
report.json and nmse.png in the run's directory (or --out).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from traffic.store import Stores
from vtwin import evaluate

from .sla import SlaStore
from .store import LoopStore

SLIDING = 100


def nmse_db(pred: np.ndarray, true: np.ndarray) -> float | None:
    x = evaluate.nmse_db(pred, true)
    return None if x is None else round(x, 2)


def nmse_power_db(pred: np.ndarray, true: np.ndarray) -> float | None:
    x = evaluate.nmse_power_db(pred, true)
    return None if x is None else round(x, 2)


def mape(pred: np.ndarray, true: np.ndarray) -> float | None:
    x = evaluate.mape(pred, true)
    return None if x is None else round(x, 2)


def _samples(stores: Stores, run_id: str, kpi: str = "delay") -> dict[str, np.ndarray]:
    """Labeled predictions of `kpi` (delay or jitter): window, flow (an index), label, serving and
    shadow model."""
    labels = stores.labels_of(run_id)
    rows = []
    flows: dict[str, int] = {}
    for r in LoopStore(stores).predictions(run_id):
        lab = labels.get((r["window"], r["flow_key"]))
        y, pred, shadow = getattr(lab, f"{kpi}_ms", None), r[f"{kpi}_ms"], r[f"shadow_{kpi}_ms"]
        if y is not None and y > 0 and pred is not None and shadow is not None:
            rows.append((r["window"], flows.setdefault(r["flow_key"], len(flows)), y, pred, shadow))
    a = np.asarray(rows, dtype=float).reshape(-1, 5)
    return {"window": a[:, 0].astype(int), "flow": a[:, 1].astype(int), "true": a[:, 2], "with": a[:, 3],
            "without": a[:, 4]}


def flow_mean_floor(flow: np.ndarray, true: np.ndarray) -> dict[str, float | None]:
    """NMSE (both definitions) of the hindsight oracle that predicts every flow-window by its flow's
    mean label over the same samples: the window-to-window noise of the labels, which no input
    constant per flow over a segment (offered rate, packet size, path, capacities, buffers) can
    explain. A model is near the labels' floor when its NMSE is near these."""
    if not len(true):
        return {"floor_nmse_power_db": None, "floor_nmse_var_db": None}
    sums = np.bincount(flow, weights=true)
    counts = np.bincount(flow)
    oracle = (sums / np.maximum(counts, 1))[flow]
    return {"floor_nmse_power_db": nmse_power_db(oracle, true), "floor_nmse_var_db": nmse_db(oracle, true)}


def _events(stores: Stores, run_id: str, t0: float, window_s: float) -> list[dict[str, Any]]:
    return [{"kind": e["kind"], "at": e["at"], "at_window": math.floor((e["at"] - t0) / window_s),
             "detail": e["detail"] if isinstance(e["detail"], dict) else {}} for e in stores.events(run_id)]


def sliding(s: dict[str, np.ndarray], size: int = SLIDING, step: int = 10) -> list[dict[str, Any]]:
    out = []
    for end in range(size, len(s["true"]) + 1, step):
        sl = slice(end - size, end)
        out.append({"window": int(s["window"][end - 1]), "with": nmse_db(s["with"][sl], s["true"][sl]),
                    "without": nmse_db(s["without"][sl], s["true"][sl])})
    return out


def build(stores: Stores, run_id: str) -> dict[str, Any]:
    run = stores.run(run_id)
    t0, window_s = run["t0"], run["window_s"]
    phases = stores.phases(run_id)
    spans = stores.phase_windows(run_id)
    first, last = {p: lo for p, (lo, _) in spans.items()}, {p: hi for p, (_, hi) in spans.items()}
    s = _samples(stores, run_id)
    events = _events(stores, run_id, t0, window_s)
    detections = [e["detail"]["window"] for e in events if e["kind"] == "drift"]
    ignored = [e["detail"]["window"] for e in events if e["kind"] == "drift_ignored"]
    swaps = [e for e in events if e["kind"] == "swapped"]
    # a swap takes effect at the first window the new version predicted (the loop may be behind)
    first_pred = LoopStore(stores).first_windows(run_id)
    for e in swaps:
        e["effective_window"] = first_pred.get(e["detail"].get("version"))
    trainings = [{"job": e["detail"].get("job"), "outcome": e["kind"], "seconds": e["detail"].get("seconds"),
                  "at_window": e["at_window"], "effective_window": e.get("effective_window"),
                  "drift_window": e["detail"].get("drift_window"), "version": e["detail"].get("version"),
                  "candidate_mape": e["detail"].get("candidate_mape"),
                  "serving_mape": e["detail"].get("serving_mape")}
                 for e in events if e["kind"] in ("swapped", "candidate_rejected", "training_failed",
                                                  "training_timeout", "swap_failed")]
    ended = run["ended_at"] or (events[-1]["at"] if events else t0)
    duration = max(ended - t0, 1e-9)
    train_s = sum(t["seconds"] or 0 for t in trainings)
    retrain_s = sum(t["seconds"] or 0 for t in trainings if t["job"] == "retrain")
    ready = [e["detail"].get("seconds") for e in events if e["kind"] == "trainer_ready"]
    paused = stores.paused_windows(run_id, t0, window_s)
    pauses = len(stores.pauses(run_id))

    def seg(lo: int, hi: int, after: int | None = None, s: dict[str, np.ndarray] = s) -> dict[str, Any]:
        m = (s["window"] >= max(lo, after if after is not None else lo)) & (s["window"] <= hi)
        var_with, var_without = nmse_db(s["with"][m], s["true"][m]), nmse_db(s["without"][m], s["true"][m])
        return {"samples": int(m.sum()), "with": var_with, "without": var_without,
                "nmse_var_db_with": var_with, "nmse_var_db_without": var_without,
                "nmse_power_db_with": nmse_power_db(s["with"][m], s["true"][m]),
                "nmse_power_db_without": nmse_power_db(s["without"][m], s["true"][m]),
                "mape_with": mape(s["with"][m], s["true"][m]), "mape_without": mape(s["without"][m], s["true"][m]),
                **flow_mean_floor(s["flow"][m], s["true"][m])}

    jitter = _samples(stores, run_id, "jitter")
    sla_rows = SlaStore(stores).windows(run_id)
    segments = []
    for p in phases:  # every phase, the paper's segments: delay and jitter, both NMSE definitions, SLA
        if p["idx"] not in first:
            continue
        lo, hi = first[p["idx"]], last[p["idx"]]
        segments.append({"segment": p["idx"] + 1, "profile": p["profile"], "load": p["load"],
                         "first_window": lo, "last_window": hi, "delay": seg(lo, hi),
                         "jitter": seg(lo, hi, s=jitter),
                         "sla": _sla_totals([r for r in sla_rows if lo <= r["window"] <= hi])})

    drifts = []
    for p in phases[1:]:
        i = p["idx"]
        if i not in first or i - 1 not in first:
            continue
        lo, hi = first[i], last[i]
        # the detector's first detection in the phase, acted on or not (one during a retraining is ignored)
        det = next((d for d in sorted(detections + ignored) if lo <= d <= hi), None)
        swap = next((e["effective_window"] for e in swaps if e["detail"].get("job") == "retrain"
                     and det is not None and e["detail"].get("drift_window") == det
                     and e.get("effective_window") is not None), None)
        pre, post = seg(first[i - 1], last[i - 1]), seg(lo, hi)
        after = seg(lo, hi, swap) if swap is not None else None
        drifts.append({
            "drift": len(drifts) + 1, "from": f"{phases[i - 1]['profile']} {phases[i - 1]['load']:g}",
            "to": f"{p['profile']} {p['load']:g}", "change_window": lo, "detected_window": det,
            "detection_delay": None if det is None else det - lo, "acted_on": det in detections,
            "swap_window": swap,
            "pre_nmse_with": pre["with"], "pre_nmse_without": pre["without"],
            "post_nmse_with": post["with"], "post_nmse_without": post["without"],
            "post_gain_db": None if post["with"] is None or post["without"] is None
            else round(post["without"] - post["with"], 2),
            "after_swap_nmse_with": after["with"] if after else None,
            "after_swap_nmse_without": after["without"] if after else None,
            "post_nmse_power_db_with": post["nmse_power_db_with"],
            "post_nmse_power_db_without": post["nmse_power_db_without"],
            "post_mape_with": post["mape_with"], "post_mape_without": post["mape_without"],
            "post_samples": post["samples"]})
    overall = seg(0, 1 << 40)
    return {
        "run": run_id, "topology": run["topology"], "schedule": run["schedule"], "status": run["status"],
        "duration_s": round(duration, 1), "windows": len(first) and max(last.values()) + 1,
        "phases": [{"idx": p["idx"], "profile": p["profile"], "load": p["load"], "first_window": first.get(p["idx"]),
                    "last_window": last.get(p["idx"])} for p in phases],
        "samples": len(s["true"]), "overall": overall, "segments": segments, "drifts": drifts,
        "detections": detections, "detections_ignored": ignored,
        "false_alarms": [d for d in sorted(detections + ignored)
                         if not any(r["detected_window"] == d for r in drifts)],
        "swaps": len(swaps), "trainings": trainings, "training_s": round(train_s, 1),
        "training_share": round(train_s / duration, 4), "retraining_s": round(retrain_s, 1),
        "retraining_share": round(retrain_s / duration, 4), "trainer_starts_s": ready,
        "label_pauses": {"count": pauses, "windows": len(paused)}, "sliding_nmse": sliding(s),
        "sla": _sla(stores, run_id), "intervals": _intervals(stores, run_id), "plans": plan_states(stores, run_id),
    }


PLAN_STATES = ("proposed", "approved", "rejected", "applied", "verified", "rolled_back")


def plan_states(stores: Stores, run_id: str) -> dict[str, Any]:
    """The run's change plans by their latest state, from the `plan` events every transition writes."""
    latest: dict[str, str] = {}
    for e in stores.events(run_id, ("plan",)):
        latest[e["detail"]["id"]] = e["detail"]["state"]
    counts = {s: sum(1 for v in latest.values() if v == s) for s in PLAN_STATES}
    return {"plans": len(latest), **counts, "optimizations": stores.event_count(run_id, ("optimize",))}


def _sla_totals(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    from .sla import totals

    return totals(rows) if any(r["labeled"] for r in rows) else None


def _sla(stores: Stores, run_id: str) -> dict[str, Any] | None:
    """The SLA monitor's totals for the run, if it ran (see sync/sla.py)."""
    from .sla import summary

    res = summary(stores, run_id)
    if not res["windows"]:
        return None
    res.pop("latest")
    return res


def _intervals(stores: Stores, run_id: str) -> dict[str, Any] | None:
    """The predictions' intervals (sync/intervals.py): coverage and width per labeled window, the
    run's totals and its anomalies (the newest 20)."""
    from .intervals import IntervalStore

    st = IntervalStore(stores)
    rows = [r for r in st.windows(run_id) if r["labeled"]]
    if not rows:
        return None
    return {**st.summary(run_id),
            "per_window": [{k: r[k] for k in ("window", "labeled", "covered", "coverage", "mean_width_rel",
                                              "calibration", "anomalies")} for r in rows],
            "newest_anomalies": [{k: v for k, v in a.items() if k != "run_id"} for a in st.anomalies(run_id, 20)]}


def _markers(ax: Any, rep: dict[str, Any], labels: bool) -> None:
    for p in rep["phases"][1:]:
        if p["first_window"] is not None:
            ax.axvline(p["first_window"], color="grey", lw=1, ls=":")
    for i, d in enumerate(rep["detections"]):
        ax.axvline(d, color="tab:red", lw=1, alpha=0.7, label="drift detected" if i == 0 and labels else None)
    for i, t in enumerate(x for x in rep["trainings"] if x["outcome"] == "swapped" and x["effective_window"]):
        ax.axvline(t["effective_window"], color="tab:green", lw=1, alpha=0.7,
                   label="model swapped" if i == 0 and labels else None)


def plot(rep: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iv = rep.get("intervals")
    if iv:
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, height_ratios=[3, 2])
    else:
        fig, ax = plt.subplots(figsize=(10, 4.5))
    xs = [p["window"] for p in rep["sliding_nmse"]]
    for key, label, style in (("with", "with synchronization", "-"), ("without", "frozen shadow (no sync)", "--")):
        ax.plot(xs, [np.nan if p[key] is None else p[key] for p in rep["sliding_nmse"]], style, label=label)
    _markers(ax, rep, labels=True)
    if iv:
        rows = iv["per_window"]
        wx = [r["window"] for r in rows]
        ax2.plot(wx, [np.nan if r["mean_width_rel"] is None else r["mean_width_rel"] for r in rows],
                 color="tab:purple", label=f"interval width / prediction ({100 * iv['level']:g} %)")
        covered = np.cumsum([r["covered"] for r in rows])
        labeled = np.cumsum([r["labeled"] for r in rows])
        k = 10  # coverage over the last 10 labeled windows
        recent = (covered - np.concatenate([np.zeros(k), covered[:-k]])[: len(covered)]) / np.maximum(
            labeled - np.concatenate([np.zeros(k), labeled[:-k]])[: len(labeled)], 1)
        ax2.plot(wx, recent, color="tab:orange", label="coverage, last 10 windows")
        ax2.axhline(iv["level"], color="tab:orange", lw=1, ls="--", alpha=0.6)
        anomalous = [r["window"] for r in rows if r["anomalies"]]
        ax2.plot(anomalous, [0.02] * len(anomalous), "x", color="black", ms=5, label="anomaly")
        _markers(ax2, rep, labels=False)
        ax2.set_ylabel("coverage; width")
        ax2.set_xlabel("window (s)")
        ax2.legend(loc="best", fontsize=8)
        ax2.grid(alpha=0.3)
    else:
        ax.set_xlabel("window (s)")
    ax.set_ylabel(f"delay NMSE (dB), sliding {SLIDING} samples")
    ax.set_title(f"{rep['run']}: {rep['topology']}, schedule {rep['schedule']} (dotted: phase changes)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(stores: Stores, run_id: str, out: Path | None = None) -> dict[str, Any]:
    rep = build(stores, run_id)
    out = out or stores.root / "runs" / run_id / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(rep, indent=1))
    if rep["sliding_nmse"]:
        plot(rep, out / "nmse.png")
    rep["files"] = {"json": str(out / "report.json"),
                    "plot": str(out / "nmse.png") if rep["sliding_nmse"] else None}
    return rep
