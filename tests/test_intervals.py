"""Prediction intervals and explanations without a lab: conformal intervals cover at their level,
per category where the categories err differently, refuse a bad level or a calibration too small
for it; the loop's interval monitor scores a seeded run's windows (coverage, anomalies, a
calibration that grows with the labels); the shipped base model's per-hop breakdown sums to its
prediction and names an overloaded link as the bottleneck."""

from __future__ import annotations

import numpy as np
import pytest

from topologies import load
from topologies.routing import path_links, shortest_path
from vtwin.features import FlowSpec, Snapshot, graph_tensors
from vtwin.intervals import Calibration, IntervalError, categories, check_level, coverage, needed


def _calibration(rng, n: int, spreads: dict[int, float]) -> Calibration:
    cats = rng.choice(list(spreads), n)
    pred = rng.uniform(1, 100, n)
    meas = pred * np.exp(rng.normal(0, [spreads[c] for c in cats]))
    return Calibration.fit({"delay": pred, "jitter": pred}, {"delay": meas, "jitter": meas}, cats, "synthetic")


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, "x", None])
def test_level_outside_the_unit_interval_is_refused(level):
    with pytest.raises(IntervalError, match="interval level"):
        check_level(level)


def test_intervals_cover_at_their_level_per_category():
    rng = np.random.default_rng(0)
    spreads = {0: 0.1, 3: 0.6}  # stable UDP flows err little, overloaded TCP flows a lot
    cal = _calibration(rng, 4000, spreads)
    test = _calibration(rng, 4000, spreads)
    for level in (0.8, 0.9, 0.95):
        lo, hi = cal.interval(test.scores["delay"] * 0 + 10.0, test.cats["delay"], level)
        measured = 10.0 * np.exp(test.scores["delay"])
        for k in spreads:
            own = test.cats["delay"] == k
            assert coverage(measured[own], lo[own], hi[own]) == pytest.approx(level, abs=0.03)
    # a category's interval follows its own spread, not the pooled one
    q = cal.quantiles(0.9)
    assert q["udp"]["factor"] < 1.25 < 2.0 < q["tcp, overloaded"]["factor"]


def test_too_few_scores_is_one_clear_error_and_a_small_category_falls_back_to_all():
    rng = np.random.default_rng(1)
    assert needed(0.9) == 9 and needed(0.99) == 99
    small = _calibration(rng, 5, {0: 0.1})
    with pytest.raises(IntervalError, match=r"5 calibration score\(s\) \(synthetic\).*needs 9"):
        small.interval(np.ones(2), np.zeros(2, int), 0.9)
    cal = _calibration(rng, 200, {0: 0.2})
    lo, hi = cal.interval(np.array([10.0, 10.0]), np.array([0, 3]), 0.9)  # no score of category 3
    assert np.all(np.isfinite(hi)) and hi[1] == pytest.approx(hi[0]) and lo[0] < 10 < hi[0]


def _flow(topo, s: int, d: int, rate: float) -> FlowSpec:
    return FlowSpec(f"{s}>{d}", tuple(path_links(topo, shortest_path(topo, s, d))), s, rate, 512.0)


def congested_line() -> Snapshot:
    """line3 (L0: 0-1, L1: 1-2) with L1 cut to 1 Mbit/s: two flows enter it at 1.4 Mbit/s."""
    topo = load("line3")
    flows = [_flow(topo, 0, 2, 0.7e6), _flow(topo, 1, 2, 0.7e6), _flow(topo, 0, 1, 0.1e6), _flow(topo, 2, 0, 0.1e6)]
    return Snapshot(topo, flows, capacity_mbps={"L1": 1.0})


def test_categories_mark_overloaded_paths_and_tcp():
    snap = congested_line()
    g = graph_tensors([snap])
    cats = categories(g)
    over = {f.key for f, c in zip(snap.flows, cats, strict=True) if c >= 2}
    assert over == {"0>2", "1>2"}


