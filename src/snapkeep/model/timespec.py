"""Parsing of expiry and durations as users write them: ``7d``, ``12h``, ``2w``, ``1y``, an ISO date.

Only ASCII digits are read (a full-width "7d" is refused, not taken as seven days), and a duration or date too far
out to be represented is refused as such, never overflowed.
"""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import MAXYEAR, UTC, datetime, timedelta

from snapkeep.errors import InvalidExpiry, InvalidInput

MAX_EXPIRY_TEXT = 64  # an ISO date with fractions and offset is 32 characters
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_YEAR = timedelta(days=365)
# Digits per unit: every duration the grammar admits is positive and under a thousand years.
_DIGITS = {"min": 8, "m": 8, "h": 6, "d": 5, "w": 4, "y": 3}
DURATION_PATTERN = "^ *(" + "|".join(f"([1-9][0-9]{{0,{n - 1}}} *{unit})" for unit, n in _DIGITS.items()) + "|never) *$"
_DURATION = re.compile(r"^\s*([0-9]+)\s*(m|min|h|d|w|y)\s*$", re.ASCII)
_ADMITTED = re.compile(DURATION_PATTERN, re.ASCII)


def expiry_after(created: datetime, keep: timedelta) -> datetime:
    """``created`` + ``keep``. A keep of whole years (a year is written ``1y``, 365 days) ends on the same date
    that many years on when that is later, so that leap days never make "7 years" short of seven years (a
    29 February counts on to 28 February). ``OverflowError`` past the year 9999."""
    plain = created + keep
    years, rest = divmod(keep, _YEAR)
    if rest or not years:
        return plain
    year = created.year + years
    if year > MAXYEAR:
        raise OverflowError(f"{created.isoformat()} + {years} years is past the year {MAXYEAR}")
    same_date = created.replace(year=year, day=min(created.day, monthrange(year, created.month)[1]))
    return max(plain, same_date)


def utcnow() -> datetime:
    """Time is UTC inside snapkeep; zones exist only at the edges."""
    return datetime.now(UTC)


def _check_length(text: str) -> None:
    if len(text) > MAX_EXPIRY_TEXT:
        raise InvalidExpiry(f"an expiry is at most {MAX_EXPIRY_TEXT} characters long, got {len(text)}", value=text[:24])


def parse_duration(text: str) -> timedelta:
    _check_length(text)
    match = _DURATION.match(text)
    if not match:
        raise InvalidExpiry(f"not a duration: {text!r} (use e.g. 30m, 12h, 7d, 2w, 1y)", value=text)
    if not _ADMITTED.match(text):
        raise InvalidExpiry(f"duration {text!r} is out of range: from 1 minute to 999 years", value=text)
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_time(text: str | None, what: str) -> datetime | None:
    """An ISO 8601 time as a filter takes it (UTC when it has no offset); not a number of seconds, which
    pydantic would take. None: no time given."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{what} must be an ISO 8601 time such as 2026-11-30T08:00:00Z", **{what: text}) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def parse_expiry(text: str | None, now: datetime) -> datetime | None:
    """``None``/``never`` → never expires; a duration → ``now`` + it (:func:`expiry_after`); else an ISO 8601
    date or time.

    An expiry that is not in the future is refused: a snapshot born expired would be swept at once.
    """
    if text is None or text.strip().lower() == "never":
        return None
    _check_length(text)
    if _DURATION.match(text):
        return expiry_after(now, parse_duration(text))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidExpiry(
            f"not an expiry: {text!r} (use 'never', a duration like 7d, or an ISO date)", value=text
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        when = when.astimezone(UTC)
    except OverflowError:
        raise InvalidExpiry(f"expiry {text!r} is too far in the future (after the year 9999)", value=text) from None
    if when <= now:
        raise InvalidExpiry(f"expiry {when.isoformat()} is in the past", value=text)
    return when
