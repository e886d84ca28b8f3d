"""Drift detection, drift scoring and the model manager's state machine (real river, real
registry, real trainer processes; no lab)."""

from __future__ import annotations

import json
import random
import sys

import pytest

from sync.drift import DriftConfig, DriftConfigError, DriftDetector
from sync.manager import ManagerConfig, ModelManager
from sync.scoring import score
from traffic.store import Stores
from vtwin.features import Normalization, graph_tensors
from vtwin.registry import Registry

from .conftest import wait_for
from .test_vtwin import mesh_snapshot, register_random


def ar1(n: int, mean: float, rng: random.Random, rho: float = 0.6, sd: float = 0.05) -> list[float]:
    """Autocorrelated noise around `mean` (like per-window rates of steady traffic)."""
    x, out = 0.0, []
    for _ in range(n):
        x = rho * x + rng.gauss(0, sd * mean)
        out.append(mean + x)
    return out


def detect(values: list[float], config: DriftConfig | None = None) -> list[int]:
    det = DriftDetector(config or DriftConfig())
    return [i for i, v in enumerate(values) if det.update({"rate": v}, i).drift_detected]


def test_no_detection_on_stationary_traffic():
    rng = random.Random(1)
    assert detect(ar1(3000, 2.0, rng)) == []


def test_raw_kswin_false_alarms_where_the_guarded_detector_does_not():
    from river.drift import KSWIN

    rng = random.Random(1)
    values = ar1(3000, 2.0, rng)
    raw = KSWIN(alpha=0.005, window_size=20, stat_size=8, seed=7)
    fired = 0
    for v in values:
        raw.update(v)
        fired += raw.drift_detected
    assert fired > 0  # the problem the guards solve
    assert detect(values) == []


@pytest.mark.parametrize("factor", [1.6, 0.5, 3.0])
def test_one_detection_per_real_change_after_it_happens(factor):
    rng = random.Random(2)
    values = ar1(60, 2.0, rng) + ar1(60, 2.0 * factor, rng) + ar1(60, 2.0, rng)
    found = detect(values)
    assert len(found) == 2, found
    assert 60 <= found[0] < 60 + 20 and 120 <= found[1] < 120 + 20


def split_polls(n: int, mean: float, rng: random.Random, p: float = 0.15) -> list[float]:
    """Steady per-window rates where now and then a counter poll's bytes land in the next window
    (pairs like 0.55, 1.67 around 1.11 Mbit/s, as seen on Abilene)."""
    v = [mean * (1 + rng.gauss(0, 0.01)) for _ in range(n)]
    for i in range(n - 1):
        if rng.random() < p:
            moved = v[i] * rng.uniform(0.3, 0.6)
            v[i] -= moved
            v[i + 1] += moved
    return v


def test_smoothing_two_windows_sees_changes_that_split_polls_hide():
    hits = {1: 0, 2: 0}
    for seed in range(20):
        rng = random.Random(seed)
        values = split_polls(100, 1.0, rng) + split_polls(100, 0.75, rng)
        for k in hits:
            found = detect(values, DriftConfig(smooth=k))
            hits[k] += len(found) == 1 and 100 <= found[0] < 120
    assert hits[2] >= 18 and hits[2] > hits[1] + 3, hits
    assert detect(split_polls(3000, 1.0, random.Random(99))) == []


def test_bad_detector_settings_are_refused():
    for kw in ({"alpha": 0}, {"stat": 1}, {"window": 10, "stat": 8}, {"features": ("x",)}, {"smooth": 0}):
        with pytest.raises(DriftConfigError):
            DriftConfig(**kw)


def test_scoring_counts_delays_misses_and_false_alarms():
    r = score(changes=[100, 200, 300], detections=[40, 104, 110, 306], end=399)
    assert r["detected"] == 2 and r["missed"] == 1 and r["false_alarms"] == 2
    assert [h["delay"] for h in r["per_change"]] == [4, None, 6]
    assert r["false_alarm_windows"] == [40, 110]


# -- the model manager ------------------------------------------------------------------------
def python_trainer(code: str):
    import subprocess

    def start(args: list[str]) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    return start


@pytest.fixture
def serving_registry(tmp_path):
    stores = Stores(tmp_path)
    reg = Registry(stores)
    norm = Normalization.fit([graph_tensors([mesh_snapshot()])])
    v1 = register_random(reg, 1, norm)
    reg.promote("delay", v1)
    return stores, reg, v1


