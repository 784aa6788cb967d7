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
