"""Accuracy measures: the two NMSE definitions (ours over the variance, the paper's over the
labels' power) on hand-computed cases, and how they relate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vtwin.evaluate import mape, nmse_db, nmse_power_db, nmse_var_db, scores


def test_both_nmse_definitions_on_a_hand_computed_case():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.5, 4.0])
    # errors^2 sum 0.5; variance sum 5; power sum 30
    assert nmse_var_db(p, y) == pytest.approx(10 * math.log10(0.5 / 5))
    assert nmse_power_db(p, y) == pytest.approx(10 * math.log10(0.125 / 7.5))
    assert nmse_var_db is nmse_db


def test_the_papers_nmse_is_lower_by_the_mean_to_variance_term():
    rng = np.random.default_rng(3)
    y = 20 + rng.normal(0, 2, 1000)  # delays around 20 ms, small spread: the two definitions far apart
    p = y + rng.normal(0, 1, 1000)
    gap = nmse_var_db(p, y) - nmse_power_db(p, y)
    assert gap == pytest.approx(10 * math.log10(np.mean(y ** 2) / np.var(y)), abs=1e-9)
    assert gap > 15  # answering the mean scores 0 dB ours, about -20 dB the paper's


def test_answering_the_mean_is_zero_db_ours_and_not_the_papers():
    y = np.array([10.0, 12.0, 14.0])
    p = np.full(3, y.mean())
    assert nmse_var_db(p, y) == pytest.approx(0.0)
    assert nmse_power_db(p, y) < -15


def test_degenerate_labels_give_none_not_a_number():
    assert nmse_var_db(np.ones(3), np.full(3, 5.0)) is None  # no variance
    assert nmse_power_db(np.ones(3), np.zeros(3)) is None  # no power
    assert nmse_power_db(np.ones(2), np.array([np.nan, np.nan])) is None
    assert mape(np.ones(2), np.zeros(2)) is None


def test_scores_label_both_definitions():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    s = scores(y * 1.1, y * 0.9, y, y)
    assert s["delay_nmse_db"] < 0 and s["delay_nmse_power_db"] < s["delay_nmse_db"]
    assert s["jitter_nmse_power_db"] < s["jitter_nmse_db"] and s["delay_mape"] == pytest.approx(10.0)


def test_the_labels_floor_is_what_predicting_each_flow_by_its_own_mean_leaves():
    from sync.report import flow_mean_floor

    # two flows, each steady apart from a +-1 ms wobble from window to window
    flow = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y = np.array([9.0, 11.0, 9.0, 11.0, 19.0, 21.0, 19.0, 21.0])
    floor = flow_mean_floor(flow, y)
    assert floor["floor_nmse_power_db"] == pytest.approx(10 * math.log10(1.0 / np.mean(y ** 2)), abs=0.01)
    assert floor["floor_nmse_var_db"] == pytest.approx(10 * math.log10(1.0 / np.var(y)), abs=0.01)
    steady = flow_mean_floor(flow, np.repeat([10.0, 20.0], 4))  # no wobble: nothing left to explain
    assert steady["floor_nmse_power_db"] < -100 and steady["floor_nmse_var_db"] < -100
    assert flow_mean_floor(np.array([], int), np.array([])) == {"floor_nmse_power_db": None,
                                                                "floor_nmse_var_db": None}


def _samples(delays: dict[int, list[float]], phase_of: dict[int, int] | None = None):
    """Samples of one run on the mesh: windows -> the delays of two flows (h1>h2, h1>h3)."""
    from topologies import load
    from topologies.routing import path_links, shortest_path
    from vtwin.dataset import Sample
    from vtwin.features import FlowSpec, Snapshot

    topo = load("mesh6")
    flows = [FlowSpec(f"0>{d}", tuple(path_links(topo, shortest_path(topo, 0, d))), 0, 1e6) for d in (1, 2)]
    snap = Snapshot(topo, flows)
    return [Sample("r", w, (phase_of or {}).get(w, 0), "mesh6", snap, np.array(d, np.float32),
                   np.array([x / 10 for x in d], np.float32)) for w, d in delays.items()]


def test_the_floor_answers_each_window_by_its_flows_other_windows():
    from vtwin.evaluate import label_floor

    held = _samples({0: [10.0, 20.0], 1: [12.0, 20.0], 2: [14.0, 20.0]})
    floor = label_floor(held)  # leave-one-out: 13, 12, 11 for the first flow; 20 for the second
    errors = [3 / 10, 0 / 12, 3 / 14, 0, 0, 0]
    assert floor["delay_mape"] == pytest.approx(100 * np.mean(errors), abs=1e-3)
    assert floor["flows"] == 6
    # against reference (training) windows: their mean answers every held-out window
    ref = label_floor(held[2:], reference=held[:2])
    assert ref["delay_mape"] == pytest.approx(100 * np.mean([3 / 14, 0]), abs=1e-3)
    # a flow with no other window in its phase is left out, not answered by nothing
    assert label_floor(_samples({0: [10.0, 20.0]})) is None
    other_phase = _samples({0: [10.0, 20.0], 1: [30.0, 40.0]}, phase_of={1: 1})
    assert label_floor(other_phase) is None


def test_the_mapes_own_centre_is_the_median_weighted_by_one_over_the_label():
    from vtwin.evaluate import weighted_median

    y = np.array([10.0, 10.0, 100.0])
    c = weighted_median(y)
    assert c == 10.0  # the mean (40) would score 200 %, the median here the same 10 as the weighted
    candidates = np.linspace(1, 120, 2381)
    best = candidates[np.argmin([np.mean(np.abs(x - y) / y) for x in candidates])]
    assert np.mean(np.abs(c - y) / y) <= np.mean(np.abs(best - y) / y) + 1e-12
    # weights 1/y pull it below the plain median: 2, 4, 8 -> weights .5, .25, .125
    assert weighted_median(np.array([8.0, 2.0, 4.0])) == 2.0


def test_the_mape_floor_answers_each_flow_by_its_best_constant_in_hindsight_or_from_reference():
    from vtwin.evaluate import mape_floor

    held = _samples({0: [10.0, 20.0], 1: [10.0, 20.0], 2: [30.0, 20.0]})
    floor = mape_floor(held)  # first flow: constant 10 scores 0, 0, 20/30; second flow: 0
    assert floor["overall"]["delay_mape"] == pytest.approx(100 * (2 / 3) / 6, abs=1e-3)
    assert floor["overall"]["flows"] == 6
    assert floor["stable"]["flows"] + floor["overloaded"]["flows"] == 6
    # jitter labels are a tenth of the delays: the same relative errors
    assert floor["overall"]["jitter_mape"] == pytest.approx(floor["overall"]["delay_mape"], abs=1e-3)
    # from reference windows: the first two (10 and 20) answer the third
    ref = mape_floor(held[2:], reference=held[:2])
    assert ref["overall"]["delay_mape"] == pytest.approx(100 * np.mean([20 / 30, 0]), abs=1e-3)
    # a flow-window without reference in its phase is left out
    assert mape_floor(held[2:], reference=_samples({0: [10.0, 20.0]}, phase_of={0: 1})) is None
    assert mape_floor([]) is None


def test_phase_means_skip_the_first_window_and_keep_unlabeled_flows_unlabeled():
    from vtwin.dataset import steady

    s = _samples({0: [100.0, 5.0], 1: [10.0, np.nan], 2: [14.0, 7.0], 3: [30.0, 9.0]}, phase_of={3: 1})
    means = {m.phase: m for m in steady(s)}
    # phase 0 has three windows: its first (the start-up transient) is left out
    assert means[0].delay_ms[0] == pytest.approx(12.0) and means[0].delay_ms[1] == pytest.approx(7.0)
    assert means[0].jitter_ms[0] == pytest.approx(1.2)
    assert means[1].delay_ms.tolist() == [30.0, 9.0]  # one window: kept as it is
    with_first = {m.phase: m for m in steady(s, skip_first=False)}
    assert with_first[0].delay_ms[0] == pytest.approx(124 / 3, rel=1e-5)
    none_labeled = _samples({0: [np.nan, np.nan]})
    assert steady(none_labeled) == []


def test_a_run_keeps_only_its_windows_inside_phases_where_it_has_any():
    from vtwin.dataset import within_phases

    # windows 0 and 4: before the first phase starts and after the last one ends (senders draining)
    s = _samples({w: [10.0, 20.0] for w in range(5)}, phase_of={0: None, 1: 0, 2: 0, 3: 1, 4: None})
    assert [m.window for m in within_phases(s)] == [1, 2, 3]
    unphased = _samples({w: [10.0, 20.0] for w in range(3)}, phase_of={0: None, 1: None, 2: None})
    assert within_phases(unphased) == unphased  # a run without phases keeps every window
    from dataclasses import replace

    both = s + [replace(m, run="r2") for m in unphased]  # one list, two runs: each by its own phases
    assert [(m.run, m.window) for m in within_phases(both)] == [("r", 1), ("r", 2), ("r", 3),
                                                                ("r2", 0), ("r2", 1), ("r2", 2)]


def test_a_window_counts_only_if_it_saw_one_traffic_state():
    from traffic.schedule import data_port
    from traffic.window import Window, WindowFlow
    from vtwin.dataset import one_state

    def wf(phase: int, packets: int | None, window_packets: int | None, run: bool = True) -> WindowFlow:
        return WindowFlow("k", "h1", "h2", "udp", ("L0",), window_packets=window_packets, packets=packets,
                          flow_no=0 if run else None, dport=data_port(phase, 0) if run else 5001)

    assert one_state(Window("r", 5, flows=[wf(1, 500, 100), wf(1, 300, 100)]))
    # one phase ending and the next beginning in the same window, both settled by their counters
    assert not one_state(Window("r", 5, flows=[wf(1, 500, 100), wf(2, 400, 100)]))
    # a run flow whose entry was installed during the window: its sender was starting
    assert not one_state(Window("r", 5, flows=[wf(1, 500, 100), wf(1, 40, 40)]))
    # not the run's own (D-ITG's signaling, anything else the switches counted): says nothing
    assert one_state(Window("r", 5, flows=[wf(1, 500, 100), wf(2, 40, 40, run=False)]))
    assert one_state(Window("r", 5, flows=[wf(1, None, None)]))  # counters not read: kept
