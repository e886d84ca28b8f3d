"""What a closed-loop run shows, on one seeded run (`tests/seeded.py`: real models, no lab):
`ndt report` (the drift found where it was stored, the retrained model beating the frozen shadow
after its swap, every segment with both NMSE definitions and the labels' floor), `ndt sla` (totals
that are the sums of the monitor's windows) and `ndt console` headless (Textual's pilot, an 80x24
screen: header, model, SLA and interval lines, the worst-flows table with intervals as the stores
and the SLA monitor say, and the worst flow explained on a key press). In one file so that one
test worker builds the run (pytest-xdist sends a file to a worker)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

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
    iv = rep["intervals"]
    assert iv["labeled"] == sum(r["labeled"] for r in iv["per_window"]) > 0 and 0 < iv["coverage"] <= 1
    assert iv["anomalies"] >= len(iv["newest_anomalies"])


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


def screen(data) -> dict:
    """Run the console headless for a moment; what its widgets show."""
    from textual.widgets import DataTable, Static

    from apps.console import COLUMNS, ConsoleData, TwinConsole
    from traffic.store import Stores

    async def main() -> dict:
        app = TwinConsole(ConsoleData(Stores(data)), interval=0.5)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            table = app.query_one(DataTable)
            text = {w: str(app.query_one(f"#{w}", Static).render())
                    for w in ("header", "model", "sla", "trust", "plans", "events")}
            rows = [table.get_row_at(i) for i in range(table.row_count)]
            screenshot = app.export_screenshot()
            await pilot.press("e")  # explain the worst flow: the model loads in a worker thread
            deadline = asyncio.get_running_loop().time() + 60
            explained = ""
            while asyncio.get_running_loop().time() < deadline:
                explained = str(app.query_one("#explain", Static).render())
                if not explained.startswith(("explaining", "press e")):
                    break
                await asyncio.sleep(0.2)
            text["explain"] = explained
            await pilot.press("q")
        return {"text": text, "rows": [dict(zip(COLUMNS, r, strict=True)) for r in rows], "svg": screenshot}

    return asyncio.run(main())


def test_console_shows_the_run_its_model_sla_and_worst_flows(seeded_loop):
    out, data = seeded_loop["out"], seeded_loop["data"]
    shown = screen(data)
    text = shown["text"]
    assert text["header"].startswith(out["run"]) and "diamond" in text["header"] and "[finished]" in text["header"]
    assert f"model {out['serving']} (shadow {out['shadow']})" in text["model"]
    assert f"swaps {out['swaps']}" in text["model"]
    sla = json.loads(ndt("sla", out["run"], "--data", str(data), "--json").stdout)
    assert f"viol pred {sla['predicted_violations']} meas {sla['measured_violations']}" in text["sla"]
    # the table is the SLA monitor's newest labeled window, worst flow (delay over budget) first
    want = sla["flow_states"][:len(shown["rows"])]
    from apps.console.app import FLOW_ROWS

    assert shown["rows"] and len(shown["rows"]) == min(FLOW_ROWS, len(sla["flow_states"]))
    assert text["plans"] == "plans: none (ndt run --optimize proposes them)"
    for row, f in zip(shown["rows"], want, strict=True):
        assert row["flow"] == f"{f['src']}>{f['dst']} {f['proto']}"
        assert float(row["budget ms"]) == pytest.approx(f["budget_ms"], abs=0.05)
        assert float(row["predicted"]) == pytest.approx(f["predicted_ms"], abs=0.05)
        expected = ("VIOLATION" if f["measured_violation"] else "ok") \
            if f["predicted_violation"] == f["measured_violation"] else \
            ("missed" if f["measured_violation"] else "false alarm")
        assert row["verdict"] == expected + (" at risk" if f["at_risk"] else "")
        assert row["interval"] == f"{f['low_ms']:.1f}-{f['high_ms']:.1f}"  # the run is calibrated by its end
    assert "drift" in text["events"] and "swapped" in text["events"]
    iv = sla["intervals"]
    assert f"intervals 90 %: coverage {iv['coverage']:.3f} of {iv['labeled']}" in text["trust"]
    assert f"anomalies {iv['anomalies']}" in text["trust"]
    worst = want[0]
    assert text["explain"].startswith(f"flow {worst['src']}>{worst['dst']} "), text["explain"]
    assert "queueing on L" in text["explain"] and "per hop, queueing+propagation ms" in text["explain"]


def test_console_refuses_an_unknown_run(seeded_loop):
    r = ndt("console", "--run", "run-nope", "--data", str(seeded_loop["data"]), check=False)
    assert r.returncode == 1 and r.stderr.strip() == f"ndt: error: no run 'run-nope' in {seeded_loop['data']}"
