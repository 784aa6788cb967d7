"""Cursors of paged listings: a listing's name and the key of the last row sent, as base64url JSON.

Shared by the API (``X-Next-Cursor``) and the web UI (the "Next page" link's ``cursor``): both hand out and
take back the same opaque text, and refuse anything else with ``invalid_input``. A cursor grants nothing:
the rows after it are read through the caller's scope like the first page.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from snapkeep.errors import InvalidInput
from snapkeep.model.paging import Key


@dataclass(frozen=True)
class Listing:
    """One paged listing: its name (which cursors carry) and the types of its key's parts."""

    name: str
    key: tuple[type, ...]

    def encode(self, key: Key) -> str:
        parts = [part.isoformat() if isinstance(part, datetime) else part for part in key]
        raw = json.dumps([self.name, *parts], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(self, cursor: str) -> Key:
        """The key a cursor of this listing carries; :class:`InvalidInput` for anything else."""
        try:
            decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (binascii.Error, ValueError):
            decoded = None
        if not isinstance(decoded, list) or not decoded or not isinstance(decoded[0], str):
            raise _bad(cursor, "it is not a cursor this service gave")
        if decoded[0] != self.name:
            raise _bad(cursor, f"it continues the {decoded[0]!r} listing, not {self.name!r}")
        parts = decoded[1:]
        if len(parts) != len(self.key):
            raise _bad(cursor, "it is not a cursor this service gave")
        return tuple(_part(cursor, kind, part) for kind, part in zip(self.key, parts, strict=True))


def _bad(cursor: str, why: str) -> InvalidInput:
    return InvalidInput(
        f"invalid cursor: {why}; pass back the cursor a previous page gave unchanged, or leave it out to "
        "start at the first page",
        cursor=cursor[:100],
    )


def _part(cursor: str, kind: type, part: Any) -> str | int | datetime:
    if kind is datetime and isinstance(part, str):
        with contextlib.suppress(ValueError):
            when = datetime.fromisoformat(part)
            if when.tzinfo is not None:
                return when.astimezone(UTC)
    elif (kind is int and type(part) is int) or (kind is str and isinstance(part, str)):
        return part
    raise _bad(cursor, "it is not a cursor this service gave")
