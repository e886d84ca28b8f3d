"""`ndt whatif REQUEST.json`: one what-if question to the virtual twin from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from apps.common.table import emit, print_table
from ptwin.errors import LabError
from traffic.store import Stores

from .model import add_base_model_arg, serve_base_model_first


def cmd_whatif(args: argparse.Namespace) -> None:
    from pathlib import Path

    from apps.whatif import WhatIfError, answer, parse_request, question, write_evidence

    path = Path(args.request)
    try:
        data = json.loads(sys.stdin.read() if args.request == "-" else path.read_text())
    except FileNotFoundError:
        raise LabError(f"no request file {args.request}") from None
    except ValueError as exc:
        raise LabError(f"{args.request}: not valid JSON: {exc}") from None
    stores = Stores(args.data)
    try:
        request = parse_request(data)
        asked = question(stores, request)  # a bad request is refused before the model (and TensorFlow) loads
        from vtwin.predictor import Predictor
        from vtwin.registry import Registry

        serve_base_model_first(stores, args)

        predictor = Predictor(Registry(stores), xla=False)
        ans = answer(predictor.predict, stores, request, asked, explain=predictor.explain)
    except (WhatIfError, ValueError) as exc:
        raise LabError(f"what-if: {exc}") from None
    res = ans.result
    res["evidence_pack"] = write_evidence(stores.root, ans)["html"]

    def render(r: dict[str, Any]) -> None:
        print(f"{r['decision']} (risk {r['risk_score']}) for {r['scenario'].get('type')} on snapshot "
              f"{r['snapshot_id']} with {r['model_version']}, answered in {1000 * r['seconds']:.0f} ms")
        for reason in r["reasons"]:
            print(f"  - {reason}")
        print(f"blast radius: {r['blast_radius']}")
        rows = [{**f, "post_interval_ms": "-" if f["post_delay_interval_ms"] is None else
                 "{:.1f}-{:.1f}".format(*f["post_delay_interval_ms"])} for f in r["flows"] if f["affected"]]
        print_table(rows[:20], ["flow", "pre_delay_ms", "post_delay_ms", "post_interval_ms", "pre_violation",
                                "post_violation", "lost"])
        for e in r["explanations"]:
            print(f"  {e['summary']}")
            print("    " + ", ".join(f"{h['link']} {h['queueing_ms']:.1f}+{h['propagation_ms']:.1f} ms"
                                    for h in e["hops"]) + " (queueing + propagation per hop)")
        print(f"evidence: {r['evidence_pack']}")

    emit(res, args.json, render)


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("whatif", help="ask the virtual twin a what-if question (a JSON request file, or - )")
    t.add_argument("request", metavar="REQUEST.json")
    t.add_argument("--data", default=None)
    add_base_model_arg(t)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_whatif)
