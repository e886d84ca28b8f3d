"""Longer label windows merged from a run's windows (traffic.window_merge): labels weighted by the
packets they hold, counters summed, a flow's age kept, phases never mixed."""

from __future__ import annotations

import pytest

from traffic.window import Label, Window, WindowFlow, WindowLink
from traffic.window_merge import coarsen, corpus_label_windows, merge, merge_labels
from vtwin.dataset import flow_age, window_seconds


def _window(i: int, phase: int | None, delay: float, received: int, jitter: float = 1.0, sent: int | None = None,
            packets_per_s: int = 20) -> Window:
    flow = WindowFlow("udp:a>b", "h1", "h2", "udp", ("0-1",), offered_bps=1e5, measured_bps=1e5 * (i + 1),
                      window_packets=packets_per_s, window_bytes=packets_per_s * 512,
                      packets=packets_per_s * (i + 1), flow_no=0)
    link = WindowLink("0-1", 1.0, 2.0, load_ab_bps=1e5 * (i + 1), drops_ab=i, queue_pkts=16, up=0 if i == 2 else 1)
    return Window("run", i, t_start=float(i), t_end=float(i + 1), phase=phase, flows=[flow], links=[link],
                  labels={"udp:a>b": Label(delay, jitter, None, sent if sent is not None else received, received)})


def test_labels_are_weighted_by_the_packets_each_window_received():
    lab = merge_labels([Label(10.0, 2.0, 0.0, 10, 10), Label(40.0, 5.0, 50.0, 20, 10),
                        Label(None, None, 100.0, 5, 0)])
    assert lab.delay_ms == pytest.approx((10 * 10 + 40 * 10) / 20)
    assert lab.jitter_ms == pytest.approx((2 * 9 + 5 * 9) / 18)
    assert (lab.sent, lab.received) == (35, 20)
    assert lab.loss_pct == pytest.approx(100 * 15 / 35)
    assert merge_labels([Label(None, None, 100.0, 5, 0)]).delay_ms is None  # nothing arrived: no delay


def test_a_merged_window_spans_its_windows_and_keeps_the_flows_age():
    ws = [_window(i, 0, delay=10.0 * (i + 1), received=10 * (i + 1)) for i in range(3)]
    m = merge(ws)
    assert (m.window, m.t_start, m.t_end, window_seconds(m)) == (2, 0.0, 3.0, 3.0)
    f = m.flows[0]
    assert (f.window_packets, f.window_bytes, f.packets) == (60, 60 * 512, 60)
    assert f.measured_bps == pytest.approx(2e5)
    assert flow_age(f, window_seconds(m)) == pytest.approx(flow_age(ws[-1].flows[0], 1.0))  # 3 s at the end
    lk = m.links[0]
    assert (lk.load_ab_bps, lk.drops_ab, lk.up) == (pytest.approx(2e5), 3, 0)  # down in one: down
    assert m.labels["udp:a>b"].delay_ms == pytest.approx((10 * 10 + 20 * 20 + 30 * 30) / 60)


def test_coarsening_keeps_phases_apart_and_drops_the_leftovers_from_a_phase_start():
    ws = [_window(i, 0 if i < 5 else 1, delay=1.0 + i, received=10) for i in range(9)] + [_window(9, None, 5.0, 10)]
    out = coarsen(ws, 2)
    # phase 0 (windows 0-4) keeps 1-2 and 3-4; phase 1 (5-8) keeps 5-6 and 7-8; the unphased one passes
    assert [(w.phase, w.t_start, w.t_end) for w in out] == [
        (0, 1.0, 3.0), (0, 3.0, 5.0), (1, 5.0, 7.0), (1, 7.0, 9.0), (None, 9.0, 10.0)]
    assert out[0].labels["udp:a>b"].delay_ms == pytest.approx(2.5)
    assert coarsen(ws, 1) == ws


def test_a_label_window_under_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        coarsen([], 0)


def test_label_windows_are_one_for_every_corpus_or_one_each_and_the_unseen_one_follows_a_single_k():
    assert corpus_label_windows([8], 3) == ([8, 8, 8], 8)
    assert corpus_label_windows([1, 8], 2) == ([1, 8], 1)
    assert corpus_label_windows([1, 8], 2, unseen=8) == ([1, 8], 8)
    with pytest.raises(ValueError, match="one for each of the 2 corpora"):
        corpus_label_windows([1, 2, 4], 2)
    with pytest.raises(ValueError, match="--unseen-label-window: a label window"):
        corpus_label_windows([1], 1, unseen=0)
