"""The code's shape, checked: no folder imports from a folder above it (the data flow's layers, and
apps' own folders: the what-if engine and the console know no HTTP or command line), and SQL is
written only inside the store classes that own its tables."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .conftest import ROOT

LAYERS = ("topologies", "ptwin", "controller_app", "traffic", "vtwin", "sync", "apps")
#: apps' folders and the sibling folders each may import (cli, at the top, may import any).
APPS = {"common": set(), "whatif": {"common"}, "optimize": {"common", "whatif"},
        "plans": {"common", "whatif", "optimize"}, "console": {"common", "plans"},
        "service": {"common", "whatif", "optimize", "plans"},
        "cli": {"common", "whatif", "optimize", "plans", "console", "service"}}
#: The only files with SQL, each the home of the class that owns its tables.
SQL_OWNERS = {"traffic/store.py", "sync/store.py", "sync/sla.py", "sync/intervals.py", "apps/service/store.py",
              "apps/plans/store.py", "vtwin/registry.py"}


def imports(path: Path) -> list[str]:
    """Absolute names of everything the module imports (relative imports resolved)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            out += [module] if node.module else [f"{module}.{a.name}" for a in node.names]
    return out


def modules(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def test_no_layer_imports_a_layer_above_it():
    wrong = []
    for path in modules(*LAYERS):
        layer = path.relative_to(ROOT).parts[0]
        for name in imports(path):
            top = name.split(".")[0]
            if top in LAYERS and LAYERS.index(top) > LAYERS.index(layer):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong


def test_apps_folders_import_only_the_folders_below_them():
    wrong = []
    for path in modules("apps"):
        parts = path.relative_to(ROOT).parts
        if len(parts) < 3:  # apps/__init__.py, apps/__main__.py
            continue
        folder = parts[1]
        for name in imports(path):
            p = name.split(".")
            if p[0] != "apps" or len(p) < 2 or p[1] == folder:
                continue
            if p[1] not in APPS[folder]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, wrong
    assert {p.name for p in (ROOT / "apps").glob("*.py")} == {"__init__.py", "__main__.py"}  # every job has its folder


def test_sql_is_written_only_in_the_store_classes():
    sql = re.compile(r"\.(execute|query|insert_all|upsert)\(|\bsqlite3\.connect\(|\[\"\w+\"\]\.(insert|update)\(")
    found = [f"{p.relative_to(ROOT)}:{i}" for p in modules(*LAYERS, "bench") for i, line in
             enumerate(p.read_text().splitlines(), 1)
             if sql.search(line) and str(p.relative_to(ROOT)) not in SQL_OWNERS]
    assert not found, found
    assert all((ROOT / f).is_file() for f in SQL_OWNERS)
