"""The paper's own labeled data (`../shared/robust-ndt/datasets/`) as training samples.

Those are saved `tf.data` datasets, `{delay,jitter}/{topology}/experiment_N_cv/{training,validation}`,
N ending in 0 exponential, 1 Poisson, 2 uniform, 4 deterministic (congested UDP). Each element
is 100 consecutive 1-second D-ITG rows of one connection on its path of L links (units as their
README gives them): `flow_traffic` kbit/s, `flow_packet_size` bytes, `flow_propag_delay` the
path's propagation in ms / 1e4, `link_capacity` Mbit/s x 1e4, the label the delay in seconds,
and `jitter` (seconds) and `flow_loss_packet` among the inputs. Elements do not overlap (their
rows differ), so every row is kept; `every` keeps one in K (60k-130k rows per pattern).

Here a row becomes one window of one flow on its own path: a line of L links with the path's
capacities, its propagation shared equally by the links (only the sum is given), the Linux
default buffer the paper's lab left (1000 packets), the flow's traffic as its offered rate. The
delay (s) is the delay label in ms and the row's measured jitter (s) the jitter label in ms:
measured loss and jitter are never inputs. The samples are written in the export's JSON Lines
form, so `ndt train --dataset FILE` trains on them; one run per (split, connection path).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topologies.model import build

PATTERNS = {"0": "exponential", "1": "poisson", "2": "uniform", "4": "deterministic"}
SEGMENTS = tuple(PATTERNS.values())  # the paper's drift order
#: The buffer of the paper's links: its code left Linux's default queue (txqueuelen 1000).
PAPER_QUEUE_PKTS = 1000


class PaperDataError(ValueError):
    """A directory that holds no readable dataset of the paper's (one clear message)."""


@dataclass(frozen=True)
class Split:
    topology: str  # 5g_crosshaul, germany, passion
    pattern: str  # one of SEGMENTS
    split: str  # training, validation
    path: Path


def find_splits(root: Path, topology: str | None = None, split: str | None = None) -> list[Split]:
    """The delay datasets under `root` (the datasets folder, one topology's or one split's)."""
    if not root.is_dir():
        raise PaperDataError(f"{root}: no such directory")
    found = []
    for spec in sorted(root.rglob("dataset_spec.pb")):
        d = spec.parent
        parts = d.parts
        if len(parts) < 4 or parts[-4] != "delay" or not parts[-2].startswith("experiment_"):
            continue
        digit = parts[-2].removeprefix("experiment_").split("_")[0][-1:]
        if digit not in PATTERNS:
            continue
        s = Split(parts[-3], PATTERNS[digit], parts[-1], d)
        if (topology is None or s.topology == topology) and (split is None or s.split == split):
            found.append(s)
    if not found:
        what = " ".join(x for x in (topology, split) if x)
        raise PaperDataError(f"{root}: no saved tf.data delay dataset{' (' + what + ')' if what else ''} "
                             "under it (want delay/TOPOLOGY/experiment_N_cv/SPLIT/dataset_spec.pb)")
    return found


def _rows(split: Split) -> Iterator[tuple[tuple[float, ...], float, float, float, float, float]]:
    """(path capacities Mbit/s, propagation ms, traffic bit/s, packet bytes, delay ms, jitter ms)
    per row of the split, in order."""
    from .tfload import tf

    try:
        ds = tf.data.Dataset.load(str(split.path), compression="GZIP")
        for x, y in ds.as_numpy_iterator():
            caps = tuple(round(float(c) / 1e4, 6) for c in x["link_capacity"][:, 0])
            prop = float(x["flow_propag_delay"][0, 0]) * 1e4
            for i in range(len(y)):
                yield (caps, prop, float(x["flow_traffic"][i, 0]) * 1e3, float(x["flow_packet_size"][i, 0]),
                       float(y[i]) * 1e3, float(x["jitter"][i, 0]) * 1e3)
    except Exception as exc:  # noqa: BLE001 - TensorFlow and protobuf raise many types for a bad dataset
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PaperDataError(f"{split.path}: not a readable dataset of the paper's: {msg}") from None


def _line_topology(name: str, caps: tuple[float, ...], prop_ms: float) -> dict[str, Any]:
    per_link = prop_ms / len(caps)
    topo = build(name, [f"n{i}" for i in range(len(caps) + 1)],
                 [(i, i + 1, c, round(per_link, 6), PAPER_QUEUE_PKTS) for i, c in enumerate(caps)],
                 notes=("a connection's path from the paper's dataset: propagation shared equally by its links",))
    return topo.to_dict()


def import_splits(splits: list[Split], out: Path, every: int = 1,
                  progress: Callable[[str], None] = lambda m: None) -> dict[str, Any]:
    """Write one in `every` of the splits' rows as JSON Lines (the export's form) to `out`; counts
    per split. Written to a temporary name and renamed, so a failure leaves no half file."""
    if every < 1:
        raise PaperDataError(f"every must be at least 1, got {every}")
    tmp = out.with_name(out.name + ".part")
    summary: list[dict[str, Any]] = []
    try:
        with tmp.open("w") as fh:
            for s in splits:
                progress(f"reading {s.topology} {s.pattern} {s.split}")
                runs: dict[tuple[tuple[float, ...], float], tuple[str, int]] = {}
                rows = 0
                proto = "udp" if s.pattern == "deterministic" else "tcp"
                for n, (caps, prop, bps, size, delay_ms, jitter_ms) in enumerate(_rows(s)):
                    if n % every:
                        continue
                    path_key = (caps, round(prop, 6))
                    if path_key not in runs:
                        rid = f"robust-{s.topology}-{s.pattern}-{s.split}-p{len(runs)}"
                        fh.write(json.dumps({"type": "run", "id": rid, "topology": _line_topology(rid, caps, prop),
                                             "schedule": {"source": "robust-ndt", "topology": s.topology,
                                                          "pattern": s.pattern, "split": s.split},
                                             "window_s": 1.0}) + "\n")
                        runs[path_key] = (rid, 0)
                    rid, window = runs[path_key]
                    runs[path_key] = (rid, window + 1)
                    flow = {"key": f"{rid}:flow", "src": "h1", "dst": f"h{len(caps) + 1}", "proto": proto,
                            "links": [f"L{i}" for i in range(len(caps))], "offered_bps": bps,
                            "measured_bps": None, "pkt_size": size, "flow_no": 0,
                            "label": {"delay_ms": delay_ms, "jitter_ms": jitter_ms}}
                    fh.write(json.dumps({"type": "window", "run": rid, "window": window,
                                         "phase": SEGMENTS.index(s.pattern), "links": [], "flows": [flow]}) + "\n")
                    rows += 1
                summary.append({"topology": s.topology, "pattern": s.pattern, "split": s.split,
                                "rows": rows, "paths": len(runs)})
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"file": str(out), "splits": summary, "rows": sum(x["rows"] for x in summary)}
