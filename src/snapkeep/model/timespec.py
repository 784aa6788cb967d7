"""Parsing of expiry and durations as users write them: ``7d``, ``12h``, ``2w``, ``1y``, an ISO date."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from snapkeep.errors import InvalidExpiry

_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w|y)\s*$")
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def utcnow() -> datetime:
    """Time is UTC inside snapkeep; zones exist only at the edges."""
    return datetime.now(UTC)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise InvalidExpiry(f"not a duration: {text!r} (use e.g. 30m, 12h, 7d, 2w, 1y)", value=text)
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_expiry(text: str | None, now: datetime) -> datetime | None:
    """``None``/``never`` → never expires; a duration → ``now`` + it; else an ISO 8601 date or time.

    An expiry that is not in the future is refused: a snapshot born expired would be swept at once.
    """
    if text is None or text.strip().lower() == "never":
        return None
    if _DURATION.match(text):
        delta = parse_duration(text)
        if delta.total_seconds() <= 0:
            raise InvalidExpiry("expiry duration must be positive", value=text)
        return now + delta
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidExpiry(
            f"not an expiry: {text!r} (use 'never', a duration like 7d, or an ISO date)", value=text
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    if when <= now:
        raise InvalidExpiry(f"expiry {when.isoformat()} is in the past", value=text)
    return when
