"""Request and response bodies of profiles, periods, assignments and the scheduler's status."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from snapkeep.api.schemas import Description, Name, RequestBody, Tag, TenantRef
from snapkeep.errors import InvalidSchedule
from snapkeep.model.profile import Assignment, Frequency, Period, SubjectOfProfile
from snapkeep.model.schedule import describe
from snapkeep.model.selection import Selection
from snapkeep.model.timespec import DURATION_PATTERN, parse_duration
from snapkeep.services.profiles import Saved, Upcoming

PeriodName = Annotated[str, Field(min_length=1, max_length=64, pattern="^[A-Za-z0-9._-]+$")]
Retention = Annotated[
    str | None,
    Field(
        default=None,
        pattern=DURATION_PATTERN.replace("never", "never|forever"),
        description="how long each snapshot is kept: a duration (12h, 7d, 2w, 7y) or 'forever' (null: forever)",
    ),
]
Moment = Annotated[datetime | None, Field(default=None, strict=False, description="'once' periods: ISO 8601 with zone")]


_NOT_NULL = frozenset(
    {"frequency", "minute", "hour", "min_snapshots", "quiesce", "immutable", "private", "skip_missed"}
)


def _retention(text: str | None) -> Any:
    if text is None or text.strip() in ("forever", "never"):
        return None
    return parse_duration(text)


class _PeriodFields(RequestBody):
    frequency: Frequency | None = Field(default=None, strict=False)
    minute: int | None = Field(default=None, ge=0, le=59)
    hour: int | None = Field(default=None, ge=0, le=23)
    day_of_week: int | None = Field(default=None, ge=0, le=6, description="0 = Sunday … 6 = Saturday; null: any")
    day_of_month: int | None = Field(default=None, ge=1, le=31, description="null: any")
    month: int | None = Field(default=None, ge=1, le=12, description="null: any")
    interval_minutes: int | None = Field(default=None, ge=1, le=1440)
    at: Moment
    retention: Retention
    min_snapshots: int | None = Field(default=None, ge=0, le=1000)
    quiesce: bool | None = None
    immutable: bool | None = None
    private: bool | None = None
    skip_missed: bool | None = None
    include_tags: list[Tag] | None = None
    exclude_tags: list[Tag] | None = None

    def changes(self) -> dict[str, Any]:
        """The fields given (set in the body), as the period's own values. ``null`` means "any" or "none"
        where a field has such a value (days, month, interval, time, retention, tags), and is refused
        elsewhere."""
        given = self.model_dump(exclude_unset=True)
        for field in _NOT_NULL & {k for k, v in given.items() if v is None}:
            raise InvalidSchedule(f"{field} cannot be null", field=field)
        include, exclude = given.pop("include_tags", None), given.pop("exclude_tags", None)
        if include is not None or exclude is not None:
            given["selection"] = Selection(tuple(include or ()), tuple(exclude or ()))
        if "retention" in given:
            given["retention"] = _retention(given["retention"])
        given.pop("name", None)
        return given


class PeriodCreate(_PeriodFields):
    name: PeriodName
    frequency: Frequency | None = Field(strict=False, description="required")

    def period(self) -> Period:
        if self.frequency is None:
            raise InvalidSchedule("a period needs a frequency", period=self.name)
        changes = {k: v for k, v in self.changes().items() if v is not None or k in ("retention", "at")}
        return Period(name=self.name, **changes)


class PeriodUpdate(_PeriodFields):
    """Only the fields given change; the period's slots are computed again from now."""

    name: PeriodName | None = None

    def changes(self) -> dict[str, Any]:
        found = super().changes()
        if self.name is not None:
            found["name"] = self.name
        return found


class ProfileCreate(RequestBody):
    name: Name
    description: Description = ""
    timezone: str = Field(default="UTC", max_length=64, description="an IANA zone, e.g. Europe/Berlin")
    periods: list[PeriodCreate] = Field(default_factory=list, max_length=32)
    ignore_warning: bool = False
    tenant: TenantRef


class ProfileUpdate(RequestBody):
    name: Name | None = None
    description: Description | None = None
    timezone: str | None = Field(default=None, max_length=64)
    ignore_warning: bool | None = None


class AssignRequest(RequestBody):
    subject_type: SubjectOfProfile = Field(strict=False)
    subject: str = Field(min_length=1, max_length=256, description="id or name; the system is 'system'")


class PeriodPublic(BaseModel):
    id: str
    name: str
    frequency: str
    minute: int
    hour: int
    day_of_week: int | None
    day_of_month: int | None
    month: int | None
    interval_minutes: int | None
    at: datetime | None
    retention_seconds: int | None
    min_snapshots: int
    quiesce: bool
    immutable: bool
    private: bool
    skip_missed: bool
    include_tags: list[str]
    exclude_tags: list[str]
    runs: str  # in words, with how short months and Feb 29 are handled
    estimate: int | None  # snapshots per subject in steady state; null: unbounded

    @classmethod
    def of(cls, period: Period, estimate: int | None) -> PeriodPublic:
        values = {f.name: getattr(period, f.name) for f in fields(period)}
        selection, retention = values.pop("selection"), values.pop("retention")
        return cls(
            **values,
            retention_seconds=None if retention is None else int(retention.total_seconds()),
            include_tags=list(selection.include),
            exclude_tags=list(selection.exclude),
            runs=describe(period),
            estimate=estimate,
        )


class ProfilePublic(BaseModel):
    id: str
    name: str
    description: str
    timezone: str
    ignore_warning: bool
    created_at: datetime | None
    periods: list[PeriodPublic]
    estimate: int | None  # snapshots per subject in steady state, all periods; null: unbounded
    warnings: list[str]

    @classmethod
    def of(cls, saved: Saved) -> ProfilePublic:
        p = saved.profile
        return cls(
            id=p.id,
            name=p.name,
            description=p.description,
            timezone=p.timezone,
            ignore_warning=p.ignore_warning,
            created_at=p.created_at,
            periods=[PeriodPublic.of(period, saved.per_period.get(period.name)) for period in p.periods],
            estimate=saved.estimate,
            warnings=list(saved.warnings),
        )


class AssignmentPublic(BaseModel):
    profile_id: str
    subject_type: str
    subject_id: str
    subject_name: str
    created_at: datetime | None

    @classmethod
    def of(cls, assignment: Assignment) -> AssignmentPublic:
        values = asdict(assignment)
        values.pop("owner_tenant_id")
        return cls(**values)


class PlannedPublic(BaseModel):
    """One snapshot of a preview: existing already, or to be taken by then."""

    period: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    status: str  # ready or held
    existing: bool


class ScheduledPublic(BaseModel):
    subject_type: str
    subject_id: str
    subject_name: str
    profile: str
    period: str
    next_run: datetime | None  # the slot, or a retry's time after a failure
    slot: datetime | None
    failures: int
    last_error: str | None
    last_run: datetime | None
    last_snapshot_id: str | None
    running: bool

    @classmethod
    def of(cls, item: Upcoming) -> ScheduledPublic:
        entry, assignment = item.entry, item.assignment
        return cls(
            subject_type=assignment.subject_type.value,
            subject_id=assignment.subject_id,
            subject_name=assignment.subject_name,
            profile=item.profile,
            period=item.period,
            next_run=entry.next_due,
            slot=entry.slot,
            failures=entry.failures,
            last_error=entry.last_error,
            last_run=entry.last_run,
            last_snapshot_id=entry.last_snapshot_id,
            running=entry.running_since is not None,
        )
