"""Sizes as users write them (``512M``, ``10G``, ``1T``, plain bytes)."""

from __future__ import annotations

import re

from snapkeep.errors import InvalidInput

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(i?B?)?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_size(text: str | int) -> int:
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(text)
        if not match:
            raise InvalidInput(f"not a size: {text!r} (use e.g. 512M, 10G)", value=text)
        value = int(float(match.group(1)) * _FACTORS[match.group(2).upper()])
    if value <= 0:
        raise InvalidInput(f"size must be positive, got {text!r}", value=str(text))
    return value


def format_size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"
