"""Link capacity from the link-speed fields and labels found in Topology Zoo files.

`LinkSpeedRaw` (bit/s) wins when present; otherwise a label such as "10 Gbit/s", "2.5 Gbps",
"155 Mbps", "OC-192c", "T1" or a range "2-34 Mbit/s" (the upper bound) is parsed. Labels that
name no speed ("Optic Fiber", "SDH", "Red Link") give None.
"""

from __future__ import annotations

import re
from typing import Any

_UNIT_MBPS = {"k": 1e-3, "m": 1.0, "g": 1e3, "t": 1e6}
_NAMED_MBPS = {"t1": 1.544, "e1": 2.048, "t3": 44.736, "e3": 34.368, "ds3": 44.736}
_SPEED = re.compile(r"(\d+(?:\.\d+)?)(?:\s*-\s*(\d+(?:\.\d+)?))?\s*([kmgt])\s*(?:bit/?s|bps|b/s|bits?)\b", re.I)
_OC = re.compile(r"\boc-?(\d+)c?\b", re.I)
_STM = re.compile(r"\bstm-?(\d+)\b", re.I)


def capacity_from_attrs(attrs: dict[str, Any]) -> float | None:
    """Capacity in Mbit/s from a Zoo edge's attributes, or None when the file does not say."""
    raw = attrs.get("LinkSpeedRaw")
    if raw is not None:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = 0.0
        if value > 0:
            return value / 1e6
    for key in ("LinkLabel", "label", "LinkSpeed"):
        label = attrs.get(key)
        if isinstance(label, str):
            parsed = parse_speed_label(label)
            if parsed is not None:
                return parsed
    return None


def parse_speed_label(label: str) -> float | None:
    """Mbit/s named by a free-text label, or None."""
    text = label.strip()
    m = _SPEED.search(text)
    if m:
        value = float(m.group(2) or m.group(1))
        return value * _UNIT_MBPS[m.group(3).lower()]
    m = _OC.search(text)
    if m:
        return int(m.group(1)) * 51.84
    m = _STM.search(text)
    if m:
        return int(m.group(1)) * 155.52
    return _NAMED_MBPS.get(text.lower())
