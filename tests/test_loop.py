"""The closed loop on a real lab, run through `ndt run`: bootstrap of the first model on the first
labels, drift detection after a real change, retraining on post-detection labels plus replay, a
validated swap, the frozen shadow beside it, and no drift on stationary traffic."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptwin.switchd import NETNS_PREFIX, existing_namespaces
from traffic.store import Stores

from .conftest import LOOP_SLA_MARGIN_MS, ROOT, TEST_OF_PORT, TEST_REST_PORT, interruptible, ndt, run_loop, wait_for

pytestmark = pytest.mark.lab


def events(t: sqlite3.Connection, kind: str) -> list[dict]:
    return [{"at": at, **json.loads(d or "{}")} for at, d in
            t.execute("SELECT at, detail FROM events WHERE kind = ? ORDER BY id", [kind])]


def timeline(t: sqlite3.Connection) -> list[str]:
    """The run's events as 'seconds kind window', for failure messages."""
    t0 = t.execute("SELECT min(at) FROM events").fetchone()[0]
    return [f"{at - t0:.0f}s {kind} {json.loads(d or '{}').get('window', '')}".strip() for at, kind, d in
            t.execute("SELECT at, kind, detail FROM events WHERE kind NOT IN ('receivers', 'loop') ORDER BY id")]


def test_two_phase_run_detects_retrains_on_post_drift_labels_and_swaps(two_phase_loop):
    out, t = two_phase_loop["out"], two_phase_loop["t"]
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
    served = {v: (lo, hi) for v, lo, hi in t.execute(
        "SELECT version, min(window), max(window) FROM predictions GROUP BY version")}
    last = t.execute("SELECT max(window) FROM snapshots").fetchone()[0]
    assert set(served) >= {boot[0]["version"], r["version"]}, \
        f"served {served} of {last} windows; retraining took {r['seconds']} s: {timeline(t)}"
    rep = ndt("report", out["run"], "--data", str(two_phase_loop["data"]), "--json")
    rep = json.loads(rep.stdout)
    # predictions have no gap across the swap: the windows around it are all predicted
    at = next(x["effective_window"] for x in rep["trainings"] if x["outcome"] == "swapped" and x["job"] == "retrain")
    predicted = {w for (w,) in t.execute("SELECT DISTINCT window FROM predictions")}
    assert set(range(at - 5, at + 6)) <= predicted
    # after the swap the synchronized model beats the frozen shadow on the new phase
    d = rep["drifts"][0]
    assert d["after_swap_nmse_with"] < d["after_swap_nmse_without"], d
    # the bootstrap model and the retrained one; a later real change may add another retraining (seen once)
    assert rep["swaps"] == len(boot) + len(retrain) >= 2 and rep["files"]["plot"].endswith(".png")
    assert rep["sla"]["labeled_windows"] > 50 and rep["sla"]["accuracy"] is not None
    # one training worker, traced once at the start, trained both models; it is gone after the run
    started = events(t, "training_started")
    ready = events(t, "trainer_ready")
    assert len(ready) == 1 and {s["pid"] for s in started} == {ready[0]["pid"]}, timeline(t)
    assert all(s["trainer_ready"] for s in started)
    assert not os.path.exists(f"/proc/{ready[0]['pid']}")
    # the report's retraining time is every retraining job's, a later one included
    retrain_jobs = [x for x in rep["trainings"] if x["job"] == "retrain"]
    assert r["seconds"] in [x["seconds"] for x in retrain_jobs]
    assert rep["retraining_s"] == pytest.approx(sum(x["seconds"] or 0 for x in retrain_jobs), abs=0.2)
    assert rep["retraining_share"] < 0.2
    # the worker traced before the traffic started (no window measured then); labels paused while each
    # job trained: no label in those windows
    (t0,) = t.execute("SELECT t0 FROM runs").fetchone()
    assert ready[0]["at"] < t0
    pauses = t.execute("SELECT reason, start_at, end_at FROM label_pauses ORDER BY id").fetchall()
    reasons = [p[0] for p in pauses]
    # one pause per job; a later retraining still in flight when the run ended paused too
    assert reasons[0] == "bootstrap training" and set(reasons[1:]) == {"retrain training"}
    assert len(reasons) - 1 >= len(retrain_jobs)
    assert all(end is not None and end > start for _, start, end in pauses)
    paused = Stores(two_phase_loop["data"]).paused_windows(out["run"], *t.execute(
        "SELECT t0, window_s FROM runs").fetchone())
    labeled = {w for (w,) in two_phase_loop["l"].execute("SELECT DISTINCT window FROM labels")}
    assert paused and not paused & labeled


