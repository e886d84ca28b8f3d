"""Evidence packs: what-if answers and deployments, as HTML pages and their JSON."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from apps.whatif.evidence import render_whatif

from .deps import Twin, twin
from .errors import ApiError
from .models import ERRORS

PACK_NAME = {"whatif": re.compile(r"^[0-9a-f]{12}\.(html|json)$"),
             "deployments": re.compile(r"^dep-[0-9a-f]{10}\.(html|json)$")}

router = APIRouter()


@router.get("/reports/{kind}/{name}", responses=ERRORS, response_class=FileResponse)
def report(kind: str, name: str, t: Twin = Depends(twin)) -> FileResponse:
    pattern = PACK_NAME.get(kind)
    if pattern is None or not pattern.match(name):
        raise ApiError(404, f"no report {kind}/{name}")
    path = t.root / "reports" / kind / name
    if kind == "whatif" and name.endswith(".html") and not path.is_file() and path.with_suffix(".json").is_file():
        render_whatif(t.root, name.rsplit(".", 1)[0])
    if not path.is_file():
        raise ApiError(404, f"no report {kind}/{name}")
    return FileResponse(path, media_type="text/html" if name.endswith(".html") else "application/json")
