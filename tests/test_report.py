"""`ndt report` and `ndt sla` on a seeded closed-loop run (no lab): the drift is found where it
was stored, the retrained model beats the frozen shadow after its swap, every segment carries
both NMSE definitions and the labels' floor, and the SLA totals are the sums of the monitor's
windows."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from .conftest import ndt


def test_report_finds_the_drift_the_swap_and_scores_both_models(seeded_loop, tmp_path):
    out, data = seeded_loop["out"], seeded_loop["data"]
    rep = json.loads(ndt("report", out["run"], "--data", str(data), "--out", str(tmp_path), "--json").stdout)
    assert rep["status"] == "finished" and rep["topology"] == "diamond" and rep["swaps"] == out["swaps"]
    (drift,) = rep["drifts"]
    assert drift["detected_window"] == out["drift_window"] and drift["acted_on"]
    assert drift["detection_delay"] == out["drift_window"] - drift["change_window"] > 0
    assert drift["swap_window"] == out["swap_window"] and rep["false_alarms"] == []
    # v2 saw the second phase, the frozen v1 did not
    assert drift["after_swap_nmse_with"] < drift["after_swap_nmse_without"]
    for seg in rep["segments"]:
        for key in ("nmse_power_db_with", "nmse_var_db_with", "mape_with", "floor_nmse_power_db", "floor_nmse_var_db"):
            assert seg["delay"][key] is not None, (seg["segment"], key)
        # the power definition divides by mean y^2 >= variance: it is never the larger figure
        assert seg["delay"]["nmse_power_db_with"] <= seg["delay"]["nmse_var_db_with"]
    assert Path(rep["files"]["json"]).is_file() and Path(rep["files"]["plot"]).stat().st_size > 10_000


def test_sla_totals_are_the_sums_of_the_monitored_windows(seeded_loop):
    out, data = seeded_loop["out"], seeded_loop["data"]
    sla = json.loads(ndt("sla", out["run"], "--data", str(data), "--json").stdout)
    rows = sqlite3.connect(data / "traffic.db").execute(
        "SELECT sum(tp), sum(fp), sum(fn), sum(tn), sum(labeled) FROM sla_windows WHERE run_id = ?",
        [out["run"]]).fetchone()
    assert (sla["tp"], sla["fp"], sla["fn"], sla["tn"]) == rows[:4] and sum(rows[:4]) == rows[4] > 0
    assert sla["measured_violations"] == sla["tp"] + sla["fn"]
    assert all(f["budget_ms"] > 0 for f in sla["flow_states"])


def test_report_of_an_unknown_run_is_one_error_line(seeded_loop):
    r = ndt("report", "run-nope", "--data", str(seeded_loop["data"]), check=False)
    assert r.returncode == 1 and r.stderr.strip() == f"ndt: error: no run 'run-nope' in {seeded_loop['data']}"
