"""Reading the stores back: the data summary and the training-ready export.

The export is JSON Lines: for every run a line {"type": "run", id, topology (the Topology as
JSON), schedule, window_s}, then for every window that has labels a line {"type": "window",
run, window, t_start, phase, routing_version, links: [...], flows: [...]} where each flow carries
its path, offered and measured rates and packet size, and the labeled ones their delay, jitter,
loss and received bitrate.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .store import StoreError, Stores


def summary(stores: Stores, run_id: str | None = None) -> dict[str, Any]:
    t = stores.traffic
    runs = list(t.query("SELECT id, topology, schedule, window_s, started_at, ended_at, status, flows FROM runs"
                        + (" WHERE id = ?" if run_id else "") + " ORDER BY started_at", [run_id] if run_id else []))
    if run_id and not runs:
        raise StoreError(f"no run {run_id!r} in {stores.root}")
    out_runs = []
    for r in runs:
        rid = r["id"]
        windows = t.execute("SELECT count(*) FROM snapshots WHERE run_id = ?", [rid]).fetchone()[0]
        flow_rows = t.execute("SELECT count(*) FROM snapshot_flows sf JOIN snapshots s ON s.id = sf.snapshot_id "
                              "WHERE s.run_id = ? AND sf.flow_no IS NOT NULL", [rid]).fetchone()[0]
        labels = stores.labels.execute("SELECT count(*) FROM labels WHERE run_id = ?", [rid]).fetchone()[0]
        phases = []
        for p in t.query("SELECT * FROM phases WHERE run_id = ? ORDER BY idx", [rid]):
            rates = [x["measured_bps"] for x in t.query(
                "SELECT sf.measured_bps FROM snapshot_flows sf JOIN snapshots s ON s.id = sf.snapshot_id "
                "WHERE s.run_id = ? AND s.phase_idx = ? AND sf.flow_no IS NOT NULL AND sf.measured_bps IS NOT NULL",
                [rid, p["idx"]])]
            fl = {x["status"]: x["n"] for x in t.query(
                "SELECT status, count(*) AS n FROM run_flows WHERE run_id = ? AND phase_idx = ? GROUP BY status",
                [rid, p["idx"]])}
            phases.append({
                "idx": p["idx"], "profile": p["profile"], "protocol": p["protocol"], "load": p["load"],
                "start_at": p["start_at"], "end_at": p["end_at"], "flows": fl,
                "rate_bps": {"n": len(rates), "mean": _r(statistics.fmean(rates)) if rates else None,
                             "stdev": _r(statistics.pstdev(rates)) if rates else None,
                             "min": _r(min(rates)) if rates else None, "max": _r(max(rates)) if rates else None},
            })
        out_runs.append({**r, "windows": windows, "flow_rows": flow_rows, "labels": labels,
                         "labeled_fraction": round(labels / flow_rows, 4) if flow_rows else 0.0, "phases": phases})
    return {"data": str(stores.root), "runs": out_runs,
            "windows": sum(r["windows"] for r in out_runs), "labels": sum(r["labels"] for r in out_runs)}


def _r(x: float) -> float:
    return round(x, 1)


def export(stores: Stores, out: Path, run_id: str | None = None) -> dict[str, Any]:
    """Write the training-ready JSON Lines file; return counts. Written to a temporary name and
    renamed, so a failed export leaves no half file."""
    t = stores.traffic
    runs = list(t.query("SELECT * FROM runs" + (" WHERE id = ?" if run_id else "") + " ORDER BY started_at",
                        [run_id] if run_id else []))
    if run_id and not runs:
        raise StoreError(f"no run {run_id!r} in {stores.root}")
    tmp = out.with_name(out.name + ".part")
    n_windows = n_flows = 0
    with tmp.open("w") as fh:
        for r in runs:
            rid = r["id"]
            fh.write(json.dumps({"type": "run", "id": rid, "topology": json.loads(r["topology_json"] or "null"),
                                 "schedule": json.loads(r["schedule_json"] or "null"),
                                 "window_s": r["window_s"]}) + "\n")
            labels: dict[int, dict[str, dict]] = defaultdict(dict)
            for lab in stores.labels.query("SELECT * FROM labels WHERE run_id = ?", [rid]):
                labels[lab["window"]][lab["flow_key"]] = lab
            for s in t.query("SELECT * FROM snapshots WHERE run_id = ? ORDER BY window", [rid]):
                if s["window"] not in labels:
                    continue
                flows = []
                for f in t.query("SELECT * FROM snapshot_flows WHERE snapshot_id = ?", [s["id"]]):
                    lab = labels[s["window"]].get(f["flow_key"])
                    flows.append({
                        "key": f["flow_key"], "src": f["src"], "dst": f["dst"], "proto": f["proto"],
                        "links": json.loads(f["links"]), "offered_bps": f["offered_bps"],
                        "measured_bps": f["measured_bps"], "pkt_size": f["pkt_size"], "flow_no": f["flow_no"],
                        "label": None if lab is None else {k: lab[k] for k in (
                            "delay_ms", "jitter_ms", "loss_pct", "sent", "received", "rx_bps")}})
                links = [{k: v for k, v in lk.items() if k != "snapshot_id"}
                         for lk in t.query("SELECT * FROM snapshot_links WHERE snapshot_id = ?", [s["id"]])]
                fh.write(json.dumps({"type": "window", "run": rid, "window": s["window"], "t_start": s["t_start"],
                                     "phase": s["phase_idx"], "routing_version": s["routing_version"],
                                     "links": links, "flows": flows}) + "\n")
                n_windows += 1
                n_flows += sum(1 for f in flows if f["label"] is not None)
    tmp.replace(out)
    return {"file": str(out), "runs": len(runs), "windows": n_windows, "labeled_flows": n_flows}
