"""Reading the stores back: the data summary and the training-ready export.

The export is JSON Lines: for every run a line {"type": "run", id, topology (the Topology as
JSON), schedule, window_s}, then for every window that has labels a line {"type": "window",
run, window, t_start, phase, routing_version, links: [...], flows: [...]} where each flow carries
its path, offered and measured rates, packet size and counters, and the labeled ones their delay,
jitter, loss and received bitrate. `import_jsonl` writes such a file back into a data directory.
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


def export(stores: Stores, out: Path, run_id: str | None = None, runs_only: list[str] | None = None) -> dict[str, Any]:
    """Write the training-ready JSON Lines file (of one run, the runs listed, or all); return
    counts. Written to a temporary name and renamed, so a failed export leaves no half file."""
    runs = [r for r in stores.runs(run_id) if runs_only is None or r["id"] in runs_only]
    tmp = out.with_name(out.name + ".part")
    n_windows = n_flows = 0
    with tmp.open("w") as fh:
        for r in runs:
            rid = r["id"]
            fh.write(json.dumps({"type": "run", "id": rid, "topology": json.loads(r["topology_json"] or "null"),
                                 "schedule": json.loads(r["schedule_json"] or "null"),
                                 "window_s": r["window_s"], "t0": r["t0"], "started_at": r["started_at"],
                                 "ended_at": r["ended_at"], "status": r["status"], "flows": r["flows"],
                                 "seed": r["seed"]}) + "\n")
            for w in stores.windows(rid, links=True, labels=True):
                if not w.labels:
                    continue
                flows = []
                for f in w.flows:
                    lab = w.labels.get(f.flow_key)
                    flows.append({"key": f.flow_key, **{k: v for k, v in f.to_dict().items() if k != "flow_key"},
                                  "label": None if lab is None else lab.to_dict()})
                fh.write(json.dumps({"type": "window", "run": rid, "window": w.window, "t_start": w.t_start,
                                     "t_end": w.t_end, "topology": w.topology,
                                     "phase": w.phase, "routing_version": w.routing_version,
                                     "links": [lk.to_dict() for lk in w.links], "flows": flows}) + "\n")
                n_windows += 1
                n_flows += sum(1 for f in flows if f["label"] is not None)
    tmp.replace(out)
    return {"file": str(out), "runs": len(runs), "windows": n_windows, "labeled_flows": n_flows}


def import_jsonl(stores: Stores, path: Path) -> dict[str, Any]:
    """Write an exported file's runs, windows and labels back into `stores` (a corpus moved to
    another machine). Runs already there are skipped whole; each run's rows are written in one
    pass, and a file that breaks off leaves the runs before the break complete and the broken
    one deleted."""
    from .window import WindowFlow, WindowLink

    imported: list[str] = []
    skipped: list[str] = []
    current: str | None = None
    n_windows = n_labels = 0
    known = stores.run_ids()
    try:
        with path.open() as fh:
            for no, line in enumerate(fh, 1):
                try:
                    rec = json.loads(line)
                    kind = rec["type"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{path.name}, line {no}: not a line of an ndt export") from None
                if kind == "run":
                    current = rec["id"]
                    if current in known:
                        skipped.append(current)
                        continue
                    stores.add_run({"id": current, "topology": (rec.get("topology") or {}).get("name"),
                                    "schedule": (rec.get("schedule") or {}).get("name"),
                                    "schedule_json": json.dumps(rec.get("schedule")),
                                    "topology_json": json.dumps(rec.get("topology")),
                                    "window_s": rec.get("window_s"), "t0": rec.get("t0"),
                                    "started_at": rec.get("started_at"), "ended_at": rec.get("ended_at"),
                                    "status": rec.get("status") or "imported", "flows": rec.get("flows"),
                                    "seed": rec.get("seed")})
                    imported.append(current)
                    continue
                if kind != "window" or rec.get("run") != current:
                    raise ValueError(f"{path.name}, line {no}: a {kind!r} line outside its run")
                if current in skipped:
                    continue
                flows = [WindowFlow.from_row(f) for f in rec["flows"]]
                snap = {"run_id": current, "window": rec["window"], "t_start": rec.get("t_start"),
                        "t_end": rec.get("t_end"), "phase_idx": rec.get("phase"), "topology": rec.get("topology"),
                        "routing_version": rec.get("routing_version")}
                links = [WindowLink.from_row(lk).to_dict() for lk in rec.get("links", [])]
                stores.write_window(snap, [f.to_row() for f in flows], links)
                n_windows += 1
                n_labels += stores.write_labels([
                    {**f["label"], "run_id": current, "window": rec["window"], "flow_key": f["key"],
                     "flow_no": f.get("flow_no")} for f in rec["flows"] if f.get("label")])
    except BaseException:
        if current in imported:  # the run being written when the file broke off (or Ctrl-C)
            stores.delete_run(current)
            imported.remove(current)
        raise
    return {"file": str(path), "runs": len(imported), "skipped_runs": len(skipped), "windows": n_windows,
            "labeled_flows": n_labels, "run_ids": imported}
