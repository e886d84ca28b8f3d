"""`ndt train` (train, score and register a model: `vtwin.lifecycle`) and `ndt model
list|show|promote|rollback` (the registry)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from apps.common.table import emit, print_table

from .base import CliError, Parser

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


def _corpus_samples(data: str, label_window: int = 1) -> tuple[list, dict[str, Any]]:
    from traffic.campaign import STATE_FILE
    from traffic.store import Stores
    from vtwin.dataset import from_corpus

    stores = Stores(data)
    samples = from_corpus(stores, label_window)
    if not samples:
        raise CliError(f"{stores.root}: no labeled window of a done run ('ndt dataset build')")
    info: dict[str, Any] = {"data": str(stores.root), "runs": len({s.run for s in samples}),
                            "label_window": label_window}
    record = stores.root / STATE_FILE
    if record.exists():
        info["spec"] = json.loads(record.read_text()).get("spec")
    return samples, info


def _corpora_samples(dirs: list[str], windows: list[int]) -> tuple[list, dict[str, Any]]:
    """One or more corpora's samples as one training set and the card's record of them: one
    corpus' record as `_corpus_samples` gives it, several summed, each kept under 'parts'.
    `windows` holds each corpus' label window (`--label-window`, one value for all or one each)."""
    from vtwin.dataset import joined

    if len(dirs) == 1:
        return _corpus_samples(dirs[0], windows[0])
    parts = [_corpus_samples(d, k) for d, k in zip(dirs, windows, strict=True)]
    try:
        samples = joined([p[0] for p in parts])
    except ValueError as exc:
        raise CliError(f"--data: {exc}") from None
    infos = [p[1] for p in parts]
    return samples, {"data": " + ".join(i["data"] for i in infos), "runs": sum(i["runs"] for i in infos),
                     "label_window": windows[0] if len(set(windows)) == 1 else windows,
                     "spec": " + ".join(str(i.get("spec") or "?") for i in infos), "parts": infos}


def cmd_base_build(args: argparse.Namespace) -> None:
    from pathlib import Path

    from traffic.window_merge import corpus_label_windows
    from vtwin.base_model import build
    from vtwin.dataset import split

    try:
        windows, unseen_window = corpus_label_windows(args.label_window, len(args.data), args.unseen_label_window)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    samples, corpus = _corpora_samples(args.data, windows)
    fit, held = split(samples)
    unseen = _corpus_samples(args.unseen, unseen_window)[0] if args.unseen else None
    if unseen:
        overlap = {s.topology for s in unseen} & {s.topology for s in samples}
        if overlap:
            raise CliError(f"--unseen has topologies that are in the corpus: {', '.join(sorted(overlap))}")
    if not args.json:
        print(f"training the base model on {len(fit)} windows ({sum(s.labeled for s in fit)} labeled flows) of "
              f"{len({s.topology for s in samples})} topologies, holding out {len(held)}; budget {args.budget:g} s",
              file=sys.stderr)
    corpora = "CORPUS" if len(args.data) == 1 else " ".join(f"CORPUS{i + 1}" for i in range(len(args.data)))
    command = f"ndt model base build --data {corpora}" + (" --unseen DATA" if args.unseen else "") + \
        f" --budget {args.budget:g} --epochs {args.epochs} --patience {args.patience} --seed {args.seed}" \
        f" --halve-after {args.halve_after} --state {args.state} --iterations {args.iterations} --loss {args.loss}" \
        + (f" --label-window {' '.join(map(str, args.label_window))}" if set(windows) != {1} else "") \
        + (f" --unseen-label-window {unseen_window}" if args.unseen and unseen_window != windows[0] else "")
    card = build(fit, held, corpus=corpus, unseen=unseen, state=args.state, iterations=args.iterations,
                 epochs=args.epochs, budget_s=args.budget, patience=args.patience, seed=args.seed,
                 halve_after=args.halve_after, loss=args.loss,
                 progress=not args.json, folder=Path(args.out) if args.out else None, command=command)
    emit(card, args.json, render_card)


def render_card(c: dict[str, Any]) -> None:
    corpus, t, h = c.get("corpus") or {}, c.get("training") or {}, (c.get("held_out") or {}).get("overall") or {}
    print(f"base model {c.get('name')} ({c['weights']['sha256'][:12]}): state {c['architecture']['state']}, "
          f"{c['architecture']['iterations']} iterations")
    print(f"corpus {corpus.get('spec')}: {len(corpus.get('topologies', []))} topologies, "
          f"{corpus.get('train_windows')} training windows ({corpus.get('train_labeled_flows')} labeled flows)")
    print(f"trained {t.get('epochs')} epochs in {t.get('seconds')} s ({t.get('stopped')})")
    held = c.get("held_out") or {}
    print(f"held out: delay MAPE {h.get('delay_mape')}%, NMSE {h.get('delay_nmse_db')} dB (ours, / variance), "
          f"{h.get('delay_nmse_power_db')} dB (paper's, / mean y^2); jitter MAPE {h.get('jitter_mape')}%"
          + _floor_and_means(held.get("label_floor"), held.get("phase_means")))
    for topo, u in (c.get("unseen") or {}).items():
        print(f"unseen {topo}: delay MAPE {u.get('delay_mape')}%, NMSE {u.get('delay_nmse_db')} / "
              f"{u.get('delay_nmse_power_db')} dB; jitter MAPE {u.get('jitter_mape')}%"
              + _floor_and_means(u.get("label_floor"), u.get("phase_means")))