def test_the_training_worker_traces_once_and_answers_jobs_in_turn(traffic_run, tmp_path):
    """The real worker (`sync.retrain --serve`) on a real lab's labels: ready once, a bootstrap job,
    a warm-started job scored against its parent, a bad job answered with an error, then the
    next job still served; it ends at the end of its input."""
    import shutil

    from sync.manager import default_trainer
    from sync.worker import TrainerWorker

    data = tmp_path / "data"
    shutil.copytree(traffic_run["data"], data, ignore=shutil.ignore_patterns("runs"))
    (run,) = sqlite3.connect(data / "traffic.db").execute("SELECT id FROM runs").fetchone()
    worker = TrainerWorker(default_trainer(["--data", str(data), "--run", run, "--threads", "1"]))
    try:
        wait_for(lambda: worker.ready, timeout=120, what="the worker's trace")

        def answer(job: dict) -> dict:
            assert worker.send(job)
            return wait_for(worker.message, timeout=120, what=f"the answer to {job}")

        first = answer({"from_window": 0, "to_window": 7, "budget": 20, "patience": 50, "min_delta": 0})
        assert first["version"] == "v1" and first["serving"] is None and first["training"]["epochs"] > 1
        second = answer({"from_window": 8, "parent": "v1", "budget": 20})
        assert second["version"] == "v2" and second["serving"]["delay_mape"] is not None
        assert second["first_train_window"] >= 8 and second["replay_windows"] >= 1
        bad = answer({"from_window": 0, "parent": "v9"})
        assert "v9" in bad["error"] and worker.alive()
        assert answer({"from_window": 10 ** 6})["error"].startswith("ValueError: only 0 labeled")
        worker.close(timeout=30)
        assert worker.proc.returncode == 0 and worker.ready["pid"] == worker.pid
    finally:
        worker.kill()


