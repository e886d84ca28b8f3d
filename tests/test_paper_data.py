"""The paper's own labeled datasets (`../shared/robust-ndt/datasets/`) imported as training
samples: units as their README gives them, one flow on its path per row, measured loss and
jitter never inputs, `ndt train --dataset` accepts the file, and bad directories are one error
line. No lab needed."""

from __future__ import annotations

import json
import os
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from vtwin.dataset import from_jsonl
from vtwin.paper_data import PAPER_QUEUE_PKTS, PaperDataError, find_splits

from .conftest import ZOO, ndt

DATASETS = ZOO.parent / "robust-ndt" / "datasets"
GERMANY_EXP_VAL = DATASETS / "delay" / "germany" / "experiment_200_cv" / "validation"
pytestmark = pytest.mark.skipif(not GERMANY_EXP_VAL.is_dir(), reason=f"needs {GERMANY_EXP_VAL}")


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("paper") / "germany-exp-val.jsonl"
    r = ndt("data", "import", "robust-ndt", str(GERMANY_EXP_VAL), "--out", str(out), "--json", timeout=180)
    return out, json.loads(r.stdout)


def test_every_pattern_and_split_of_the_three_topologies_is_found():
    splits = find_splits(DATASETS)
    assert {(s.topology, s.pattern, s.split) for s in splits} >= {
        (t, p, sp) for t in ("5g_crosshaul", "germany", "passion")
        for p in ("exponential", "poisson", "uniform") for sp in ("training", "validation")}
    assert {s.pattern for s in splits} == {"exponential", "poisson", "uniform", "deterministic"}


def test_rows_keep_the_papers_units_as_one_flow_on_its_path(imported):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    out, summary = imported
    (split,) = summary["splits"]
    assert (split["topology"], split["pattern"], split["split"]) == ("germany", "exponential", "validation")
    x, y = next(tf.data.Dataset.load(str(GERMANY_EXP_VAL), compression="GZIP").as_numpy_iterator())
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    run, first = lines[0], lines[1]
    assert run["type"] == "run" and first["type"] == "window" and first["phase"] == 0
    links = run["topology"]["links"]
    assert [lk["capacity_mbps"] for lk in links] == pytest.approx(x["link_capacity"][:, 0] / 1e4)  # Mbit/s
    assert sum(lk["delay_ms"] for lk in links) == pytest.approx(x["flow_propag_delay"][0, 0] * 1e4, rel=1e-4)
    assert {lk["queue_pkts"] for lk in links} == {PAPER_QUEUE_PKTS}
    (flow,) = first["flows"]
    assert flow["offered_bps"] == pytest.approx(x["flow_traffic"][0, 0] * 1e3)  # kbit/s in the file
    assert flow["pkt_size"] == x["flow_packet_size"][0, 0] and flow["proto"] == "tcp"
    assert flow["label"]["delay_ms"] == pytest.approx(y[0] * 1e3)  # seconds in the file
    assert flow["label"]["jitter_ms"] == pytest.approx(x["jitter"][0, 0] * 1e3)
    assert not {"loss", "jitter", "loss_pct"} & set(flow) - {"label"}  # measurements are labels only
    samples = from_jsonl(out)
    assert len(samples) == split["rows"] == sum(1 for ln in lines if ln["type"] == "window")
    assert all(len(s.snapshot.flows) == 1 and np.isfinite(s.delay_ms).all() for s in samples)
    assert {s.snapshot.flows[0].process for s in samples} == {"exponential"}  # the pattern's process, an input
    # the connections' rows interleave in the file; each window still gets its own run's path
    runs = [ln["run"] for ln in lines if ln["type"] == "window"]
    assert any(a != b for a, b in pairwise(runs)) and all(s.snapshot.topo.name == s.run for s in samples)


def test_ndt_train_accepts_the_imported_file(imported, tmp_path):
    out, _ = imported
    lines = out.read_text().splitlines()
    head = tmp_path / "head.jsonl"  # the file's run lines and its first 400 windows: the format, in less time
    head.write_text("\n".join([ln for ln in lines if '"type": "run"' in ln]
                              + [ln for ln in lines if '"type": "window"' in ln][:400]) + "\n")
    r = json.loads(ndt("train", "--dataset", str(head), "--data", str(tmp_path / "data"), "--epochs", "2",
                       "--budget", "20", "--json", timeout=300).stdout)
    assert r["uri"] == "registry://delay:v1" and r["metrics"]["held_out"]["overall"]["flows"] > 0, r


def test_bad_directories_are_one_error_line(tmp_path):
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "delay" / "germany" / "experiment_200_cv" / "validation"
    shutil.copytree(GERMANY_EXP_VAL, broken)
    (broken / "dataset_spec.pb").write_bytes(b"not a spec")
    cases = [(tmp_path / "missing", "no such directory"), (tmp_path / "empty", "no saved tf.data delay dataset"),
             (broken, "not a readable dataset of the paper's")]
    for d, message in cases:
        out = tmp_path / "out.jsonl"
        r = ndt("data", "import", "robust-ndt", str(d), "--out", str(out), check=False, timeout=180)
        assert r.returncode == 1 and message in r.stderr, (d, r.stderr)
        assert r.stderr.strip().splitlines()[-1].startswith("ndt: error:") and "Traceback" not in r.stderr
        assert [ln for ln in r.stderr.splitlines() if not ln.startswith("...")] == [r.stderr.strip().splitlines()[-1]]
        assert not out.exists() and not out.with_name(out.name + ".part").exists()
    r = ndt("data", "import", "robust-ndt", str(GERMANY_EXP_VAL), "--out", str(tmp_path / "no" / "x.jsonl"),
            check=False)
    assert r.returncode == 1 and "no such directory for --out" in r.stderr
    with pytest.raises(PaperDataError):
        find_splits(DATASETS, topology="atlantis")
