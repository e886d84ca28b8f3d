"""The evidence pack of a model deployment under <data>/reports/deployments/: the deployment,
every decision taken on it with its evidence, and the monitored accuracy of candidate and serving
model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apps.common.pack import esc, figure, image, png, table, write_pack


def monitor_plot(decisions: list[dict[str, Any]]) -> bytes | None:
    rows = [d["evidence"] for d in decisions if d["kind"] == "monitor" and d["evidence"].get("candidate")]
    if not rows:
        return None
    fig, ax = figure(8, 3.5)
    xs = list(range(1, len(rows) + 1))
    for key, label in (("candidate", "candidate"), ("serving", "serving model")):
        ax.plot(xs, [(r.get(key) or {}).get("delay_mape") for r in rows], "o-", label=label)
    ax.set_xlabel("monitor check")
    ax.set_ylabel("delay MAPE (%) on recent windows")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return png(fig)


def deployment_pack(root: Path, deployment: dict[str, Any], decisions: list[dict[str, Any]]) -> dict[str, str]:
    body = ("<h2>Deployment</h2>" + table([deployment], ["id", "uri", "baseline", "strategy", "weight", "status"])
            + "<h3>Rollback thresholds</h3><pre>" + esc(json.dumps(deployment["thresholds"], indent=1)) + "</pre>"
            + "<h2>Decisions</h2>" + table(decisions, ["at_iso", "kind", "decision"])
            + "<h2>Monitored accuracy</h2>" + (image(monitor_plot(decisions), "monitored MAPE") or "<p>(no checks)</p>")
            + "".join(f"<h3>{esc(d['kind'])} at {esc(d['at_iso'])}: {esc(d['decision'])}</h3><pre>"
                      + esc(json.dumps(d["evidence"], indent=1)) + "</pre>" for d in decisions))
    return write_pack(root / "reports" / "deployments", deployment["id"],
                      f"Deployment {deployment['id']}: {deployment['uri']}", body,
                      {"deployment": deployment, "decisions": decisions})
