"""`ndt dataset build` on real labs: a two-run campaign interrupted with Ctrl-C in its second run
ends with its lab down and its first run kept, and the same command then builds only what is
missing; killed outright (SIGKILL) in its first run, it leaves its lab up, and the next build
takes that lab down, deletes the half run and builds it again. Every run ends labeled, once; the
second run's phases (`pairs: phase`) each run their flows between host pairs of their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, TEST_OF_PORT, TEST_REST_PORT, interruptible, lab_recorded, ndt, wait_for

pytestmark = pytest.mark.lab

SPEC = """name: tiny
phase_s: 5
loads: [0.5]
profiles: [deterministic, exponential]
flows: 2
runs:
  - {topology: line3, queue: 8}
  - {topology: diamond, fail: 1, max_mbps: 5, pairs: phase}
"""
PORTS = ["--of-port", str(TEST_OF_PORT), "--rest-port", str(TEST_REST_PORT)]


def start(spec: Path, data: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "apps", "dataset", "build", str(spec), "--data", str(data),
                             *PORTS], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=interruptible)


def record(data: Path) -> dict:
    try:
        return json.loads((data / "campaign.json").read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return {}


def windows_of(data: Path, key: str) -> int:
    """Windows the traffic store holds for the campaign run `key` (0 before it started)."""
    import sqlite3

    run = record(data).get(key, {}).get("run_id")
    if not run or not (data / "traffic.db").exists():
        return 0
    con = sqlite3.connect(data / "traffic.db", timeout=5)
    try:
        return con.execute("SELECT count(*) FROM snapshots WHERE run_id = ?", [run]).fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        con.close()


@pytest.fixture
def campaign(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    procs: list[subprocess.Popen] = []
    yield spec, tmp_path / "data", procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)


def finish(spec: Path, data: Path) -> dict:
    out = json.loads(ndt("dataset", "build", str(spec), "--data", str(data), *PORTS, "--json", timeout=600).stdout)
    assert out["done"] == out["total"] == 2, out
    from traffic.store import Stores

    stores = Stores(data)
    ids = [r["run_id"] for r in out["runs"]]
    assert stores.run_ids() == set(ids)  # the cut-short attempt is gone, nothing twice
    for r in out["runs"]:
        assert r["status"] == "done" and r["labels"] > 0 and stores.label_count(r["run_id"]) == r["labels"]
    assert out["labeled_flow_windows"] == sum(r["labels"] for r in out["runs"])
    assert out["runs"][1]["failed"] and out["runs"][1]["topology"].startswith("diamond-without-")
    # the line's one flow set in both phases; the diamond's phases each with the pairs drawn for it
    # (h1>h2, h3>h2, then h1>h3, h1>h2), labeled in each phase
    pairs = [{(f["phase_idx"], f["src"], f["dst"]) for f in stores.run_flows(run)} for run in ids]
    assert pairs[0] == {(i, s, d) for i in (0, 1) for s, d in (("h2", "h1"), ("h3", "h1"))}, pairs[0]
    assert pairs[1] == {(0, "h1", "h2"), (0, "h3", "h2"), (1, "h1", "h3"), (1, "h1", "h2")}, pairs[1]
    labeled = {(w.phase, f.src, f.dst) for w in stores.windows(ids[1], labels=True, labeled_only=True)
               for f in w.run_flows if f.flow_key in w.labels and w.labels[f.flow_key].delay_ms is not None}
    assert {(0, "h3", "h2"), (1, "h1", "h3")} <= labeled, labeled  # each phase's own pair, measured
    assert not lab_recorded()
    return out


def test_ctrl_c_keeps_the_done_run_and_the_same_command_builds_the_rest(campaign):
    spec, data, procs = campaign
    proc = start(spec, data)
    procs.append(proc)
    wait_for(lambda: windows_of(data, "02-diamond") >= 3, timeout=180, what="the second run's windows")
    first = record(data)["01-line3"]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command again to resume" in err
    assert not lab_recorded()  # the lab went down with it
    rec = record(data)
    assert rec["01-line3"]["status"] == "done" and rec["02-diamond"]["status"] == "interrupted"
    out = finish(spec, data)
    assert out["runs"][0]["run_id"] == first["run_id"]  # not built again


def test_a_killed_campaign_leaves_its_lab_which_the_next_build_takes_down(campaign):
    spec, data, procs = campaign
    proc = start(spec, data)
    procs.append(proc)
    wait_for(lambda: windows_of(data, "01-line3") >= 3, timeout=180, what="the first run's windows")
    half = record(data)["01-line3"]["run_id"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert lab_recorded()  # left up, with its traffic
    status = json.loads(ndt("dataset", "status", str(spec), "--data", str(data), "--json").stdout)
    assert [r["status"] for r in status["runs"]] == ["running", "pending"]
    out = finish(spec, data)
    assert half not in {r["run_id"] for r in out["runs"]}
