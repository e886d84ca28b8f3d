"""The base model without a lab (a small one trained briefly on a seeded run stands in for the
shipped one through $NDT_BASE_MODEL): it saves and loads bit-exactly with its card, becomes the
first active model of a registry once (its source "base"), answers `ndt whatif` by default and not
with --no-base-model, and a corrupt weights file, a card of other features or a save that fails
half-way are one error line and never replace a good base model."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from traffic.store import Stores
from vtwin.base_model import CARD_FILE, WEIGHTS_FILE, BaseModelError, ensure_active, load, save
from vtwin.dataset import from_stores
from vtwin.registry import Registry

from .conftest import TRAFFIC_SCHEDULE, ndt
from .seeded import seed_traffic_run


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A seeded run (no model in its registry) and a small base model trained on another one."""
    from vtwin.train import train
    from vtwin.twin import Twin

    root = tmp_path_factory.mktemp("base")
    corpus = root / "corpus"
    seed_traffic_run(corpus, "mesh6", TRAFFIC_SCHEDULE, seed=4)
    res = train(from_stores(Stores(corpus)), state=8, iterations=2, epochs=3, eager=True, progress=False)
    folder = root / "model"
    card = save(Twin(res.model, res.norm, xla=False), {"name": "test-base", "corpus": {"spec": "seeded"},
                                                        "held_out": {"overall": {"delay_mape": 50.0}}}, folder)
    data = root / "data"
    seed_traffic_run(data, "diamond", TRAFFIC_SCHEDULE)
    return {"folder": folder, "card": card, "data": data, "model": res.model}