def test_the_base_models_breakdown_sums_to_its_prediction_and_names_the_overloaded_link():
    from vtwin import base_model
    from vtwin.explain import explain, sentence

    twin = base_model.load().twin(xla=False)
    snap = congested_line()
    d, j = twin.predict([snap])
    parts = explain(twin, snap)
    for i, f in enumerate(snap.flows):
        e = parts[f.key]
        assert e["delay_ms"] == pytest.approx(float(d[i]), rel=1e-4, abs=1e-3)
        assert e["jitter_ms"] == pytest.approx(float(j[i]), rel=1e-4, abs=1e-3)
        assert sum(h["queueing_ms"] + h["propagation_ms"] for h in e["hops"]) == pytest.approx(e["delay_ms"], abs=5e-3)
        assert [h["link"] for h in e["hops"]] == list(f.path)
    e = parts["0>2"]
    assert e["bottleneck"]["link"] == "L1" and e["bottleneck"]["share"] > 0.5
    assert {w["flow"] for w in e["bottleneck"]["weighing_most"]} <= {"0>2", "1>2"}
    line = sentence(e, "h1->h3", budget_ms=1.0)
    assert line.startswith("flow h1->h3 breaks its 1 ms budget") and "queueing on L1" in line
    assert "shared with 1 other flow" in line


@pytest.fixture(scope="module")
def seeded_intervals(tmp_path_factory):
    """The seeded two-phase loop on the diamond (`tests/seeded.py`) with one late flow-window's
    measured delay made 20 times what the formula gave: an anomaly the interval monitor must flag."""
    from .conftest import TWO_PHASE
    from .seeded import seed_loop_run

    data = tmp_path_factory.mktemp("intervals") / "data"
    inflated = {}

    def inflate(stores):
        w, key = stores.labels.execute("SELECT window, flow_key FROM labels WHERE run_id = ? AND received > 0 "
                                       "ORDER BY window DESC, flow_key LIMIT 1 OFFSET 40",
                                       ["run-seeded-loop"]).fetchone()
        with stores.labels.conn:
            stores.labels.execute("UPDATE labels SET delay_ms = delay_ms * 20 WHERE run_id = ? AND window = ? "
                                  "AND flow_key = ?", ["run-seeded-loop", w, key])
        inflated.update(window=w, flow=key)

    out = seed_loop_run(data, "diamond", TWO_PHASE, before_loop=inflate)
    return {"out": out, "data": data, "inflated": inflated}


def test_the_loop_gives_intervals_once_calibrated_and_scores_their_coverage(seeded_intervals):
    from sync.intervals import IntervalStore
    from sync.store import LoopStore
    from traffic.store import Stores

    stores = Stores(seeded_intervals["data"])
    run = seeded_intervals["out"]["run"]
    preds = LoopStore(stores).predictions(run)
    with_interval = [p for p in preds if p["delay_lo"] is not None]
    first = min(p["window"] for p in with_interval)
    # nothing before 99 scores (the anomaly level's minimum), everything after
    assert sum(1 for p in preds if p["window"] < first) >= 99
    assert all(p["delay_lo"] is not None for p in preds if p["window"] >= first)
    assert all(p["anomaly_lo"] <= p["delay_lo"] <= p["delay_ms"] <= p["delay_hi"] <= p["anomaly_hi"]
               for p in with_interval)
    summary = IntervalStore(stores).summary(run)
    assert summary["level"] == 0.9 and summary["labeled"] >= 500
    assert 0.75 <= summary["coverage"] <= 1.0
    rows = IntervalStore(stores).windows(run)
    assert all(r["covered"] <= r["labeled"] <= r["predicted"] for r in rows)