def test_the_loop_persists_its_status_and_the_sla_of_every_window(two_phase_loop):
    out, t = two_phase_loop["out"], two_phase_loop["t"]
    (status,) = t.execute("SELECT status FROM loop_status WHERE run_id = ?", [out["run"]]).fetchone()
    status = json.loads(status)
    assert status["state"] == "finished" and status["manager"]["serving"] == out["serving"]
    assert status["detector"]["window"] == 20 and status["predicted"] == out["predicted_windows"]
    # every predicted window has an SLA row; labeled ones carry a consistent confusion matrix
    cur = t.execute("SELECT * FROM sla_windows WHERE run_id = ? ORDER BY window", [out["run"]])
    names = [c[0] for c in cur.description]
    sla = [dict(zip(names, r, strict=True)) for r in cur]
    predicted = {w for (w,) in t.execute("SELECT DISTINCT window FROM predictions WHERE run_id = ?", [out["run"]])}
    assert {r["window"] for r in sla} == predicted
    labeled = [r for r in sla if r["labeled"]]
    # every predicted window is labeled but those measured in a label pause and those at a phase's
    # edges (D-ITG's senders start and stop inside them): how many that is depends on how long the
    # training worker takes to start on this machine, so the bound is that set, not a share
    (t0, window_s), = t.execute("SELECT t0, window_s FROM runs WHERE id = ?", [out["run"]]).fetchall()
    paused = Stores(two_phase_loop["data"]).paused_windows(out["run"], t0, window_s)
    edges = {w + d for a, b in t.execute("SELECT start_at, end_at FROM phases WHERE run_id = ?", [out["run"]])
             for w in (int((a - t0) // window_s), int((b - t0) // window_s)) for d in (-1, 0, 1)}
    unlabeled = {r["window"] for r in sla if not r["labeled"]}
    assert unlabeled <= paused | edges, sorted(unlabeled - paused - edges)
    assert len(labeled) >= len(sla) - len(paused | edges)
    for r in labeled:
        assert r["tp"] + r["fp"] + r["fn"] + r["tn"] == r["labeled"] <= r["flows"]
        assert r["measured_violations"] == r["tp"] + r["fn"]
        assert r["always_compliant_accuracy"] == pytest.approx((r["tn"] + r["fp"]) / r["labeled"], abs=1e-4)
    # budgets come from the policy (propagation + its margin), never from the labels: recomputed here from the
    # labels and the topology, every window's measured violations are the flows over their budget
    topo = json.loads(t.execute("SELECT topology_json FROM runs WHERE id = ?", [out["run"]]).fetchone()[0])
    prop = {lk["id"]: lk["delay_ms"] for lk in topo["links"]}
    links = {(w, k): json.loads(ls) for w, k, ls in t.execute(
        "SELECT s.window, f.flow_key, f.links FROM snapshot_flows f JOIN snapshots s ON s.id = f.snapshot_id "
        "WHERE s.run_id = ? AND f.flow_no IS NOT NULL", [out["run"]])}
    over: dict[int, int] = {}
    predicted_at = {(w, k) for w, k in t.execute("SELECT window, flow_key FROM predictions WHERE run_id = ?",
                                                  [out["run"]])}
    for w, k, d, sent, got in two_phase_loop["l"].execute(
            "SELECT window, flow_key, delay_ms, sent, received FROM labels WHERE run_id = ?", [out["run"]]):
        if (w, k) in predicted_at and links.get((w, k)):
            budget = sum(prop[x] for x in links[(w, k)]) + LOOP_SLA_MARGIN_MS
            over[w] = over.get(w, 0) + bool((sent and not got) or (d is not None and d > budget))
    assert {r["window"]: r["measured_violations"] for r in labeled} == {w: over.get(w, 0) for w in
                                                                        (r["window"] for r in labeled)}
    # the loaded TCP phase violates far more than the light UDP one (see LOOP_SLA_MARGIN_MS); how often
    # the UDP one does depends on how busy the machine is (its delay above propagation is mostly the
    # emulator's)
    phase = dict(t.execute("SELECT window, phase_idx FROM snapshots WHERE run_id = ?", [out["run"]]).fetchall())
    share = {p: sum(r["measured_violations"] for r in labeled if phase[r["window"]] == p) /
             max(1, sum(r["labeled"] for r in labeled if phase[r["window"]] == p)) for p in (0, 1)}
    assert share[1] > 0.1 and share[1] > 2 * share[0], share


def rate_changes(t: sqlite3.Connection, recent: int = 8, window: int = 20) -> dict[int, float]:
    """Per window w, the relative change the detector's gate measures: the mean per-flow measured
    rate of the last `recent` windows up to w against the `window - recent` windows before them
    (computed here from the traffic store, apart from the detector)."""
    rates = dict(t.execute("SELECT s.window, avg(f.measured_bps) FROM snapshots s JOIN snapshot_flows f "
                           "ON f.snapshot_id = s.id WHERE f.flow_no IS NOT NULL GROUP BY s.window"))
    out = {}
    for w in sorted(rates):
        new = [rates[x] for x in range(w - recent + 1, w + 1) if x in rates]
        old = [rates[x] for x in range(w - window + 1, w - recent + 1) if x in rates]
        if len(new) >= recent // 2 and len(old) >= (window - recent) // 2:  # a window may lack its run flows
            out[w] = sum(new) / len(new) / (sum(old) / len(old)) - 1
    return out


def test_stationary_traffic_raises_no_drift(tmp_path):
    """Constant offered traffic: the detector raises nothing unless the traffic entering the network
    really moved. The bound is stated, not assumed: on two shared cores the emulator does not always
    carry the offered rate (seen here with nothing else running: the senders' rate at the ingress
    switches dipped from 9.5 to 7.0 Mbit/s for about 20 windows, a 25 % change of what entered the
    network, and the detector rightly fired on it). So every detection must sit on a measured change
    of at least 15 % (the gate asks 20 % of the 2-window means), and if the measured rate never moved
    by 10 % there must be no detection at all."""
    steady = {"flows": 6, "seed": 3, "phases": [{"profile": "deterministic", "load": 0.5, "duration_s": 160}]}
    out = run_loop(tmp_path / "data", steady)
    t = sqlite3.connect(tmp_path / "data" / "traffic.db")
    assert out["status"] == "finished" and out["predicted_windows"] > 60
    changes = rate_changes(t)
    drifts = events(t, "drift")
    assert [d["window"] for d in drifts] == out["detections"]
    for d in drifts:
        assert abs(changes.get(d["window"], 0.0)) >= 0.15, (d, changes)
    if max(abs(c) for c in changes.values()) < 0.10:
        assert out["detections"] == [], changes
    retrained = [s for s in events(t, "swapped") if s["job"] == "retrain"]
    # the bootstrap model, and at most one per real change
    assert out["swaps"] == 1 + len(retrained) and len(retrained) <= len(drifts)


def start_run(tmp_path: Path, duration_s: float = 300) -> tuple[subprocess.Popen, Path]:
    """`ndt run` on the diamond in the background with one long stationary phase."""
    sched = tmp_path / "long.json"
    sched.write_text(json.dumps({"flows": 4, "phases": [{"profile": "deterministic", "load": 0.3,
                                                         "duration_s": duration_s}]}))
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "apps", "run", "diamond", "--schedule", str(sched), "--data",
                             str(data), "--of-port", str(TEST_OF_PORT), "--rest-port", str(TEST_REST_PORT),
                             "--train-budget", "25", "--no-base-model"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)
    return proc, data


def loop_state(data: Path) -> dict:
    """The loop's persisted status ({} before its first)."""
    try:
        con = sqlite3.connect(data / "traffic.db", timeout=5)
        try:
            row = con.execute("SELECT status FROM loop_status").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return {}
    return json.loads(row[0]) if row else {}


def stop_run(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def test_ctrl_c_with_a_job_in_flight_stops_the_run_within_30_s_and_takes_the_lab_down(tmp_path):
    proc, data = start_run(tmp_path)
    try:
        # the bootstrap job trains on the first labeled windows: interrupt while it is in flight
        wait_for(lambda: loop_state(data).get("manager", {}).get("state") == "training", timeout=150,
                 what="the bootstrap job to be in flight")
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # every thread's stack on its stderr: where it is held
            try:
                out, err = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            pytest.fail(f"ndt run did not stop within 30 s of Ctrl-C; its stderr:\n{err[-6000:]}")
        took = time.monotonic() - sent
    finally:
        stop_run(proc)
    assert proc.returncode == 130, err
    assert "interrupted" in err and took < 30
    assert json.loads(ndt("lab", "status", "--json").stdout)["status"] == "down"
    assert not [n for n in existing_namespaces() if n.startswith(NETNS_PREFIX)]  # no switch daemon's namespace
    t = sqlite3.connect(data / "traffic.db")
    assert t.execute("SELECT status FROM runs").fetchone()[0] == "stopped"
    assert [k for (k,) in t.execute("SELECT kind FROM events WHERE kind = 'training_cancelled'")]
    # the run's own senders, receivers and training worker are gone (their PIDs are in its events and status)
    pids = [pid for (d,) in t.execute("SELECT detail FROM events WHERE kind = 'receivers'")
            for pid in json.loads(d).values()]
    pids.append(loop_state(data)["manager"]["worker"]["pid"])
    assert pids and not [p for p in pids if os.path.exists(f"/proc/{p}")]


def host_namespaces(state: dict) -> set[str]:
    return {os.readlink(f"/proc/{p['pid']}/ns/net") for p in state["processes"] if p["what"].startswith("host ")}


def namespaces_in_use() -> set[str]:
    """The network namespace of every process on the machine."""
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            out.add(os.readlink(f"/proc/{pid}/ns/net"))
        except OSError:
            pass
    return out


def test_after_a_killed_run_lab_down_leaves_nothing_it_created(tmp_path):
    from ptwin.cleanup import leftovers
    from ptwin.state import adopted_processes, is_alive, read_state

    proc, data = start_run(tmp_path)
    try:
        # traffic flowing and the training worker started: then the run dies without cleaning up
        wait_for(lambda: (loop_state(data).get("manager", {}).get("worker") or {}).get("pid")
                 and loop_state(data).get("window", -1) >= 3, timeout=120, what="traffic and the training worker")
        state = read_state()
        adopted = adopted_processes()
        kinds = {p["what"].split()[0] for p in adopted if is_alive(p)}
        assert {"ITGSend", "ITGRecv", "collector", "training"} <= kinds, adopted
        spaces = host_namespaces(state)
        proc.kill()
        proc.wait()
    finally:
        stop_run(proc)
    assert json.loads(ndt("lab", "status", "--json").stdout)["status"] == "ready"  # orphaned, still up
    assert [p for p in adopted if is_alive(p)]  # the run's traffic, collector and worker outlived it
    ndt("lab", "down")
    assert json.loads(ndt("lab", "status", "--json").stdout)["status"] == "down"
    assert leftovers(state) == []  # no recorded process, bridge or interface
    assert not [p for p in adopted if is_alive(p)]
    assert not spaces & namespaces_in_use()  # no host namespace is kept alive by a stray process
    assert not [n for n in existing_namespaces() if n.startswith(NETNS_PREFIX)]
    # and a new lab comes up on the same names and ports
    r = ndt("lab", "up", "diamond", "--json", "--of-port", str(TEST_OF_PORT), "--rest-port", str(TEST_REST_PORT))
    assert json.loads(r.stdout)["switches"] == 4


def test_a_loop_starts_from_the_base_model_and_adapts_it_to_the_network(tmp_path):
    """Without --no-base-model and with no model in its data directory, `ndt run` serves the
    shipped base model from its first windows (no bootstrap wait) and its first job fine-tunes
    the base on the first labels, swapped in only if it beats the base."""
    steady = {"flows": 4, "seed": 5, "phases": [{"profile": "deterministic", "load": 0.5, "duration_s": 70}]}
    data = tmp_path / "data"
    sched = tmp_path / "steady.json"
    sched.write_text(json.dumps(steady))
    try:
        r = ndt("run", "diamond", "--schedule", str(sched), "--data", str(data), "--json", "--of-port",
                str(TEST_OF_PORT), "--rest-port", str(TEST_REST_PORT), "--train-budget", "20", timeout=600)
    finally:
        from .conftest import take_lab_down

        take_lab_down()
    out = json.loads(r.stdout)
    assert out["status"] == "finished", out
    t = sqlite3.connect(data / "traffic.db")
    first_predicted, version = t.execute("SELECT window, version FROM predictions ORDER BY window LIMIT 1").fetchone()
    assert first_predicted <= 3 and version == "v1", (first_predicted, version)
    reg = json.loads(ndt("model", "list", "--data", str(data), "--json").stdout)
    assert reg[0]["version"] == "v1" and reg[0]["metrics"]["training"]["source"] == "base"
    started = events(t, "training_started")
    assert started and started[0]["job"] == "adapt", timeline(t)
    done = [e for e in events(t, "swapped") + events(t, "candidate_rejected") if e["job"] == "adapt"]
    assert len(done) == 1, timeline(t)
    d = done[0]
    assert d["candidate_mape"] is not None and d["serving_mape"] is not None
    if d["version"] in {v for (v,) in t.execute("SELECT DISTINCT version FROM predictions")}:
        assert d["candidate_mape"] < d["serving_mape"]  # swapped in: it beat the base on held-out windows
        assert next(x for x in reg if x["version"] == d["version"])["parent"] == "registry://delay:v1"
    assert not [e for e in events(t, "swapped") if e["job"] == "bootstrap"]