def test_a_saved_base_model_loads_with_its_weights_and_card(base):
    b = load(base["folder"])
    assert b.card["weights"]["sha256"] == hashlib.sha256((base["folder"] / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert b.card["architecture"] == {"state": 8, "iterations": 2, "readout": "per-hop"}
    assert b.card["name"] == "test-base"
    for a, w in zip(b.weights, base["model"].get_weights(), strict=True):
        assert np.array_equal(a, w)
    shown = json.loads(ndt("model", "base", "show", "--dir", str(base["folder"]), "--json").stdout)
    assert shown["weights"]["sha256"] == b.sha256 and "normalization" not in shown


def test_the_base_model_becomes_the_first_active_model_once(base, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(base["data"], data)
    reg = Registry(Stores(data))
    assert ensure_active(reg, base["folder"]) == "v1"
    assert reg.active("delay") == "v1"
    rec = reg.show("delay", "v1")
    assert rec["metrics"]["training"]["source"] == "base" and rec["metrics"]["training"]["base_sha256"] == \
        load(base["folder"]).sha256
    assert ensure_active(reg, base["folder"]) is None  # an active model is left alone
    reg.set_status("delay", "v1", "archived")
    assert ensure_active(reg, base["folder"]) == "v1" and len(reg.list()) == 1  # the same version, not a copy


def test_whatif_starts_from_the_base_model_unless_told_not_to(base, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(base["data"], data)
    monkeypatch.setenv("NDT_BASE_MODEL", str(base["folder"]))
    stores = Stores(data)
    snap = stores.windows(stores.runs()[0]["id"], phase=0, run_flows_only=True)[3].snapshot_id
    req = tmp_path / "q.json"
    grow = {"type": "traffic_growth", "changes": [{"factor": 1.2}]}
    req.write_text(json.dumps({"snapshot_id": snap, "scenario": grow, "slo": {"latency_ms": 200}}))
    r = ndt("whatif", str(req), "--data", str(data), "--no-base-model", check=False)
    assert r.returncode == 1 and "no active delay model" in r.stderr
    res = json.loads(ndt("whatif", str(req), "--data", str(data), "--json").stdout)
    assert res["model_version"] == "v1" and res["flows"]
    rows = json.loads(ndt("model", "list", "--data", str(data), "--json").stdout)
    assert [(r["version"], r["metrics"]["training"]["source"]) for r in rows] == [("v1", "base")]


def corrupt_copy(base, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(base["folder"], folder)
    return folder


def test_a_corrupt_weights_file_is_one_error_line(base, tmp_path):
    folder = corrupt_copy(base, tmp_path)
    blob = bytearray((folder / WEIGHTS_FILE).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (folder / WEIGHTS_FILE).write_bytes(bytes(blob))
    with pytest.raises(BaseModelError, match="corrupt or not this card's"):
        load(folder)
    r = ndt("model", "base", "show", "--dir", str(folder), check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "SHA-256" in r.stderr


def test_a_card_of_other_features_is_refused_by_run_serve_and_whatif(base, tmp_path, monkeypatch):
    folder = corrupt_copy(base, tmp_path)
    card = json.loads((folder / CARD_FILE).read_text())
    card["features"]["link"] = [*card["features"]["link"], "colour"]
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(BaseModelError, match="this version of ndt computes"):
        load(folder)
    data = tmp_path / "data"
    shutil.copytree(base["data"], data)
    monkeypatch.setenv("NDT_BASE_MODEL", str(folder))
    req = tmp_path / "q.json"
    req.write_text(json.dumps({"snapshot_id": 1, "scenario": {"type": "traffic_growth", "changes": [{"factor": 1.2}]}}))
    r = ndt("whatif", str(req), "--data", str(data), check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "colour" in r.stderr and "--no-base-model" in r.stderr
    assert Registry(Stores(data)).list() == []  # nothing registered


def test_a_card_of_another_readout_is_refused(base, tmp_path):
    """A base model built before the per-hop readout (its card has no readout) is refused by name."""
    folder = corrupt_copy(base, tmp_path)
    card = json.loads((folder / CARD_FILE).read_text())
    assert card["architecture"]["readout"] == "per-hop"
    del card["architecture"]["readout"]
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(BaseModelError, match="reads its delays out per-link; this version of ndt reads them per-hop"):
        load(folder)


def test_a_save_that_fails_half_way_keeps_the_good_base_model(base, tmp_path):
    from vtwin.twin import Twin

    folder = corrupt_copy(base, tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    other = Twin.empty(8, 2, xla=False)
    other.norm = load(folder).norm
    with pytest.raises(TypeError):
        save(other, {"name": "broken", "created_at": object()}, folder)  # the card cannot be written
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    assert load(folder).sha256 == base["card"]["weights"]["sha256"]


def test_ndt_model_base_build_trains_with_the_loss_it_is_told_and_records_it(tmp_path):
    corpus = tmp_path / "corpus"
    seed_traffic_run(corpus, "mesh6", TRAFFIC_SCHEDULE, seed=4)
    out = tmp_path / "built"
    card = json.loads(ndt("model", "base", "build", "--data", str(corpus), "--out", str(out), "--budget", "20",
                          "--epochs", "2", "--state", "8", "--iterations", "2", "--loss", "log", "--json").stdout)
    assert card["training"]["loss"] == "log" and "--loss log" in card["training"]["command"]
    assert load(out).card["training"]["loss"] == "log" and card["held_out"]["overall"]["delay_mape"] > 0
    bad = ndt("model", "base", "build", "--data", str(corpus), "--out", str(tmp_path / "x"), "--loss", "mse",
              check=False)
    assert bad.returncode != 0 and "invalid choice: 'mse'" in bad.stderr and not (tmp_path / "x").exists()


def test_ndt_model_base_build_trains_on_several_corpora_together_and_refuses_one_given_twice(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    seed_traffic_run(first, "mesh6", TRAFFIC_SCHEDULE, run_id="run-first", seed=4)
    seed_traffic_run(second, "diamond", TRAFFIC_SCHEDULE, run_id="run-second", seed=5)
    out = tmp_path / "built"
    card = json.loads(ndt("model", "base", "build", "--data", str(first), str(second), "--out", str(out),
                          "--budget", "20", "--epochs", "2", "--state", "8", "--iterations", "2",
                          "--label-window", "1", "2", "--json").stdout)
    corpus = card["corpus"]
    assert corpus["runs"] == 2 and [p["data"] for p in corpus["parts"]] == [str(first), str(second)]
    assert [p["label_window"] for p in corpus["parts"]] == [1, 2] and corpus["label_window"] == [1, 2]
    assert {"mesh6", "diamond"} <= set(corpus["topologies"])
    assert "--data CORPUS1 CORPUS2" in card["training"]["command"] and load(out).card["corpus"] == corpus
    assert "--label-window 1 2" in card["training"]["command"]
    # the second corpus' phases labeled over 2 s windows: it trained on the merged windows
    from vtwin.dataset import from_corpus

    merged = len(from_corpus(Stores(first), 1)) + len(from_corpus(Stores(second), 2))
    assert corpus["train_windows"] + corpus["held_out_windows"] == merged < \
        len(from_corpus(Stores(first), 1)) + len(from_corpus(Stores(second), 1))
    miscounted = ndt("model", "base", "build", "--data", str(first), str(second), "--label-window", "1", "2", "4",
                     "--out", str(tmp_path / "y"), check=False)
    assert miscounted.returncode != 0 and "one for each of the 2 corpora" in miscounted.stderr
    assert not (tmp_path / "y").exists()
    twice = ndt("model", "base", "build", "--data", str(first), str(first), "--out", str(tmp_path / "x"),
                check=False)
    assert twice.returncode != 0 and "give each corpus once" in twice.stderr and not (tmp_path / "x").exists()
