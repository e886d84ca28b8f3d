"""SLA policy and scoring without a lab: budget precedence (flow rule, class, propagation plus
margin), the confusion matrix and its scores beside always answering "compliant", and config
files that are wrong in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.common.config import ConfigError, load_config
from sync.sla import SlaPolicy, SlaPolicyError, confusion, totals


def test_budget_comes_from_the_first_matching_flow_rule_then_the_class_then_the_path():
    policy = SlaPolicy.from_dict({"margin_ms": 4, "classes": {"UDP": 20},
                                  "flows": [{"match": "h1>h4", "latency_ms": 15},
                                            {"match": "tcp:10.0.0.2:*", "latency_ms": 30}]})
    assert policy.budget("udp:10.0.0.1:5000>10.0.0.4:10001", "udp", "h1", "h4", 7.0) == (15.0, "flow")
    assert policy.budget("tcp:10.0.0.2:5000>10.0.0.3:10001", "tcp", "h2", "h3", 7.0) == (30.0, "flow")
    assert policy.budget("udp:10.0.0.2:5000>10.0.0.3:10001", "udp", "h2", "h3", 7.0) == (20.0, "class")
    assert policy.budget("tcp:10.0.0.3:5000>10.0.0.1:10001", "tcp", "h3", "h1", 7.0) == (11.0, "default")
    assert SlaPolicy().budget("k", "tcp", "h1", "h2", 2.0) == (7.0, "default")  # 5 ms margin by default


def test_scores_put_violations_as_the_positive_class_beside_always_compliant():
    # 2 true violations caught, 1 false alarm, 1 missed, 6 compliant and predicted so
    c = confusion([(True, True)] * 2 + [(True, False)] + [(False, True)] + [(False, False)] * 6)
    assert (c["tp"], c["fp"], c["fn"], c["tn"]) == (2, 1, 1, 6)
    assert c["precision"] == pytest.approx(2 / 3, abs=1e-4) and c["recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert c["f1"] == pytest.approx(2 / 3, abs=1e-4) and c["accuracy"] == pytest.approx(0.8)
    assert c["always_compliant_accuracy"] == pytest.approx(0.7)  # 7 of 10 measured compliant
    none = confusion([(False, False)] * 5)
    assert none["precision"] is None and none["recall"] is None and none["always_compliant_accuracy"] == 1.0
    missed = confusion([(False, True), (False, False)])
    assert missed["recall"] == 0.0 and missed["f1"] is None  # nothing predicted: precision undefined


def test_totals_score_the_serving_model_and_the_frozen_shadow_side_by_side():
    rows = [{"tp": 2, "fp": 1, "fn": 0, "tn": 7, "predicted_violations": 3, "measured_violations": 2, "flows": 10,
             "labeled": 10, "shadow_tp": 0, "shadow_fp": 0, "shadow_fn": 2, "shadow_tn": 8},
            # a window evaluated before the shadow was scored (a store from before): counts for sync only
            {"tp": 1, "fp": 0, "fn": 1, "tn": 8, "predicted_violations": 1, "measured_violations": 2, "flows": 10,
             "labeled": 10, "shadow_tp": None, "shadow_fp": None, "shadow_fn": None, "shadow_tn": None}]
    t = totals(rows)
    assert (t["tp"], t["fp"], t["fn"], t["tn"]) == (3, 1, 1, 15) and t["f1"] == pytest.approx(0.75)
    shadow = t["without_sync"]
    assert (shadow["tp"], shadow["fn"], shadow["tn"]) == (0, 2, 8)
    assert shadow["recall"] == 0.0 and shadow["accuracy"] == pytest.approx(0.8)


@pytest.mark.parametrize("policy,message", [
    ({"margin_ms": -1}, "margin_ms must not be negative"),
    ({"margin_ms": "wide"}, "margin_ms must be a number"),
    ({"classes": {"udp": 0}}, "must be positive"),
    ({"classes": ["udp"]}, "classes must map"),
    ({"flows": [{"latency_ms": 5}]}, "flows must be a list of {match, latency_ms}"),
    ({"flows": [{"match": "h1>h2", "latency_ms": "soon"}]}, "must be a number"),
    ({"budget": 5}, "unknown key"),
])
def test_bad_policies_are_refused(policy, message):
    with pytest.raises(SlaPolicyError, match=message):
        SlaPolicy.from_dict(policy)


def test_config_file_token_policy_and_errors(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("NDT_TOKEN", raising=False)
    monkeypatch.delenv("NDT_CONFIG", raising=False)
    (tmp_path / "ndt.yaml").write_text("service: {token: abc, port: 8100}\nsla: {margin_ms: 3}\n")
    cfg = load_config(None, tmp_path)  # found in the data directory
    assert (cfg.token, cfg.port, cfg.host, cfg.sla.margin_ms) == ("abc", 8100, "127.0.0.1", 3.0)
    monkeypatch.setenv("NDT_TOKEN", "from-env")
    assert load_config(None, tmp_path).token == "from-env"
    assert load_config(None, tmp_path / "empty").token == "from-env"  # no file: defaults
    for text, message in (("sla: {margin_ms: -2}", "sla: margin_ms"), ("[1, 2]", "must be a mapping"),
                          ("servce: {}", "unknown section"), ("service: {tokn: x}", "takes token, host and port"),
                          ("sla: {margin_ms: [", "not valid YAML")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message) as err:
            load_config(str(bad), tmp_path)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(tmp_path / "missing.yaml"), tmp_path)
