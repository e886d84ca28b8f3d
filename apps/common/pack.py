"""Evidence packs as files: one self-contained HTML page (plots embedded as PNG) plus the JSON it
was made from, under <data>/reports/<kind>/. The what-if page is drawn by `apps.whatif.evidence`,
the deployment page by `apps.service.deployment_pack`."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

STYLE = """body{font-family:sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #bbb;padding:.2em .6em;text-align:left}
th{background:#eee}.APPROVE{color:#170}.REVIEW{color:#b60}.REJECT{color:#b00}pre{background:#f6f6f6;padding:1em}
.pass{color:#170}.fail{color:#b00}"""


def esc(x: Any) -> str:
    if isinstance(x, float):
        x = f"{x:.4g}"
    elif isinstance(x, (dict, list)):
        x = json.dumps(x)
    return html.escape("-" if x is None else str(x))


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def image(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    return f'<p><img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></p>'


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{body}</body></html>")


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def figure(width: float, height: float):
    """A figure and its axes without pyplot's global state (packs are drawn in service threads)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def write_pack(directory: Path, ident: str, title: str, body: str, data: dict[str, Any]) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{ident}.json").write_text(json.dumps(data, indent=1, default=str))
    (directory / f"{ident}.html").write_text(page(title, body))
    return {"html": str(directory / f"{ident}.html"), "json": str(directory / f"{ident}.json")}
