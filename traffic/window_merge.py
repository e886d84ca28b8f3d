"""Longer label windows from a run's 1 s ones: k consecutive windows of one phase merged into one
window of k times the length, as if the collector had counted and D-ITG had labeled over it.

A window's labels are means over the packets it holds, and at the corpora's link rates a flow
sends 7-40 packets a second: over 1 s a flow's delay label moves around its phase's mean by about
20 % (MAPE) and its jitter label by about 110 %, which bounds any per-window score
(`vtwin.evaluate.label_floor`). Merging keeps every input the twin reads what it was and makes the
label a mean over k times the packets:

- a flow's delay is the mean of its windows' delays weighted by the packets received in each, its
  jitter (a mean of consecutive packets' delay differences) weighted by the received packets
  less one, its loss from the sums of sent and received;
- its counters: the packets and bytes of the merged window are the sums, its flow entry's
  cumulative counters those of the last window (so its age, `vtwin.dataset.flow_age`, is its age at
  the merged window's end), its measured rates the mean over the k windows (0 where it did not
  send: a flow that starts in the merged window is counted over all of it);
- a link's loads are the means, its drops the sums, and it is down if it was down in any window.

Windows are merged within a phase only (its inputs are constant), from its end: the windows left
over (a phase of n windows keeps the last n - n % k) are dropped from its start, the phase's
youngest. Windows without a phase pass through as they are.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from traffic.window import Label, Window, WindowFlow, WindowLink


def _mean(values: list[float | None], n: int) -> float | None:
    got = [v for v in values if v is not None]
    return sum(got) / n if got else None


def _sum(values: list[int | None]) -> int | None:
    got = [v for v in values if v is not None]
    return sum(got) if got else None


def merge_labels(labels: list[Label]) -> Label:
    """One label over the windows of `labels` (one flow's, in time order)."""
    got = [lab for lab in labels if lab.received and lab.delay_ms is not None]
    received = sum(lab.received for lab in got)
    delay = sum(lab.delay_ms * lab.received for lab in got) / received if received else None
    pairs = [lab for lab in got if lab.received > 1 and lab.jitter_ms is not None]
    weight = sum(lab.received - 1 for lab in pairs)
    jitter = sum(lab.jitter_ms * (lab.received - 1) for lab in pairs) / weight if weight else (
        None if delay is None else 0.0)
    sent = _sum([lab.sent for lab in labels])
    rcv = _sum([lab.received for lab in labels])
    loss = 100.0 * (sent - (rcv or 0)) / sent if sent else None
    return Label(delay, jitter, loss, sent, rcv, _mean([lab.rx_bps for lab in labels], len(labels)))


def _merge_flow(flows: list[WindowFlow], n: int) -> WindowFlow:
    last = flows[-1]
    return replace(
        last,
        offered_bps=_mean([f.offered_bps for f in flows], sum(f.offered_bps is not None for f in flows)),
        measured_bps=_mean([f.measured_bps for f in flows], n),
        ctl_rate_bps=_mean([f.ctl_rate_bps for f in flows], n),
        window_packets=_sum([f.window_packets for f in flows]),
        window_bytes=_sum([f.window_bytes for f in flows]),
    )


def _merge_link(links: list[WindowLink], n: int) -> WindowLink:
    return replace(
        links[-1],
        load_ab_bps=_mean([lk.load_ab_bps for lk in links], n),
        load_ba_bps=_mean([lk.load_ba_bps for lk in links], n),
        drops_ab=_sum([lk.drops_ab for lk in links]),
        drops_ba=_sum([lk.drops_ba for lk in links]),
        up=0 if any(lk.up == 0 for lk in links) else links[-1].up,
    )


def merge(windows: list[Window]) -> Window:
    """One window over `windows` (consecutive, one phase's, in time order): the last one's index,
    snapshot and routing, spanning the first's start to the last's end."""
    n = len(windows)
    flows: dict[str, list[WindowFlow]] = defaultdict(list)
    links: dict[str, list[WindowLink]] = defaultdict(list)
    labels: dict[str, list[Label]] = defaultdict(list)
    for w in windows:
        for f in w.flows:
            flows[f.flow_key].append(f)
        for lk in w.links:
            links[lk.link_id].append(lk)
        for key, lab in w.labels.items():
            labels[key].append(lab)
    first, last = windows[0], windows[-1]
    return replace(
        last,
        t_start=first.t_start,
        flows=[_merge_flow(fs, n) for fs in flows.values()],
        links=[_merge_link(ls, n) for ls in links.values()],
        labels={key: merge_labels(labs) for key, labs in labels.items()},
    )


def check_label_window(k: int) -> int:
    """`k` if it is a label window (a whole number of windows, at least 1); else ValueError."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"a label window is a whole number of windows, at least 1, got {k!r}")
    return k


def corpus_label_windows(given: list[int], corpora: int, unseen: int | None = None) -> tuple[list[int], int]:
    """Each of `corpora` corpora's label window and an unseen corpus': `given` (`--label-window`)
    is one K for every corpus or one per corpus (1 for an 8 s-phase corpus beside 8 for a 24 s-phase
    one); `unseen` (`--unseen-label-window`) defaults to the one K, else to 1. ValueError (naming
    the flag) otherwise."""
    if len(given) not in (1, corpora):
        raise ValueError(f"--label-window: give one K, or one for each of the {corpora} corpora (got {len(given)})")
    named = [("--label-window", k) for k in given]
    if unseen is not None:
        named.append(("--unseen-label-window", unseen))
    for flag, k in named:
        try:
            check_label_window(k)
        except ValueError as exc:
            raise ValueError(f"{flag}: {exc}") from None
    windows = given * corpora if len(given) == 1 else list(given)
    return windows, unseen if unseen is not None else (given[0] if len(given) == 1 else 1)


def coarsen(windows: list[Window], k: int) -> list[Window]:
    """The windows of one run with every k consecutive windows of a phase merged (see the module's
    docstring); `k` = 1 returns them as they are."""
    if check_label_window(k) == 1:
        return list(windows)
    phases: dict[int, list[Window]] = defaultdict(list)
    out: list[Window] = []
    for w in windows:
        if w.phase is None:
            out.append(w)
        else:
            phases[w.phase].append(w)
    for group in phases.values():
        group.sort(key=lambda w: w.window)
        group = group[len(group) % k:]
        out += [merge(group[i:i + k]) for i in range(0, len(group), k)]
    out.sort(key=lambda w: w.window)
    return out
