"""The applications' configuration file (YAML or JSON): the service's bearer token and address,
and the SLA policy. Found at --config, else $NDT_CONFIG, else `ndt.yaml` in the data directory;
every key is optional.

    service:
      token: s3cret          # or $NDT_TOKEN; mutating endpoints need it
      host: 127.0.0.1
      port: 8000
    sla:
      margin_ms: 5           # default budget: the path's propagation delay + this margin
      classes: {udp: 20}     # budget (ms) per protocol class
      flows:                 # first match wins: a host pair "h1>h4" or a glob on the flow key
        - {match: "h1>h4", latency_ms: 15}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sync.sla import SlaPolicy, SlaPolicyError


class ConfigError(ValueError):
    pass


@dataclass
class Config:
    token: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    sla: SlaPolicy = field(default_factory=SlaPolicy)
    path: Path | None = None


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"config {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                          f"{str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping with 'service' and/or 'sla'")
    unknown = set(data) - {"service", "sla"}
    if unknown:
        raise ConfigError(f"config {path}: unknown section(s) {', '.join(sorted(unknown))}")
    return data


def load_config(explicit: str | None, data_root: Path) -> Config:
    """The configuration: the named file (must exist), else $NDT_CONFIG, else <data>/ndt.yaml if present."""
    path = Path(explicit) if explicit else Path(os.environ["NDT_CONFIG"]) if os.environ.get("NDT_CONFIG") else None
    if path is None and (data_root / "ndt.yaml").exists():
        path = data_root / "ndt.yaml"
    raw = _read(path) if path else {}
    svc = raw.get("service") or {}
    if not isinstance(svc, dict) or set(svc) - {"token", "host", "port"}:
        raise ConfigError(f"config {path}: 'service' takes token, host and port")
    try:
        sla = SlaPolicy.from_dict(raw.get("sla") or {})
    except SlaPolicyError as exc:
        raise ConfigError(f"config {path}: sla: {exc}") from None
    token = os.environ.get("NDT_TOKEN") or svc.get("token")
    try:
        port = int(svc.get("port", 8000))
    except (TypeError, ValueError):
        raise ConfigError(f"config {path}: service port must be a number") from None
    return Config(token=str(token) if token else None, host=str(svc.get("host", "127.0.0.1")), port=port,
                  sla=sla, path=path)