def test_the_interval_widens_after_the_drift_until_the_retrained_model(seeded_intervals):
    from sync.intervals import IntervalStore
    from traffic.store import Stores

    stores = Stores(seeded_intervals["data"])
    out = seeded_intervals["out"]
    rows = {r["window"]: r["mean_width_rel"] for r in IntervalStore(stores).windows(out["run"])
            if r["mean_width_rel"] is not None}
    second = out["drift_window"] - 3  # the second phase's first window (detect_after = 3)
    before = [w for k, w in rows.items() if second - 10 <= k < second]
    after = [w for k, w in rows.items() if second + 3 <= k < second + 13]
    assert before and after and np.mean(after) > 1.5 * np.mean(before)


def test_a_measured_delay_outside_its_interval_is_recorded_as_an_anomaly(seeded_intervals):
    from sync.intervals import IntervalStore
    from traffic.store import Stores

    stores = Stores(seeded_intervals["data"])
    run, bad = seeded_intervals["out"]["run"], seeded_intervals["inflated"]
    anomalies = IntervalStore(stores).anomalies(run)
    hit = [a for a in anomalies if a["window"] == bad["window"] and a["flow_key"] == bad["flow"]]
    assert len(hit) == 1
    a = hit[0]
    assert a["measured_ms"] > a["high_ms"] and a["miss_ms"] == pytest.approx(a["measured_ms"] - a["high_ms"], abs=2e-3)
    assert a["path"] and a["level"] == 0.99 and a["miss_ratio"] > 5
    summary = IntervalStore(stores).summary(run)
    assert summary["anomalies"] == len(anomalies) and len(anomalies) <= 0.03 * summary["labeled"]


def test_the_sla_monitor_flags_a_flow_at_risk_when_its_interval_crosses_the_budget(seeded_intervals):
    from sync.sla import SlaMonitor, SlaPolicy
    from traffic.store import Stores

    stores = Stores(seeded_intervals["data"])
    run = seeded_intervals["out"]["run"]
    windows = [w.window for w in stores.windows(run)]
    # budgets at each flow's prediction: every calibrated flow's interval crosses it
    monitor = SlaMonitor(stores, run, SlaPolicy(margin_ms=0.0))
    flows = [f for w in windows[-20:] for f in monitor.stored_flows(w)]
    assert flows and all(f.at_risk == (f.low_ms <= f.budget_ms <= f.high_ms) for f in flows if f.low_ms is not None)
    rows = [monitor.evaluate(w, monitor.stored_flows(w)) for w in windows[-20:]]
    assert all(r["at_risk"] == sum(bool(f.at_risk) for f in monitor.stored_flows(r["window"])) for r in rows)


def test_a_measured_delay_at_its_intervals_edge_is_no_anomaly(tmp_path):
    """After a fault the calibration holds the faulted flows' own scores, so an interval's edge can
    sit exactly at what they measure (a lab run recorded misses of 0.000 ms): within the tolerance
    it is no anomaly, beyond it one."""
    from sync.intervals import ANOMALY_TOLERANCE, IntervalMonitor, IntervalStore, _Pending
    from traffic.store import Stores
    from traffic.window import Label

    stores = Stores(tmp_path)
    mon = IntervalMonitor(stores, "run-edge")
    hi = 72.595
    row = {"delay_ms": 3.0, "jitter_ms": 0.1, "category": 0, "delay_lo": 2.0, "delay_hi": 5.0, "anomaly_lo": 0.072,
           "anomaly_hi": hi, "version": "v2"}
    keys = ["at-edge", "just-within", "beyond"]
    mon.pending[7] = _Pending({k: dict(row, flow_key=k) for k in keys}, {k: ["L1"] for k in keys})
    measured = {"at-edge": hi + 4e-4, "just-within": hi * (1 + ANOMALY_TOLERANCE) - 1e-3,
                "beyond": hi * (1 + ANOMALY_TOLERANCE) + 0.05}
    mon._score(7, {k: Label(delay_ms=m, jitter_ms=0.1, sent=20, received=20) for k, m in measured.items()})
    anomalies = IntervalStore(stores).anomalies("run-edge")
    assert [a["flow_key"] for a in anomalies] == ["beyond"]
    assert anomalies[0]["miss_ms"] > 0
