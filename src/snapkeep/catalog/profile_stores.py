"""The stores of snapshot profiles: profiles with their periods, assignments, the scheduler's state.

Profiles are owned like volumes (the system or a tenant) and read through the unit's scope; an assignment
is visible where its subject is. The schedule is the scheduler's own bookkeeping: the scheduler acts as
the system, so its store has no scope.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from snapkeep.catalog.scope import Scope
from snapkeep.catalog.store_base import NamedStore, as_utc, convert_row, keyset
from snapkeep.catalog.tables import AssignmentRow, MetaRow, PeriodRow, ProfileRow, ScheduleRow
from snapkeep.model.paging import Page, Window, cut
from snapkeep.model.profile import (
    Assignment,
    Due,
    Period,
    Profile,
    ScheduleEntry,
    SubjectOfProfile,
    period_from_rule,
    period_rule,
)


class ProfileStore(NamedStore[Profile]):
    row = ProfileRow
    record = Profile
    what = "profile"

    def _to(self, row: Any) -> Profile:
        query = select(PeriodRow).where(PeriodRow.profile_id == row.id).order_by(PeriodRow.name)
        periods = tuple(period_from_rule(p.id, p.name, p.rule) for p in self._s.scalars(query))
        return Profile(
            id=row.id,
            name=row.name,
            description=row.description,
            owner_tenant_id=row.owner_tenant_id,
            timezone=row.timezone,
            periods=periods,
            ignore_warning=row.ignore_warning,
            created_at=as_utc(row.created_at),
        )

    def insert(self, obj: Profile) -> Profile:
        """The profile and its periods (which must carry their ids)."""
        values = {
            "id": obj.id,
            "name": obj.name,
            "description": obj.description,
            "owner_tenant_id": obj.owner_tenant_id,
            "timezone": obj.timezone,
            "ignore_warning": obj.ignore_warning,
            "created_at": obj.created_at,
        }
        self._check_placement(values)
        self._s.add(ProfileRow(**values))
        self._s.flush()  # before its periods: without a relationship() the unit of work does not order them
        for period in obj.periods:
            self._s.add(PeriodRow(id=period.id, profile_id=obj.id, name=period.name, rule=period_rule(period)))
        self._s.flush()
        return self.get(obj.id)

    def put_period(self, profile_id: str, period: Period) -> None:
        """Add the period, or replace the one with its id."""
        self._row(profile_id)
        row = self._s.get(PeriodRow, period.id)
        if row is None:
            self._s.add(PeriodRow(id=period.id, profile_id=profile_id, name=period.name, rule=period_rule(period)))
        else:
            row.name, row.rule = period.name, period_rule(period)
        self._s.flush()

    def remove_period(self, profile_id: str, period_id: str) -> None:
        self._row(profile_id)
        self._s.execute(delete(PeriodRow).where(PeriodRow.id == period_id, PeriodRow.profile_id == profile_id))
        self._s.flush()


def _subject_is(subject_type: Any, subject_id: Any) -> tuple[Any, Any]:
    return (AssignmentRow.subject_type == subject_type, AssignmentRow.subject_id == subject_id)


def _entry_is(subject_type: str, subject_id: str) -> tuple[Any, Any]:
    return (ScheduleRow.subject_type == subject_type, ScheduleRow.subject_id == subject_id)


class AssignmentStore:
    """Which profile each subject has; one per subject, visible where the subject is."""

    def __init__(self, session: Session, scope: Scope) -> None:
        self._s = session
        self._scope = scope

    def _to(self, row: AssignmentRow) -> Assignment:
        found: Assignment = convert_row(row, Assignment, {"subject_type": SubjectOfProfile})
        return found

    def of_subject(self, subject_type: str, subject_id: str) -> Assignment | None:
        row = self._s.scalar(select(AssignmentRow).where(*_subject_is(subject_type, subject_id)))
        return None if row is None or not self._scope.allows(row.owner_tenant_id) else self._to(row)

    def of_profile(self, profile_id: str) -> builtins.list[Assignment]:
        """Every assignment of the profile, the caller's scope or not (deleting a profile must see them all)."""
        query = select(AssignmentRow).where(AssignmentRow.profile_id == profile_id).order_by(AssignmentRow.id)
        return [self._to(row) for row in self._s.scalars(query)]

    def page(self, profile_id: str, window: Window) -> Page[Assignment]:
        """The visible assignments of one profile, in the order they were made."""
        query = self._scope.where(select(AssignmentRow), AssignmentRow.owner_tenant_id)
        query = query.where(AssignmentRow.profile_id == profile_id)
        rows = cut(list(self._s.scalars(keyset(query, (AssignmentRow.id,), window))), window, lambda row: (row.id,))
        return Page([self._to(row) for row in rows.items], rows.next)

    def list(self) -> builtins.list[Assignment]:
        query = self._scope.where(select(AssignmentRow), AssignmentRow.owner_tenant_id).order_by(AssignmentRow.id)
        return [self._to(row) for row in self._s.scalars(query)]

    def put(self, assignment: Assignment) -> Assignment:
        """Assign (a subject's previous profile, if any, is replaced)."""
        self.remove(assignment.subject_type, assignment.subject_id)
        self._s.add(
            AssignmentRow(
                profile_id=assignment.profile_id,
                subject_type=assignment.subject_type.value,
                subject_id=assignment.subject_id,
                subject_name=assignment.subject_name,
                owner_tenant_id=assignment.owner_tenant_id,
                created_at=assignment.created_at,
            )
        )
        self._s.flush()
        return assignment

    def remove(self, subject_type: str, subject_id: str) -> None:
        self._s.execute(delete(AssignmentRow).where(*_subject_is(subject_type, subject_id)))
        self._s.flush()

    def scheduled(self, window: Window) -> Page[tuple[ScheduleEntry, Assignment, str, str]]:
        """The schedule entries of the subjects the scope sees that will run again, soonest first, a page
        at a time: (entry, assignment, profile name, period name)."""
        query = (
            select(ScheduleRow, AssignmentRow, ProfileRow.name, PeriodRow.name)
            .join(AssignmentRow, and_(*_subject_is(ScheduleRow.subject_type, ScheduleRow.subject_id)))
            .join(PeriodRow, PeriodRow.id == ScheduleRow.period_id)
            .join(ProfileRow, ProfileRow.id == PeriodRow.profile_id)
            .where(ScheduleRow.next_due.is_not(None))
        )
        query = self._scope.where(query, AssignmentRow.owner_tenant_id)
        rows = self._s.execute(keyset(query, (ScheduleRow.next_due, ScheduleRow.id), window)).all()
        found = [
            (convert_row(entry, ScheduleEntry, {}), self._to(assignment), profile, period)
            for entry, assignment, profile, period in rows
        ]
        return cut(found, window, lambda item: (as_utc(item[0].next_due), item[0].id))  # type: ignore[arg-type]

    def forget(self, subject_type: str, subject_id: str) -> None:
        """The subject is being deleted: its assignment and its schedule go with it."""
        self.remove(subject_type, subject_id)
        self._s.execute(delete(ScheduleRow).where(*_entry_is(subject_type, subject_id)))

    def forget_tenants(self, tenant_ids: frozenset[str]) -> None:
        """Tenants are being deleted: the assignments of what they own, and the profiles they own (with
        their periods and schedule), go with them."""
        owned = select(ProfileRow.id).where(ProfileRow.owner_tenant_id.in_(tenant_ids))
        gone = select(AssignmentRow.subject_type, AssignmentRow.subject_id).where(
            or_(AssignmentRow.owner_tenant_id.in_(tenant_ids), AssignmentRow.profile_id.in_(owned))
        )
        for subject_type, subject_id in self._s.execute(gone).all():
            self.forget(subject_type, subject_id)
        self._s.execute(delete(ProfileRow).where(ProfileRow.owner_tenant_id.in_(tenant_ids)))
        self._s.flush()


