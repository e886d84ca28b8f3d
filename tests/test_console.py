"""`ndt console` headless (Textual's test pilot, an 80x24 screen) on a seeded two-phase loop run
(`tests/seeded.py`: real models, no lab): the header, model and SLA lines and the worst-flows
table show what the stores and the SLA monitor say; an unknown run is one error line."""

from __future__ import annotations

import asyncio
import json

import pytest

from .conftest import ndt


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
            text = {w: str(app.query_one(f"#{w}", Static).render()) for w in ("header", "model", "sla", "events")}
            rows = [table.get_row_at(i) for i in range(table.row_count)]
            screenshot = app.export_screenshot()
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
    assert shown["rows"] and len(shown["rows"]) == min(10, len(sla["flow_states"]))
    for row, f in zip(shown["rows"], want, strict=True):
        assert row["flow"] == f"{f['src']}>{f['dst']} {f['proto']}"
        assert float(row["budget ms"]) == pytest.approx(f["budget_ms"], abs=0.05)
        assert float(row["predicted"]) == pytest.approx(f["predicted_ms"], abs=0.05)
        expected = ("VIOLATION" if f["measured_violation"] else "ok") \
            if f["predicted_violation"] == f["measured_violation"] else \
            ("missed" if f["measured_violation"] else "false alarm")
        assert row["verdict"] == expected
    assert "drift" in text["events"] and "swapped" in text["events"]


def test_console_refuses_an_unknown_run(seeded_loop):
    r = ndt("console", "--run", "run-nope", "--data", str(seeded_loop["data"]), check=False)
    assert r.returncode == 1 and r.stderr.strip() == f"ndt: error: no run 'run-nope' in {seeded_loop['data']}"