def _floor_and_means(floor: dict[str, Any] | None, means: dict[str, Any] | None) -> str:
    """The labels' floor and the phase-mean scores beside a window score (cards from before they
    were recorded have neither)."""
    out = ""
    if floor:
        out += f" (labels' floor: delay {floor.get('delay_mape')}%, jitter {floor.get('jitter_mape')}%)"
    if means:
        out += f"; phase means: delay {means.get('delay_mape')}%, jitter {means.get('jitter_mape')}%"
    return out


def cmd_base_show(args: argparse.Namespace) -> None:
    from pathlib import Path

    from vtwin.base_model import load

    base = load(Path(args.dir) if args.dir else None)
    emit({k: v for k, v in base.card.items() if k != "normalization"}, args.json, render_card)


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

    m = sub.add_parser("model", help="the model registry (list, show, promote, rollback) and the base model")
    msub = m.add_subparsers(dest="action", required=True, parser_class=Parser)
    for action, text in (("list", "every model version, where it came from and its held-out MAPE"),
                         ("show", "one version's record"), ("promote", "make a version the active one"),
                         ("rollback", "reactivate the version before the active one")):
        t = msub.add_parser(action, help=text)
        if action in ("show", "promote"):
            t.add_argument("ref", metavar="URI", help="registry://delay:vN or vN")
        else:
            t.set_defaults(ref=None)
        t.add_argument("--data", default=None)
        t.add_argument("--json", action="store_true")
        t.set_defaults(func=cmd_model)
    b = msub.add_parser("base", help="the base model shipped in vtwin/base: build it from a corpus, show its card")
    bsub = b.add_subparsers(dest="base_action", required=True, parser_class=Parser)
    t = bsub.add_parser("build", help="train the base model on a corpus ('ndt dataset build'), write it and its card")
    t.add_argument("--data", required=True, nargs="+", metavar="CORPUS",
                   help="the corpus' data directory; several train on them together (e.g. base and base-pairs)")
    t.add_argument("--unseen", default=None, help="a data directory of networks not in the corpus, to score on")
    t.add_argument("--out", default=None, help="folder to write model.npz and card.json to "
                                                  "(default $NDT_BASE_MODEL, else vtwin/base)")
    t.add_argument("--budget", type=float, default=1800.0, help="training time budget, seconds (default 1800)")
    t.add_argument("--epochs", type=int, default=1000)
    t.add_argument("--patience", type=int, default=40)
    t.add_argument("--loss", choices=("mape", "log"), default="mape",  # vtwin.train.LOSSES (no TF import here)
                   help="the training loss: relative error (mape) or |log(predicted / measured)| (log)")
    t.add_argument("--halve-after", type=int, default=10, metavar="EPOCHS",
                   help="halve the learning rate after this many epochs without a better validation MAPE")
    # the shipped model's architecture: 3 iterations of state 24 answer 50 nodes / 2000 flows in
    # about 16 ms with XLA here (state 32 and 6 iterations, ndt train's default: 40 ms)
    t.add_argument("--state", type=int, default=24)
    t.add_argument("--iterations", type=int, default=3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--label-window", type=int, nargs="+", default=[1], metavar="K",
                   help="label over K consecutive windows of a phase merged into one (default 1: the runs' own); "
                        "one K for every corpus or one per --data corpus")
    t.add_argument("--unseen-label-window", type=int, default=None, metavar="K",
                   help="the same for --unseen (default: the one --label-window, else 1)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_base_build)
    t = bsub.add_parser("show", help="the base model's card")
    t.add_argument("--dir", default=None, help="folder of the base model (default $NDT_BASE_MODEL, else vtwin/base)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_base_show)


def add_base_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-base-model", action="store_true",
                   help="do not start from the shipped base model when the registry has no active model "
                        "(a loop then bootstraps from its first labels)")


def serve_base_model_first(stores, args: argparse.Namespace) -> str | None:
    """With no active model in the data directory's registry, make the shipped base model the
    active one (unless --no-base-model); returns the version it became, else None."""
    if getattr(args, "no_base_model", False):
        return None
    from vtwin.base_model import BaseModelError, ensure_active
    from vtwin.registry import Registry

    try:
        version = ensure_active(Registry(stores))
    except BaseModelError as exc:
        raise CliError(f"{exc} (or pass --no-base-model)") from None
    if version and not getattr(args, "json", False):
        print(f"no active model in {stores.root}: serving the base model as registry://delay:{version}",
              file=sys.stderr)
    return version
