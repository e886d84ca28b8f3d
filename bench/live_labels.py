"""Cost of the runner's live labeling pass over a long phase, without a lab. Prints one JSON document.

    .venv/bin/python bench/live_labels.py [--topology germany_50] [--flows 40] [--minutes 20]
        [--every 4] [--delay-ms 20]

A seeded run of one UDP phase (`tests/seeded.py`: the traffic layer's flow set, its features and
labels in the stores) and synthetic D-ITG binary logs for its flows, appended every `--every`
seconds of the phase as ITGSend and ITGRecv write them (`--pps` packets per second per flow, a
fixed delay). After each append the runner's own live pass (`TrafficRun._label_in_thread`, as a
run calls it) labels the windows up to the label lag; at each minute mark the pass that labels the
whole phase so far (what every live pass did before it read only the packets since its last
windows) is timed on its own readers. Reported per minute of the phase: the median live pass of
that minute and the whole-phase pass, in seconds of one core. A pass runs every 4 s in `ndt run`:
a pass near 4 s keeps one core busy and labels arrive ever later.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.seeded import T0, seed_traffic_run  # noqa: E402
from topologies import load  # noqa: E402
from traffic.ditg import encode_records  # noqa: E402
from traffic.runner import Sender, TrafficRun, data_port  # noqa: E402
from traffic.schedule import parse  # noqa: E402
from traffic.store import Stores  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--topology", default="germany_50")
    ap.add_argument("--flows", type=int, default=40)
    ap.add_argument("--minutes", type=int, default=20)
    ap.add_argument("--every", type=float, default=4.0, help="seconds between live passes (ndt run: 4)")
    ap.add_argument("--delay-ms", type=float, default=20.0)
    ap.add_argument("--pps", type=float, default=64.0,
                    help="packets per second per flow (the germany_50 gate: 3.5 M records, 40 flows, 23 min)")
    args = ap.parse_args()
    duration = 60.0 * args.minutes
    sched = {"flows": args.flows, "seed": 2, "phases": [
        {"profile": "deterministic", "protocol": "udp", "load": 0.6, "duration_s": duration}]}
    out: dict[str, Any] = {"topology": args.topology, "flows": args.flows, "minutes": args.minutes,
                           "every_s": args.every}
    with tempfile.TemporaryDirectory(prefix="ndt-live-labels-") as d:
        t = time.perf_counter()
        run_id = seed_traffic_run(Path(d), args.topology, sched)
        out["seed_s"] = round(time.perf_counter() - t, 1)
        stores = Stores(d)
        flows = stores.run_flows(run_id)  # one phase
        out["pps_per_flow"] = args.pps
        runs = []
        for _ in ("live", "whole"):  # the same logs, each with its own readers
            r = TrafficRun(parse(sched, "bench"), stores, {}, load(args.topology), None,  # type: ignore[arg-type]
                           progress=False)
            r.run_id, r.t0 = run_id, T0
            r.phase_senders[0] = [Sender(f["flow_no"], r.pairs[0][f["flow_no"]], "udp", data_port(0, f["flow_no"]),
                                         None, Path(d) / f"{f['flow_no']}.out",  # type: ignore[arg-type]
                                         Path(d) / f"{f['flow_no']}.tx", Path(d) / f"{f['flow_no']}.rx",
                                         T0) for f in flows]
            runs.append(r)
        live, whole = runs
        per_minute: dict[int, list[float]] = {}
        whole_s: dict[int, float] = {}
        now = 0.0
        while now < duration:
            step_end = min(now + args.every, duration)
            for f in flows:
                seq = np.arange(int(np.ceil(now * args.pps)), int(np.ceil(step_end * args.pps)))
                tx = T0 + seq / args.pps
                s = live.phase_senders[0][f["flow_no"]]
                with s.tx_log.open("ab") as fh:
                    fh.write(encode_records(seq, tx, None, f["sport"]))
                with s.rx_log.open("ab") as fh:
                    fh.write(encode_records(seq, tx, tx + args.delay_ms / 1000, f["sport"]))
            now = step_end
            upto = int(now) - 1 - live.label_lag_windows
            t = time.perf_counter()
            live._label_in_thread(0, upto)
            per_minute.setdefault(int((now - 1e-9) // 60) + 1, []).append(time.perf_counter() - t)
            minute = int(round(now / 60))
            if abs(now - 60 * minute) < 1e-6 and minute not in whole_s:
                t = time.perf_counter()
                whole.label_phase(0, upto_window=upto, keep_readers=True)
                whole_s[minute] = round(time.perf_counter() - t, 3)
                print(f"... minute {minute}: live pass {statistics.median(per_minute[minute]):.3f} s, "
                      f"whole-phase pass {whole_s[minute]:.3f} s", file=sys.stderr, flush=True)
        out["live_pass_s"] = {m: round(statistics.median(v), 4) for m, v in per_minute.items()}
        out["live_pass_max_s"] = round(max(max(v) for v in per_minute.values()), 4)
        out["whole_phase_pass_s"] = whole_s
        out["labels"] = stores.label_count(run_id)
        stores.close()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
