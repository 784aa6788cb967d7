"""Snapshot profiles and their periods, as values (SPEC §4).

A profile (owned by the system or one tenant, in one time zone) holds periods; each period says when it
takes a snapshot (its frequency and the fields of "when" that frequency needs), how long a snapshot lives
(``retention``; ``None`` keeps it forever), how many of its snapshots survive their expiry per subject
(``min_snapshots``) and how it is taken (quiesce, immutable, private, and for system periods which objects:
``selection``). When a period fires and how many snapshots it keeps are computed in ``model.schedule``.

Days of week count from Sunday (0) to Saturday (6), as the SPEC lists them (sun to sat); ``None`` means "any".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from snapkeep.model.selection import FULL, Selection


class Frequency(StrEnum):
    INTERVAL = "interval"  # every ``interval_minutes`` minutes, aligned to the hour (beyond VergeOS)
    HOURLY = "hourly"  # at ``minute``
    DAILY = "daily"  # at ``hour``:``minute``
    WEEKLY = "weekly"  # on ``day_of_week`` (any: once a week, on Sunday) at ``hour``:``minute``
    MONTHLY = "monthly"  # on ``day_of_month`` (any: the 1st) at ``hour``:``minute``
    YEARLY = "yearly"  # on ``month`` (any: January) / ``day_of_month`` (any: the 1st) at ``hour``:``minute``
    ONCE = "once"  # at ``at``, an exact time


class SubjectOfProfile(StrEnum):
    """What a profile can be assigned to: the system's (or a tenant's own) system snapshots, a VM, a volume."""

    SYSTEM = "system"
    TENANT = "tenant"
    VM = "vm"
    VOLUME = "volume"


@dataclass(frozen=True)
class Period:
    name: str
    frequency: Frequency
    minute: int = 0
    hour: int = 0
    day_of_week: int | None = None
    day_of_month: int | None = None
    month: int | None = None
    interval_minutes: int | None = None  # INTERVAL only
    at: datetime | None = None  # ONCE only, aware
    retention: timedelta | None = None  # None: forever
    min_snapshots: int = 1
    quiesce: bool = False  # VM and volume snapshots only
    immutable: bool = False
    private: bool = True  # system snapshots only: hidden from tenants
    skip_missed: bool = False
    selection: Selection = FULL  # system snapshots only: full, or partial by tags
    id: str = ""


# The fields of a period that say when it runs: a change to any of them computes its slots again.
WHEN_FIELDS = ("frequency", "minute", "hour", "day_of_week", "day_of_month", "month", "interval_minutes", "at")


@dataclass(frozen=True)
class Profile:
    id: str
    name: str
    description: str
    owner_tenant_id: str | None
    timezone: str  # an IANA zone name, e.g. "Europe/Berlin"
    periods: tuple[Period, ...] = ()
    ignore_warning: bool = False  # save without the steady-state estimate warning
    created_at: datetime | None = None


@dataclass(frozen=True)
class Assignment:
    profile_id: str
    subject_type: SubjectOfProfile
    subject_id: str  # "system" for the whole system
    subject_name: str = ""
    owner_tenant_id: str | None = None  # the subject's owner (scope of the assignment)
    created_at: datetime | None = field(default=None, compare=False)


def period_rule(period: Period) -> dict[str, Any]:
    """The period's rule as the catalog stores it (everything but its id and name)."""
    return {
        "frequency": period.frequency.value,
        "minute": period.minute,
        "hour": period.hour,
        "day_of_week": period.day_of_week,
        "day_of_month": period.day_of_month,
        "month": period.month,
        "interval_minutes": period.interval_minutes,
        "at": period.at.isoformat() if period.at else None,
        "retention_seconds": None if period.retention is None else int(period.retention.total_seconds()),
        "min_snapshots": period.min_snapshots,
        "quiesce": period.quiesce,
        "immutable": period.immutable,
        "private": period.private,
        "skip_missed": period.skip_missed,
        "selection": period.selection.as_json(),
    }


def period_from_rule(period_id: str, name: str, rule: dict[str, Any]) -> Period:
    """The inverse of :func:`period_rule`."""
    retention = rule.get("retention_seconds")
    at = rule.get("at")
    selection = rule.get("selection") or {}
    return Period(
        id=period_id,
        name=name,
        frequency=Frequency(rule["frequency"]),
        minute=rule.get("minute", 0),
        hour=rule.get("hour", 0),
        day_of_week=rule.get("day_of_week"),
        day_of_month=rule.get("day_of_month"),
        month=rule.get("month"),
        interval_minutes=rule.get("interval_minutes"),
        at=datetime.fromisoformat(at) if at else None,
        retention=None if retention is None else timedelta(seconds=retention),
        min_snapshots=rule.get("min_snapshots", 1),
        quiesce=rule.get("quiesce", False),
        immutable=rule.get("immutable", False),
        private=rule.get("private", True),
        skip_missed=rule.get("skip_missed", False),
        selection=Selection(tuple(selection.get("include_tags", ())), tuple(selection.get("exclude_tags", ()))),
    )


@dataclass(frozen=True)
class ScheduleEntry:
    """The scheduler's state of one period on one subject (see ``catalog.tables.ScheduleRow``)."""

    id: int
    period_id: str
    subject_type: str
    subject_id: str
    slot: datetime | None
    next_due: datetime | None
    failures: int = 0
    last_error: str | None = None
    last_run: datetime | None = None
    last_snapshot_id: str | None = None
    running_since: datetime | None = None


@dataclass(frozen=True)
class Due:
    """One entry that has come due, with what taking its snapshot needs to know."""

    entry: ScheduleEntry
    period: Period
    profile_name: str
    timezone: str
    owner_tenant_id: str | None  # the subject's owner: the scheduled job is its
