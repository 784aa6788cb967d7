"""A profile period as an HTML form sends it: every field of the period model, as text, to a ``Period``.

The form always sends every field (it shows them all), so an update sets each one: a field left blank is
its "any" or "none" value where the period has one (days, month, interval, the time of a once period,
tags) and its default otherwise. Numbers that are not numbers are refused here with a clear error; every
rule about which fields a frequency uses is the schedule's (``model.schedule.check_period``), applied by the
profile service when it saves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from snapkeep.errors import InvalidSchedule
from snapkeep.model.profile import Frequency, Period
from snapkeep.model.selection import Selection
from snapkeep.model.timespec import parse_duration
from snapkeep.ui import forms

FREQUENCIES = tuple(f.value for f in Frequency)


def _number(fields: forms.Fields, name: str) -> int | None:
    text = forms.text(fields, name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidSchedule(
            f"{name.replace('_', ' ')} must be a whole number, not {text[:40]!r}", field=name
        ) from None


def _retention(fields: forms.Fields) -> timedelta | None:
    text = forms.text(fields, "retention")
    return None if text.lower() in ("", "forever", "never") else parse_duration(text)


def _at(fields: forms.Fields) -> datetime | None:
    """A once period's time: ISO 8601; without an offset it is read as UTC."""
    text = forms.text(fields, "at")
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidSchedule(f"the time must be ISO 8601 such as 2026-12-24T18:00+01:00, not {text[:40]!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def period_fields(fields: forms.Fields) -> dict[str, Any]:
    """Every field of a period the form sends (all but its id), as the period model holds them."""
    frequency = forms.text(fields, "frequency")
    if frequency not in FREQUENCIES:
        raise InvalidSchedule(f"frequency must be one of {', '.join(FREQUENCIES)}", field="frequency")
    min_snapshots = _number(fields, "min_snapshots")
    return {
        "name": forms.text(fields, "name"),
        "frequency": Frequency(frequency),
        "minute": _number(fields, "minute") or 0,
        "hour": _number(fields, "hour") or 0,
        "day_of_week": _number(fields, "day_of_week"),
        "day_of_month": _number(fields, "day_of_month"),
        "month": _number(fields, "month"),
        "interval_minutes": _number(fields, "interval_minutes"),
        "at": _at(fields),
        "retention": _retention(fields),
        "min_snapshots": 1 if min_snapshots is None else min_snapshots,
        "quiesce": forms.flag(fields, "quiesce"),
        "immutable": forms.flag(fields, "immutable"),
        "private": forms.flag(fields, "private"),
        "skip_missed": forms.flag(fields, "skip_missed"),
        "selection": Selection(tuple(forms.words(fields, "include_tags")), tuple(forms.words(fields, "exclude_tags"))),
    }


def new_period(fields: forms.Fields) -> Period:
    return Period(**period_fields(fields))


def retention_text(period: Period) -> str:
    """The retention as the form shows it back: whole weeks, days, hours or minutes, or "forever"."""
    if period.retention is None:
        return "forever"
    minutes = int(period.retention.total_seconds() // 60)
    for unit, size in (("y", 365 * 24 * 60), ("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def period_values(period: Period) -> dict[str, str]:
    """The period's fields as the form shows them (text; ticked checkboxes as "on")."""
    values = {
        "name": period.name,
        "frequency": period.frequency.value,
        "minute": str(period.minute),
        "hour": str(period.hour),
        "day_of_week": "" if period.day_of_week is None else str(period.day_of_week),
        "day_of_month": "" if period.day_of_month is None else str(period.day_of_month),
        "month": "" if period.month is None else str(period.month),
        "interval_minutes": "" if period.interval_minutes is None else str(period.interval_minutes),
        "at": period.at.isoformat() if period.at else "",
        "retention": retention_text(period),
        "min_snapshots": str(period.min_snapshots),
        "include_tags": " ".join(period.selection.include),
        "exclude_tags": " ".join(period.selection.exclude),
    }
    for flag in ("quiesce", "immutable", "private", "skip_missed"):
        if getattr(period, flag):
            values[flag] = "on"
    return values
