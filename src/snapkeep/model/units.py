"""Sizes as users write them (``512M``, ``10G``, ``1T``, plain bytes).

Only ASCII digits and units are read (full-width or Arabic-Indic digits are refused), booleans
are not sizes, and the arithmetic is exact: a size beyond :data:`MAX_SIZE` is refused, never overflowed.
"""

from __future__ import annotations

import re
from fractions import Fraction

from snapkeep.errors import InvalidInput

# The catalog stores sizes as signed 64-bit integers, and so do the kernel's quota interfaces.
MAX_SIZE = (1 << 63) - 1
MAX_SIZE_TEXT = 64  # "9223372036854775807" is 19 digits: a longer text is not a size anyone means
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([KMGTP])i?B?|B)?\s*$", re.IGNORECASE | re.ASCII)
_FACTORS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
# The same grammar for the API schema (JSON Schema patterns are not case-insensitive, and \d or \s there may
# mean Unicode digits and spaces); keep the two in step.
SIZE_PATTERN = r"^ *[0-9]+(\.[0-9]+)? *([KkMmGgTtPp][iI]?[bB]?|[bB])? *$"


def parse_size(text: str | int) -> int:
    """Bytes from ``text``: a positive integer, or a decimal with a binary unit (K, M, G, T, P)."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise InvalidInput(f"a size is a number of bytes or a text like 10G, not {type(text).__name__}")
    if isinstance(text, int):
        value = Fraction(text)
    else:
        if len(text) > MAX_SIZE_TEXT:
            raise InvalidInput(f"a size is at most {MAX_SIZE_TEXT} characters long, got {len(text)}", value=text[:24])
        match = _SIZE.match(text)
        if not match:
            raise InvalidInput(f"not a size: {text!r} (use e.g. 512M, 10G)", value=text)
        value = Fraction(match.group(1)) * _FACTORS[(match.group(2) or "").upper()]
    if value < 1:
        raise InvalidInput(f"size must be at least one byte, got {str(text)[:64]!r}", value=str(text)[:64])
    if value > MAX_SIZE:
        raise InvalidInput(
            f"size {str(text)[:24]!r} is too large: at most {MAX_SIZE} bytes (8 EiB)", value=str(text)[:24]
        )
    return int(value)


def format_size(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"