def manager(stores: Stores, trainer, **cfg) -> tuple[ModelManager, list[str]]:
    swapped: list[str] = []
    m = ModelManager(stores, "run-x", lambda v: swapped.append(v) or {"to": v},
                     ManagerConfig(min_post_windows=0, **cfg), trainer)
    return m, swapped


def test_a_trainer_that_raises_leaves_the_old_model_serving(serving_registry):
    stores, reg, v1 = serving_registry
    m, swapped = manager(stores, python_trainer("raise RuntimeError('trainer exploded')"))
    assert m.on_drift(50)
    m.tick()
    assert m.state == "training"
    wait_for(lambda: (m.tick(), m.state == "serving")[1], timeout=30, what="the failed trainer to be noticed")
    assert m.serving == v1 and reg.active("delay") == v1 and swapped == []
    failed = [e for e in m.history if e["kind"] == "training_failed"]
    assert failed and "trainer exploded" in failed[0]["error"]
    kinds = [e["kind"] for e in stores.events("run-x")]
    assert kinds == ["drift", "training_started", "training_failed"]


def test_a_trainer_that_hangs_is_killed_at_the_timeout(serving_registry):
    stores, reg, v1 = serving_registry
    m, _ = manager(stores, python_trainer("import time; time.sleep(120)"), timeout_s=1.0)
    m.on_drift(10)
    m.tick()
    pid = m.job.proc.pid
    wait_for(lambda: (m.tick(), m.state == "serving")[1], timeout=30, what="the timeout")
    assert [e["kind"] for e in m.history][-1] == "training_timeout" and m.serving == v1
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped


def test_a_drift_during_retraining_is_recorded_not_acted_on(serving_registry):
    stores, _, _ = serving_registry
    m, _ = manager(stores, python_trainer("import time; time.sleep(120)"), timeout_s=60)
    assert m.on_drift(10)
    m.tick()
    assert not m.on_drift(25)
    assert [e["kind"] for e in m.history] == ["drift", "training_started", "drift_ignored"]
    m.stop()
    assert m.history[-1]["kind"] == "training_cancelled"


def test_labels_pause_while_a_job_trains(serving_registry):
    stores, _, _ = serving_registry
    m, _ = manager(stores, python_trainer("import time; time.sleep(1.5)"))
    m.on_drift(3)
    m.tick()
    def training_pause() -> tuple[float, float | None]:
        (p,) = [p for p in stores.pauses("run-x") if p["reason"] == "retrain training"]
        return p["start_at"], p["end_at"]

    start, end = training_pause()
    assert end is None  # open while the job runs
    wait_for(lambda: (m.tick(), m.state == "serving")[1], timeout=30, what="the job's end")
    start, end = training_pause()
    assert end - start >= 1.0
    assert all(p["end_at"] is not None for p in stores.pauses("run-x"))
    t0 = start - 10.25  # the pause starts 10.25 s into a run of 1 s windows: window 10 is the first paused
    paused = stores.paused_windows("run-x", t0, 1.0)
    assert min(paused) == 10 and max(paused) == int(end - t0) and 9 not in paused


@pytest.mark.parametrize("better", [True, False])
def test_validation_gate_promotes_only_a_better_candidate(serving_registry, better):
    stores, reg, v1 = serving_registry
    v2 = register_random(reg, 2, Normalization.fit([graph_tensors([mesh_snapshot()])]))
    cand, serv = (5.0, 9.0) if better else (9.0, 5.0)
    out = json.dumps({"version": v2, "candidate": {"delay_mape": cand}, "serving": {"delay_mape": serv}})
    m, swapped = manager(stores, python_trainer(f"print({out!r})"))
    m.on_drift(5)
    m.tick()
    wait_for(lambda: (m.tick(), m.state == "serving")[1], timeout=30, what="validation")
    if better:
        assert swapped == [v2] and m.serving == v2 and reg.active("delay") == v2
        assert reg.show("delay", v1)["status"] == "archived" and m.history[-1]["kind"] == "swapped"
    else:
        assert swapped == [] and m.serving == v1 and reg.show("delay", v2)["status"] == "rejected"
        assert m.history[-1]["kind"] == "candidate_rejected"
