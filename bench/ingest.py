"""Store ingest benchmark: windows and flow rows per second written to the traffic store, and
labels per second to the labeled store (synthetic rows, no lab). Prints one JSON document.

    .venv/bin/python bench/ingest.py [--windows 500] [--flows 50] [--links 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from traffic.store import Stores  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=500)
    ap.add_argument("--flows", type=int, default=50)
    ap.add_argument("--links", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ndt-ingest-") as d:
        stores = Stores(d)
        t0 = time.perf_counter()
        for w in range(args.windows):
            flows = [{"flow_key": f"udp:10.0.0.{i % 250 + 1}:{4000 + i}>10.0.0.2:{10000 + i}", "ctl_flow_id": i,
                      "src": "h1", "dst": "h2", "proto": "udp", "sport": 4000 + i, "dport": 10000 + i,
                      "links": json.dumps(["L1", "L2", "L3"]), "packets": w * 100, "bytes": w * 55400,
                      "window_packets": 100, "window_bytes": 55400, "measured_bps": 443200.0,
                      "ctl_rate_bps": 443200.0, "offered_bps": 450000.0, "pkt_size": 512, "flow_no": i}
                     for i in range(args.flows)]
            links = [{"link_id": f"L{k}", "capacity_mbps": 10.0, "delay_ms": 2.0, "up": 1, "load_ab_bps": 1e6,
                      "load_ba_bps": 1e6, "drops_ab": 0, "drops_ba": 0} for k in range(args.links)]
            stores.write_window({"run_id": "bench", "window": w, "t_start": float(w), "t_end": w + 1.0,
                                 "phase_idx": 0, "topology": "bench", "routing_version": 1}, flows, links)
        traffic_s = time.perf_counter() - t0
        ids = stores.snapshot_ids("bench")
        t1 = time.perf_counter()
        rows = [{"run_id": "bench", "window": w,
                 "flow_key": f"udp:10.0.0.{i % 250 + 1}:{4000 + i}>10.0.0.2:{10000 + i}",
                 "snapshot_id": ids[w], "flow_no": i, "delay_ms": 5.0, "jitter_ms": 0.3, "loss_pct": 0.0,
                 "sent": 100, "received": 100, "rx_bps": 409600.0}
                for w in range(args.windows) for i in range(args.flows)]
        for start in range(0, len(rows), args.flows * 10):  # ten windows per transaction, as a phase decode does
            stores.write_labels(rows[start:start + args.flows * 10])
        labels_s = time.perf_counter() - t1
        size = sum(f.stat().st_size for f in Path(d).glob("*.db*"))
        stores.close()
    print(json.dumps({
        "bench": "ingest", "windows": args.windows, "flows_per_window": args.flows, "links_per_window": args.links,
        "windows_per_s": round(args.windows / traffic_s, 1),
        "flow_rows_per_s": round(args.windows * args.flows / traffic_s, 1),
        "link_rows_per_s": round(args.windows * args.links / traffic_s, 1),
        "labels_per_s": round(len(rows) / labels_s, 1),
        "store_bytes": size,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