class ScheduleStore:
    """The scheduler's state of each (period, subject): what comes due and when."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def _to(self, row: ScheduleRow) -> ScheduleEntry:
        found: ScheduleEntry = convert_row(row, ScheduleEntry, {})
        return found

    def add(self, period_id: str, subject_type: str, subject_id: str, slot: datetime | None) -> None:
        self._s.add(
            ScheduleRow(period_id=period_id, subject_type=subject_type, subject_id=subject_id, slot=slot, next_due=slot)
        )
        self._s.flush()

    def get(self, entry_id: int) -> ScheduleEntry | None:
        row = self._s.get(ScheduleRow, entry_id)
        return None if row is None else self._to(row)

    def of_period(self, period_id: str) -> builtins.list[ScheduleEntry]:
        query = select(ScheduleRow).where(ScheduleRow.period_id == period_id)
        return [self._to(row) for row in self._s.scalars(query)]

    def _due_query(self) -> Any:
        return (
            select(ScheduleRow, PeriodRow, ProfileRow.name, ProfileRow.timezone, AssignmentRow.owner_tenant_id)
            .join(PeriodRow, PeriodRow.id == ScheduleRow.period_id)
            .join(ProfileRow, ProfileRow.id == PeriodRow.profile_id)
            .join(AssignmentRow, and_(*_subject_is(ScheduleRow.subject_type, ScheduleRow.subject_id)))
        )

    def _dues(self, query: Any) -> builtins.list[Due]:
        return [
            Due(self._to(entry), period_from_rule(period.id, period.name, period.rule), name, zone, owner)
            for entry, period, name, zone, owner in self._s.execute(query)
        ]

    def due(self, now: datetime, limit: int) -> builtins.list[Due]:
        """Entries due at ``now`` that no take is running for, soonest first (the ``next_due`` index)."""
        query = self._due_query().where(ScheduleRow.next_due <= now, ScheduleRow.running_since.is_(None))
        return self._dues(query.order_by(ScheduleRow.next_due, ScheduleRow.id).limit(limit))

    def due_entry(self, entry_id: int) -> Due | None:
        """One entry with its period (None: removed meanwhile)."""
        found = self._dues(self._due_query().where(ScheduleRow.id == entry_id))
        return found[0] if found else None

    def minimum(self, period_id: str, subject_id: str) -> int:
        """How many of its newest snapshots of the subject the period keeps past expiry: its minimum count
        while it is on the subject's schedule, else none (an unassigned subject's snapshots keep only their
        expiry)."""
        query = (
            select(PeriodRow.rule)
            .join(ScheduleRow, ScheduleRow.period_id == PeriodRow.id)
            .where(PeriodRow.id == period_id, ScheduleRow.subject_id == subject_id)
            .limit(1)
        )
        rule = self._s.scalar(query)
        return 0 if rule is None else int(rule.get("min_snapshots", 1))

    def update(self, entry_id: int, **changes: Any) -> None:
        self._s.execute(update(ScheduleRow).where(ScheduleRow.id == entry_id).values(**changes))

    def release_running(self) -> int:
        """Forget takes that were running when the service stopped (the next start): they come due again."""
        result = self._s.execute(
            update(ScheduleRow).where(ScheduleRow.running_since.is_not(None)).values(running_since=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def remove(self, *, period_id: str | None = None, subject: tuple[str, str] | None = None) -> None:
        query = delete(ScheduleRow)
        if period_id is not None:
            query = query.where(ScheduleRow.period_id == period_id)
        if subject is not None:
            query = query.where(ScheduleRow.subject_type == subject[0], ScheduleRow.subject_id == subject[1])
        self._s.execute(query)
        self._s.flush()


class MetaStore:
    def __init__(self, session: Session) -> None:
        self._s = session

    def get(self, key: str) -> str | None:
        row = self._s.get(MetaRow, key)
        return None if row is None else row.value

    def put(self, key: str, value: str) -> None:
        self._s.merge(MetaRow(key=key, value=value))
        self._s.flush()
