"""`ndt ctl routing show|set|pin|unpin|revert`: the controller's routing policy over its northbound
REST API (`controller_app.routing`): link weights, pinned paths, versions."""

from __future__ import annotations

import argparse
from typing import Any

from apps.common.table import emit, print_table
from controller_app.client import ControllerClient

from .base import CliError

USAGE = ("usage: ndt ctl routing show [VERSION] | set LINK=WEIGHT... [--replace] | "
         "pin SRC DST LINK,LINK... | pin --flow ID LINK,LINK... | unpin SRC DST | unpin --flow ID | revert VERSION")


def _weights(items: list[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for item in items:
        link, sep, value = item.partition("=")
        if not sep or not link:
            raise CliError(f"weights are LINK=WEIGHT (LINK= drops the weight), not {item!r}")
        try:
            out[link] = float(value) if value else None
        except ValueError:
            raise CliError(f"the weight of {link} is not a number: {value!r}") from None
    return out


def _version(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CliError(f"a routing version is a whole number, not {text!r}") from None


def _print_policy(p: dict[str, Any]) -> None:
    head = f"routing version {p['version']}"
    if "reason" in p:
        head += f" ({p['by']}: {p['reason']})"
    print(head)
    weights = p.get("weights") or {}
    print("weights: " + (", ".join(f"{k}={v:g}" for k, v in weights.items()) or "none (propagation delay)"))
    pins = p.get("pins") or []
    if not pins:
        print("pins: none")
    for pin in pins:
        who = f"flow {pin['flow']} ({pin['src']}->{pin['dst']})" if pin.get("flow") is not None else \
            f"{pin['src']}->{pin['dst']}"
        state = "" if pin.get("active", True) else "  (set aside: a link of it is down)"
        print(f"pin {who}: {','.join(pin['links'])}{state}")
    if p.get("history"):
        print()
        print_table(p["history"], ["version", "by", "reason", "weights", "pins"])


def _print_change(r: dict[str, Any]) -> None:
    print(f"routing version {r['version']}: {len(r['moved'])} flow(s) moved")
    for m in r["moved"]:
        print(f"  flow {m['flow']} {m['src']}->{m['dst']}: {','.join(m['from'])} -> {','.join(m['to'])}")


def cmd_routing(client: ControllerClient, args: argparse.Namespace) -> None:
    if not args.args:
        raise CliError(USAGE)
    op, rest = args.args[0], args.args[1:]
    if op == "show":
        if len(rest) > 1:
            raise CliError(USAGE)
        data = client.routing_at(_version(rest[0])) if rest else client.routing()
        emit(data, args.json, _print_policy)
        return
    if op == "set":
        if not rest:
            raise CliError("usage: ndt ctl routing set LINK=WEIGHT... [--replace]")
        result = client.set_weights(_weights(rest), replace=args.replace, reason=args.reason)
    elif op == "pin":
        if args.flow is not None and len(rest) == 1:
            result = client.pin(rest[0].split(","), flow=args.flow, reason=args.reason)
        elif args.flow is None and len(rest) == 3:
            result = client.pin(rest[2].split(","), src=rest[0], dst=rest[1], reason=args.reason)
        else:
            raise CliError("usage: ndt ctl routing pin SRC DST LINK,LINK... | pin --flow ID LINK,LINK...")
    elif op == "unpin":
        if args.flow is not None and not rest:
            result = client.unpin(flow=args.flow)
        elif args.flow is None and len(rest) == 2:
            result = client.unpin(src=rest[0], dst=rest[1])
        else:
            raise CliError("usage: ndt ctl routing unpin SRC DST | unpin --flow ID")
    elif op == "revert":
        if len(rest) != 1:
            raise CliError("usage: ndt ctl routing revert VERSION")
        result = client.revert(_version(rest[0]), reason=args.reason)
    else:
        raise CliError(USAGE)
    emit(result, args.json, _print_change)


def add_args(ctl: argparse.ArgumentParser) -> None:
    ctl.add_argument("--replace", action="store_true", help="routing set: drop every weight not given")
    ctl.add_argument("--flow", type=int, default=None, help="routing pin/unpin: one flow (its id)")
    ctl.add_argument("--reason", default="", help="routing changes: why (kept with the version)")
