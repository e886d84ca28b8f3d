"""What the lab benchmarks share: running the real `ndt` command line and checking for root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ndt(*args: str) -> dict:
    """Run `ndt ARGS --json`; exit with its error line if it fails."""
    r = subprocess.run([sys.executable, "-m", "apps", *args, "--json"], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"ndt {' '.join(args)} failed: {r.stderr.strip()}")
    return json.loads(r.stdout)


def lab_down() -> None:
    subprocess.run([sys.executable, "-m", "apps", "lab", "down"], capture_output=True, cwd=ROOT)


def require_root(script: str) -> bool:
    if os.geteuid() != 0:
        print(f"{script} needs root", file=sys.stderr)
        return False
    return True
