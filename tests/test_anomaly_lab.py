"""Where the network leaves its twin, on a real lab: `ndt run` from the base model on the diamond;
once its predictions carry intervals, the link most flows cross is cut to a fifth of its capacity
behind the controller's back (`ndt lab capacity --untold`); the loop must record anomalies on
flows crossing it within a few windows, and a what-if of that cut on a pre-fault snapshot must
name the link as the main contributor to the delay of the flows that decide it."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from topologies import load

from .conftest import ndt, query_db, start_run, stop_run, take_lab_down, wait_for

pytestmark = pytest.mark.lab

STEADY = {"flows": 4, "seed": 5, "phases": [{"profile": "deterministic", "load": 0.5, "duration_s": 110}]}
CUT_TO = 0.2  # of the link's capacity


@pytest.fixture(scope="module")
def faulted_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("anomaly") / "data"
    sched = data.parent / "steady.json"
    sched.write_text(json.dumps(STEADY))
    proc = start_run("diamond", sched, data, "--train-budget", "20")
    db = data / "traffic.db"
    try:
        # calibrated: eight windows with intervals (at 0.99 they need 99 labeled flow-windows first)
        wait_for(lambda: len(query_db(db, "SELECT DISTINCT window FROM predictions WHERE anomaly_lo IS NOT NULL")) >= 8,
                 timeout=150, what="intervals on the loop's predictions")
        crossing = Counter(lk for (links,) in query_db(
            db, "SELECT f.links FROM snapshot_flows f JOIN snapshots s ON s.id = f.snapshot_id "
                "WHERE f.flow_no IS NOT NULL AND s.window = (SELECT max(window) FROM snapshots)")
            for lk in json.loads(links))
        link = crossing.most_common(1)[0][0]
        capacity = load("diamond").link(link).capacity_mbps  # topology units, as `ndt lab capacity` takes
        fault_window = query_db(db, "SELECT max(window) FROM snapshots")[0][0]
        cut = ndt("lab", "capacity", link, str(capacity * CUT_TO), "--untold", "--json")
        fault_at = time.time()
        assert json.loads(cut.stdout)["controller_told"] is False
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    finally:
        stop_run(proc)
        take_lab_down()
    return {"data": data, "out": json.loads(out), "link": link, "capacity": capacity, "fault_at": fault_at,
            "fault_window": fault_window, "db": db}


def test_a_capacity_cut_the_twin_is_not_told_about_is_flagged_as_anomalies(faulted_run):
    r = faulted_run
    rows = query_db(r["db"], "SELECT window, flow_key, path, measured_ms, high_ms, miss_ms, detected_at, version "
                           "FROM anomalies ORDER BY detected_at")
    after = [x for x in rows if x[0] > r["fault_window"]]
    assert after, f"no anomaly after the cut of {r['link']} at window {r['fault_window']}: {rows}"
    on_link = [x for x in after if r["link"] in x[2].split(",")]
    # the model that served when the link was cut sees the network slower than it: measured above the
    # interval (a model retrained on the cut network afterwards may miss on either side)
    served = {v for (v,) in query_db(r["db"], "SELECT DISTINCT version FROM predictions WHERE window = ?",
                                     (r["fault_window"],))}
    by_served = [x for x in on_link if x[7] in served]
    assert by_served and all(x[3] > x[4] and x[5] > 0 for x in by_served), (served, on_link)
    first = on_link[0]
    delay_s, delay_windows = first[6] - r["fault_at"], first[0] - r["fault_window"]
    print(f"\nfirst anomaly {delay_s:.1f} s ({delay_windows} windows) after the cut of {r['link']}; "
          f"{len(after)} anomalies after it, {len(rows) - len(after)} before")
    assert delay_s < 20 and delay_windows <= 15
    # before the cut the twin and the network agree: few anomalies, apart from at most one window in
    # which several flows jumped together (a stall of the machine: the switches are userspace OVS on
    # two cores shared with the loop's training; CI measured one such window, 47 ms against 4.2 ms)
    labeled_before = query_db(r["db"], "SELECT sum(labeled) FROM interval_windows WHERE window <= ?",
                            (r["fault_window"],))[0][0] or 0
    per_window = Counter(x[0] for x in rows if x[0] <= r["fault_window"])
    burst = max(per_window.values(), default=0)
    burst = burst if burst >= 2 else 0
    assert sum(per_window.values()) - burst <= max(2, 0.05 * labeled_before), per_window
    iv = r["out"]["intervals"]
    assert iv["anomalies"] == len(rows) and iv["labeled"] > 0 and iv["coverage"] is not None


def test_the_sla_report_and_run_summary_count_them(faulted_run):
    r = faulted_run
    sla = json.loads(ndt("sla", r["out"]["run"], "--data", str(r["data"]), "--json").stdout)
    assert sla["intervals"]["anomalies"] == r["out"]["intervals"]["anomalies"] > 0
    assert sla["anomalies"] and sla["anomalies"][0]["level"] == 0.99
    rep = json.loads(ndt("report", r["out"]["run"], "--data", str(r["data"]), "--json").stdout)
    assert rep["intervals"]["anomalies"] == sla["intervals"]["anomalies"]


def test_a_what_if_of_the_cut_names_the_link_as_the_bottleneck(faulted_run, tmp_path):
    r = faulted_run
    snap = query_db(r["db"], "SELECT id FROM snapshots WHERE window = ?", (r["fault_window"] - 2,))[0][0]
    req = tmp_path / "cut.json"
    req.write_text(json.dumps({"snapshot_id": snap, "scenario": {
        "type": "capacity_change", "changes": [{"link": r["link"], "capacity_mbps": r["capacity"] * CUT_TO}]}}))
    res = json.loads(ndt("whatif", str(req), "--data", str(r["data"]), "--json").stdout)
    assert res["decided_on"].startswith("the upper end of each flow's 90 % interval")
    crossing = [e for e in res["explanations"] if r["link"] in [h["link"] for h in e["hops"]]]
    assert crossing, res["explanations"]
    for e in crossing:
        assert e["bottleneck"]["link"] == r["link"] and e["bottleneck"]["share"] > 0.5, e
        assert f"queueing on {r['link']}" in e["summary"]
        assert sum(h["queueing_ms"] + h["propagation_ms"] for h in e["hops"]) == pytest.approx(e["delay_ms"], abs=5e-3)
