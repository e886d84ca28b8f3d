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
from pathlib import Path
from typing import Any

from .store import Stores


def summary(stores: Stores, run_id: str | None = None) -> dict[str, Any]:
    out_runs = []
    for r in stores.runs(run_id):
        rid = r["id"]
        windows, flow_rows, labels = stores.window_count(rid), stores.flow_rows(rid), stores.label_count(rid)
        phases = []
        for p in stores.phases(rid):
            rates = stores.phase_rates(rid, p["idx"])
            phases.append({
                "idx": p["idx"], "profile": p["profile"], "protocol": p["protocol"], "load": p["load"],
                "start_at": p["start_at"], "end_at": p["end_at"], "flows": stores.flow_status_counts(rid, p["idx"]),
                "rate_bps": {"n": len(rates), "mean": _r(statistics.fmean(rates)) if rates else None,
                             "stdev": _r(statistics.pstdev(rates)) if rates else None,
                             "min": _r(min(rates)) if rates else None, "max": _r(max(rates)) if rates else None},
            })
        keep = ("id", "topology", "schedule", "window_s", "started_at", "ended_at", "status", "flows")
        out_runs.append({**{k: r[k] for k in keep}, "windows": windows, "flow_rows": flow_rows, "labels": labels,
                         "labeled_fraction": round(labels / flow_rows, 4) if flow_rows else 0.0, "phases": phases})
    return {"data": str(stores.root), "runs": out_runs,
            "windows": sum(r["windows"] for r in out_runs), "labels": sum(r["labels"] for r in out_runs)}


def _r(x: float) -> float:
    return round(x, 1)


def export(stores: Stores, out: Path, run_id: str | None = None) -> dict[str, Any]:
    """Write the training-ready JSON Lines file; return counts. Written to a temporary name and
    renamed, so a failed export leaves no half file."""
    runs = stores.runs(run_id)
    tmp = out.with_name(out.name + ".part")
    n_windows = n_flows = 0
    with tmp.open("w") as fh:
        for r in runs:
            rid = r["id"]
            fh.write(json.dumps({"type": "run", "id": rid, "topology": json.loads(r["topology_json"] or "null"),
                                 "schedule": json.loads(r["schedule_json"] or "null"),
                                 "window_s": r["window_s"]}) + "\n")
            for w in stores.windows(rid, links=True, labels=True):
                if not w.labels:
                    continue
                flows = []
                for f in w.flows:
                    lab = w.labels.get(f.flow_key)
                    flows.append({"key": f.flow_key, "src": f.src, "dst": f.dst, "proto": f.proto,
                                  "links": list(f.links), "offered_bps": f.offered_bps,
                                  "measured_bps": f.measured_bps, "pkt_size": f.pkt_size, "flow_no": f.flow_no,
                                  "label": None if lab is None else lab.to_dict()})
                fh.write(json.dumps({"type": "window", "run": rid, "window": w.window, "t_start": w.t_start,
                                     "phase": w.phase, "routing_version": w.routing_version,
                                     "links": [lk.to_dict() for lk in w.links], "flows": flows}) + "\n")
                n_windows += 1
                n_flows += sum(1 for f in flows if f["label"] is not None)
    tmp.replace(out)
    return {"file": str(out), "runs": len(runs), "windows": n_windows, "labeled_flows": n_flows}
