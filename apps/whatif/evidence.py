"""The evidence pack of a what-if answer under <data>/reports/whatif/: the answer is saved as JSON
when it is given; its page is drawn from that JSON when first asked for (drawing takes several
times longer than answering). The page holds the request, the decision and its reasons, the
intents, the blast radius, pre and post state, what the decision rests on (the intervals' upper
ends or point estimates), why: the deciding flows broken down along their paths (queueing and
propagation per link, the bottleneck and the flows weighing most on it), per-flow delay before
and after against the SLO with the post-scenario interval (table and plot) and the topology with
the affected links drawn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apps.common.pack import esc, figure, image, page, png, table
from topologies import Topology


def flow_delay_plot(res: dict[str, Any], limit: int = 30) -> bytes | None:
    """Per-flow predicted delay before and after (the most changed flows), the SLO as a line."""
    flows = sorted(res["flows"], key=lambda f: -(abs((f["post_delay_ms"] or 0) - (f["pre_delay_ms"] or 0))
                                                + (1e6 if f["lost"] else 0)))[:limit]
    if not flows:
        return None
    fig, ax = figure(9, 0.28 * len(flows) + 1.6)
    ys = range(len(flows))
    pre = [f["pre_delay_ms"] or 0 for f in flows]
    post = [f["post_delay_ms"] or 0 for f in flows]
    ax.barh([y + 0.2 for y in ys], pre, height=0.4, label="before", color="tab:blue")
    ax.barh([y - 0.2 for y in ys], post, height=0.4, label="after", color="tab:orange")
    ranged = [(y, f["post_delay_interval_ms"]) for y, f in zip(ys, flows, strict=True)
              if f.get("post_delay_interval_ms")]
    if ranged:
        ax.errorbar([(lo + hi) / 2 for _, (lo, hi) in ranged], [y - 0.2 for y, _ in ranged],
                    xerr=[(hi - lo) / 2 for _, (lo, hi) in ranged], fmt="none", ecolor="black", elinewidth=1,
                    capsize=2, label=f"interval ({100 * res['interval_level']:g} %)" if res.get("interval_level")
                    else "interval")
    for y, f in zip(ys, flows, strict=True):
        if f["lost"]:
            ax.text(0, y - 0.2, " lost (no path)", va="center", fontsize=7, color="tab:red")
    budget = (res.get("slo") or {}).get("latency_ms")
    if budget:
        ax.axvline(float(budget), color="tab:red", ls="--", label=f"SLO {budget} ms")
    ax.set_yticks(list(ys), [f["flow"][-34:] for f in flows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("predicted delay (ms)")
    ax.legend(fontsize=8, loc="lower right")
    fig.subplots_adjust(left=0.32, right=0.97, top=0.97, bottom=0.6 / (0.28 * len(flows) + 1.6) + 0.06)
    return png(fig)


def topology_plot(topo: Topology, failed_links: set[str], changed_links: set[str], failed_nodes: set[int],
                  utilization: dict[str, float]) -> bytes:
    """The topology, failed links dashed red, links whose load changed orange, width by utilization."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(n.id for n in topo.nodes)
    g.add_edges_from((lk.a, lk.b, {"id": lk.id}) for lk in topo.links)
    have_xy = all(n.lon is not None and n.lat is not None for n in topo.nodes)
    pos = ({n.id: (n.lon, n.lat) for n in topo.nodes} if have_xy else nx.spring_layout(g, seed=1))
    fig, ax = figure(8, 5.5)
    for lk in topo.links:
        color, style = ("tab:red", "--") if lk.id in failed_links else (
            ("tab:orange", "-") if lk.id in changed_links else ("#888", "-"))
        width = 1 + 4 * min(utilization.get(lk.id, 0.0), 1.5)
        (xa, ya), (xb, yb) = pos[lk.a], pos[lk.b]
        ax.plot([xa, xb], [ya, yb], style, color=color, lw=width, zorder=1)
        if lk.id in failed_links or lk.id in changed_links:
            ax.text((xa + xb) / 2, (ya + yb) / 2, lk.id, fontsize=7, color=color)
    xs = [pos[n.id][0] for n in topo.nodes]
    ys = [pos[n.id][1] for n in topo.nodes]
    ax.scatter(xs, ys, s=60, zorder=2, c=["tab:red" if n.id in failed_nodes else "tab:blue" for n in topo.nodes])
    if len(topo.nodes) <= 40:
        for n in topo.nodes:
            ax.annotate(n.name, pos[n.id], fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_axis_off()
    ax.set_title("red dashed: failed; orange: load changed; width: utilization after", fontsize=9)
    fig.tight_layout()
    return png(fig)


def _explanations(explanations: list[dict[str, Any]]) -> str:
    """The deciding flows' breakdowns: one line each, and its hops as a table."""
    if not explanations:
        return ""
    out = "<h2>Why: the flows that decide it, along their paths</h2>"
    for e in explanations:
        b = e["bottleneck"]
        weighing = ", ".join(f"{w['flow']} ({w['attention']:.2f})" for w in b["weighing_most"])
        out += (f"<p><b>{esc(e['summary'])}</b><br>flows weighing most on {esc(b['link'])} (attention): "
                f"{esc(weighing)}</p>"
                + table(e["hops"], ["link", "from", "propagation_ms", "queueing_ms", "jitter_ms", "utilization",
                                    "flows", "attention"]))
    return out


def save_whatif(root: Path, res: dict[str, Any], context: dict[str, Any]) -> Path:
    """The what-if answer and its drawing context as <data>/reports/whatif/<id>.json."""
    directory = root / "reports" / "whatif"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{res['id']}.json"
    path.write_text(json.dumps({**res, "context": context}, indent=1, default=str))
    return path


def render_whatif(root: Path, ident: str) -> dict[str, str]:
    """The HTML page of a saved what-if answer (made once, then reused)."""
    directory = root / "reports" / "whatif"
    page_path = directory / f"{ident}.html"
    files = {"html": str(page_path), "json": str(directory / f"{ident}.json")}
    if page_path.exists():
        return files
    res = json.loads((directory / f"{ident}.json").read_text())
    ctx = res.pop("context")
    topo = Topology.from_dict(ctx["topology"])
    intents = [{**i, "pass": "pass" if i["pass"] else "FAIL"} for i in res["intent_results"]]
    flows = sorted(res["flows"], key=lambda f: (not f["affected"], not f["post_violation"], f["flow"]))
    body = (
        f"<h2>Decision: <span class='{res['decision']}'>{res['decision']}</span> (risk {res['risk_score']})</h2>"
        + "<ul>" + "".join(f"<li>{esc(r)}</li>" for r in res["reasons"]) + "</ul>"
        + f"<p>Snapshot {res['snapshot_id']} (run {esc(res['run'])}, window {res['window']}), "
        f"model {esc(res['model_version'])}, answered in {1000 * res['seconds']:.1f} ms.</p>"
        + "<h2>Request</h2><pre>" + esc(json.dumps({k: res[k] for k in ("scenario", "slo", "policies")}, indent=1))
        + "</pre><h2>Intents</h2>" + table(intents, ["policy", "pass", "detail"])
        + "<h2>Blast radius</h2>" + table([res["blast_radius"]], ["devices", "links", "flows", "harmed_flows"])
        + "<h2>State before and after</h2>"
        + table([{"": "before", **res["pre_state"]}, {"": "after", **res["post_state"]}],
                ["", "flows", "lost", "violations", "max_utilization", "mean_delay_ms"])
        + f"<p>Decided on {esc(res.get('decided_on', 'point estimates'))}.</p>"
        + _explanations(res.get("explanations") or [])
        + "<h2>Per-flow delay against the SLO</h2>" + image(flow_delay_plot(res), "per-flow delay")
        + "<h2>Affected links</h2>"
        + image(topology_plot(topo, set(ctx["failed_links"]), set(ctx["changed_links"]), set(ctx["failed_nodes"]),
                              ctx["utilization"]), "topology")
        + "<h2>Flows (affected first)</h2>"
        + table([{**f, "post_interval_ms": "" if not f.get("post_delay_interval_ms") else
                  "{:.2f}-{:.2f}".format(*f["post_delay_interval_ms"])} for f in flows],
                ["flow", "pre_delay_ms", "post_delay_ms", "post_interval_ms", "pre_jitter_ms", "post_jitter_ms",
                 "post_loss_pct", "pre_violation", "post_violation", "affected", "lost"]))
    tmp = page_path.with_suffix(".html.tmp")
    tmp.write_text(page(f"What-if {ident}: {res['scenario'].get('type')}", body))
    tmp.replace(page_path)  # a concurrent reader sees the whole page or none
    return files
