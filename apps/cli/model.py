"""`ndt train` (train, score and register a model: `vtwin.lifecycle`) and `ndt model
list|show|promote|rollback` (the registry)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from apps.common.table import emit, print_table

from .base import CliError

#: `ndt train` runs eagerly up to this many window-epochs (epochs times training windows): tracing
#: the training step costs about 10 s, an eager window-epoch about 0.05 s, a traced one 0.003 s.
EAGER_WINDOW_EPOCHS = 200

def cmd_train(args: argparse.Namespace) -> None:
    from pathlib import Path

    from traffic.store import Stores
    from vtwin.dataset import from_jsonl, from_stores, split
    from vtwin.lifecycle import TrainSpec, train_and_register
    from vtwin.registry import Registry

    stores = Stores(args.data)
    samples = from_jsonl(Path(args.dataset)) if args.dataset else from_stores(stores, args.run or None)
    if len(samples) < 4:
        raise CliError(f"only {len(samples)} labeled window(s) to train on; run traffic first ('ndt traffic run')")
    fit, test = split(samples, held_out=args.held_out)
    if not args.json:
        print(f"training on {len(fit)} windows ({sum(s.labeled for s in fit)} labeled flows), "
              f"holding out {len(test)}", file=sys.stderr)
    spec = TrainSpec(source="cli", state=args.state, iterations=args.iterations, epochs=args.epochs,
                     budget_s=args.budget, patience=args.patience, warm_start=args.warm_start, promote=args.promote,
                     mm1=True, progress=not args.json,
                     eager=args.epochs * len(fit) <= EAGER_WINDOW_EPOCHS)
    out = train_and_register(Registry(stores), fit, test, spec)

    def render(r: dict[str, Any]) -> None:
        g, m, t = r["metrics"]["held_out"]["overall"], r["metrics"]["mm1"], r["metrics"]["training"]
        print(f"{r['uri']} ({r['status']}): {t['epochs']} epochs in {t['seconds']:g} s ({t['stopped']})")
        print(f"held-out delay MAPE {g['delay_mape']}% (M/M/1 {m['delay_mape']}%), NMSE {g['delay_nmse_db']} dB "
              f"(ours, / variance), {g['delay_nmse_power_db']} dB (paper's, / mean y^2); "
              f"jitter MAPE {g['jitter_mape']}%")
        print_table(r["metrics"]["held_out"]["groups"], ["topology", "phase", "flows", "delay_mape", "delay_nmse_db",
                                                         "delay_nmse_power_db", "jitter_mape"])

    emit(out, args.json, render)

def cmd_model(args: argparse.Namespace) -> None:
    from traffic.store import Stores
    from vtwin.registry import Registry, held_out_mape, parse_uri

    reg = Registry(Stores(args.data))
    if args.action == "list":
        rows = reg.list()
        emit(rows, args.json, lambda r: print_table(
            [{**x, "delay_mape": held_out_mape(x["metrics"]), "jitter_mape": held_out_mape(x["metrics"], "jitter"),
              "source": ((x["metrics"] or {}).get("training") or {}).get("source")} for x in r],
            ["uri", "status", "parent", "source", "delay_mape", "jitter_mape", "weights_bytes"]))
        return
    if args.action == "rollback":
        res = reg.rollback("delay")
        emit(res, args.json, lambda r: print(f"rolled back {r['rolled_back']}; {r['active']} is active"))
        return
    if not args.ref:
        raise CliError(f"ndt model {args.action} needs a model, e.g. registry://delay:v2")
    objective, version = parse_uri(args.ref)
    if args.action == "show":
        emit(reg.show(objective, version), args.json, lambda r: print(json.dumps(r, indent=1)))
    else:
        res = reg.promote(objective, version)
        emit(res, args.json, lambda r: print(f"{r['active']} is active" +
                                             (f"; {r['archived']} archived" if r["archived"] else "")))


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train the virtual twin on the labeled store (or an exported file)")
    t.add_argument("--data", default=None)
    t.add_argument("--dataset", default=None, help="an exported JSON Lines file instead of the stores")
    t.add_argument("--run", action="append", help="train on this run only (repeatable)")
    t.add_argument("--warm-start", default=None, metavar="URI", help="start from registry://delay:vN")
    t.add_argument("--epochs", type=int, default=300)
    t.add_argument("--budget", type=float, default=300.0, help="time budget, seconds")
    t.add_argument("--patience", type=int, default=20)
    t.add_argument("--state", type=int, default=32)
    t.add_argument("--iterations", type=int, default=6)
    t.add_argument("--held-out", type=float, default=0.2, help="share of each phase held out for evaluation")
    t.add_argument("--promote", action="store_true", help="make the new version active")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_train)

    t = sub.add_parser("model", help="the model registry: list, show, promote, rollback")
    t.add_argument("action", choices=["list", "show", "promote", "rollback"])
    t.add_argument("ref", nargs="?", metavar="URI", help="registry://delay:vN or vN")
    t.add_argument("--data", default=None)
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_model)
