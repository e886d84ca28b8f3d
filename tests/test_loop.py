"""The closed loop on a real lab, run through `ndt run`: bootstrap of the first model on the first
labels, drift detection after a real change, retraining on post-detection labels plus replay, a
validated swap, the frozen shadow beside it, and no drift on stationary traffic."""

from __future__ import annotations

import json
import sqlite3

import pytest

from .conftest import TEST_OF_PORT, TEST_REST_PORT, lab_missing, ndt

pytestmark = pytest.mark.skipif(lab_missing() is not None, reason=lab_missing() or "")

TWO_PHASE = {"flows": 6, "seed": 3, "phases": [
    {"profile": "deterministic", "load": 0.3, "duration_s": 50},
    {"profile": "exponential", "load": 0.5, "duration_s": 110},
]}


def run_loop(tmp_path, schedule: dict, *extra: str) -> tuple[dict, sqlite3.Connection, sqlite3.Connection]:
    sched = tmp_path / "schedule.json"
    sched.write_text(json.dumps(schedule))
    data = tmp_path / "data"
    r = ndt("run", "diamond", "--schedule", str(sched), "--data", str(data), "--json", "--of-port",
            str(TEST_OF_PORT), "--rest-port", str(TEST_REST_PORT), "--train-budget", "20", *extra, timeout=600)
    out = json.loads(r.stdout)
    return out, sqlite3.connect(data / "traffic.db"), sqlite3.connect(data / "labels.db")


def events(t: sqlite3.Connection, kind: str) -> list[dict]:
    return [{"at": at, **json.loads(d or "{}")} for at, d in
            t.execute("SELECT at, detail FROM events WHERE kind = ? ORDER BY id", [kind])]


def test_two_phase_run_detects_retrains_on_post_drift_labels_and_swaps(tmp_path):
    out, t, lab = run_loop(tmp_path, TWO_PHASE)
    assert out["status"] == "finished", out
    change = t.execute("SELECT min(window) FROM snapshots WHERE phase_idx = 1").fetchone()[0]
    drifts = events(t, "drift")
    assert drifts, f"no drift detected: {out['events']}"
    assert drifts[0]["window"] >= change  # after it happened, not before
    assert not [d for d in drifts if d["window"] < change]
    swaps = events(t, "swapped")
    boot = [s for s in swaps if s["job"] == "bootstrap"]
    retrain = [s for s in swaps if s["job"] == "retrain"]
    assert boot and retrain, out["events"]
    r = retrain[0]
    # retraining used labels from the detection on (plus replay), never the pre-drift windows before it
    assert r["from_window"] == r["drift_window"] == drifts[0]["window"]
    assert r["first_train_window"] >= drifts[0]["window"] and r["replay_windows"] >= 1
    assert r["candidate_mape"] < r["serving_mape"]
    versions = {v for (v,) in t.execute("SELECT DISTINCT version FROM predictions")}
    assert versions >= {boot[0]["version"], r["version"]}
    rep = ndt("report", out["run"], "--data", str(tmp_path / "data"), "--json")
    rep = json.loads(rep.stdout)
    # predictions have no gap across the swap: the windows around it are all predicted
    at = next(x["effective_window"] for x in rep["trainings"] if x["outcome"] == "swapped" and x["job"] == "retrain")
    predicted = {w for (w,) in t.execute("SELECT DISTINCT window FROM predictions")}
    assert set(range(at - 5, at + 6)) <= predicted
    # after the swap the synchronized model beats the frozen shadow on the new phase
    d = rep["drifts"][0]
    assert d["after_swap_nmse_with"] < d["after_swap_nmse_without"], d
    assert rep["swaps"] == 2 and rep["files"]["plot"].endswith(".png")


def test_stationary_traffic_raises_no_drift(tmp_path):
    steady = {"flows": 6, "seed": 3, "phases": [{"profile": "deterministic", "load": 0.5, "duration_s": 160}]}
    out, t, _ = run_loop(tmp_path, steady)
    assert out["status"] == "finished"
    assert out["detections"] == [] and events(t, "drift") == []
    assert out["predicted_windows"] > 60 and out["swaps"] == 1  # the bootstrap model only
