"""Sizes as users write them (``512M``, ``10G``, ``1T``, plain bytes).

Only ASCII digits and units are read (full-width or Arabic-Indic digits are refused), booleans
are not sizes, and the arithmetic is exact: a size beyond :data:`MAX_SIZE` is refused, never overflowed.
"""

from __future__ import annotations

import re
from fractions import Fraction

from snapkeep.errors import InvalidInput

# 10**18 bytes (888 PiB): within the catalog's and the kernel quota interfaces' signed 64 bits, and a round
# number that a JSON number (a double) holds exactly, so the API schema's maximum means the same to every client.
MAX_SIZE = 10**18
MiB = 1 << 20
MIN_VOLUME_SIZE = 1 << 20  # a volume's size limit: below, a filesystem's own metadata would not fit
MAX_SIZE_TEXT = 64
_FACTORS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
# Digits before the point, per unit, so that every size the grammar admits is at least 1 byte and at most
# MAX_SIZE: 18 digits of bytes, 14 of KiB, 11 of MiB, 8 of GiB, 5 of TiB, 2 of PiB.
_DIGITS = {"": 18, "K": 14, "M": 11, "G": 8, "T": 5, "P": 2}


def _grammar() -> str:
    """The size grammar as one regular expression in the common subset of Python's and JSON Schema's."""
    forms = []
    for unit, digits in _DIGITS.items():
        suffix = f"[{unit}{unit.lower()}][iI]?[bB]?" if unit else "[bB]?"
        forms.append(f"[1-9][0-9]{{0,{digits - 1}}}(\\.[0-9]{{1,20}})? *{suffix}")
    return "^ *(" + "|".join(f"({form})" for form in forms) + ") *$"


SIZE_PATTERN = _grammar()
_SIZE = re.compile(SIZE_PATTERN, re.ASCII)
_PARTS = re.compile(r" *([0-9.]+) *([KkMmGgTtPp]?)", re.ASCII)  # of a text the grammar admitted


def parse_size(text: str | int | float) -> int:
    """Bytes from ``text``: a positive integer (JSON's ``5.0`` is one too), or a decimal with a binary unit
    (K, M, G, T, P)."""
    if isinstance(text, float) and text.is_integer():
        text = int(text)
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise InvalidInput(f"a size is a whole number of bytes or a text like 10G, not {text!r}")
    if isinstance(text, str):
        if len(text) > MAX_SIZE_TEXT or not _SIZE.match(text):
            raise InvalidInput(
                f"not a size: {text[:MAX_SIZE_TEXT]!r} (use e.g. 512M, 10G; from 1 byte to 99P)", value=text[:64]
            )
        parts = _PARTS.match(text)
        assert parts is not None
        value = Fraction(parts.group(1)) * _FACTORS[parts.group(2).upper()]
    else:
        value = Fraction(text)
    if not 1 <= value <= MAX_SIZE:
        raise InvalidInput(f"size {str(text)[:24]!r} is out of range: 1 byte to {MAX_SIZE} bytes", value=str(text)[:24])
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


def check_volume_size(size: int) -> None:
    """A volume's size limit is at least :data:`MIN_VOLUME_SIZE`."""
    if size < MIN_VOLUME_SIZE:
        raise InvalidInput(f"a volume's size limit is at least 1M ({MIN_VOLUME_SIZE} bytes), not {size}", value=size)
