"""`ndt serve`: starts the twin service (`apps.service`) with uvicorn, after checking that its
address is free and that a bearer token exists for the mutating endpoints."""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
from pathlib import Path

from apps.common.config import Config, load_config
from ptwin.errors import LabError
from traffic.store import Stores

from .model import add_base_model_arg, serve_base_model_first


def ensure_token(config: Config, root: Path) -> str:
    """The configured token, else the one in <data>/service.token, else a new one written there (0600)."""
    if config.token:
        return "the config file" if not os.environ.get("NDT_TOKEN") else "$NDT_TOKEN"
    path = root / "service.token"
    if path.exists():
        config.token = path.read_text().strip()
    else:
        root.mkdir(parents=True, exist_ok=True)
        config.token = secrets.token_urlsafe(24)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(config.token + "\n")
    return str(path)


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from apps.service import create_app

    stores = Stores(args.data)
    config = load_config(args.config, stores.root)
    host = args.host or config.host
    port = args.port if args.port is not None else config.port
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
        except OSError as exc:
            raise LabError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    source = ensure_token(config, stores.root)
    serve_base_model_first(stores, args)
    stores.close()
    print(f"ndt twin service on http://{host}:{port} (data {stores.root}; token from {source}; "
          f"OpenAPI at /docs)", file=sys.stderr, flush=True)
    uvicorn.run(create_app(stores.root, config), host=host, port=port, log_level=args.log_level)


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("serve", help="the twin's HTTP API: status, snapshots, what-if, model operations, metrics")
    d = Config()
    t.add_argument("--host", default=None, help=f"address to bind (default: the config file's, else {d.host})")
    t.add_argument("--port", type=int, default=None, help=f"port (default: the config file's, else {d.port})")
    t.add_argument("--config", default=None, help="configuration file (token, SLA policy)")
    t.add_argument("--data", default=None)
    t.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    add_base_model_arg(t)
    t.set_defaults(func=cmd_serve)
