"""Snapshot profiles: created, changed, assigned and deleted by operators (SPEC §4).

Every change that moves a period's slots — a period added, changed or removed, a zone changed, a profile
assigned or unassigned — rewrites the scheduler's entries for what it touched in the same unit of work, so
the scheduler never sees a period without its entries, nor entries of something gone. A change that can
change which snapshots a period holds past their expiry (its minimum count, the period or the assignment
removed) releases those holds; the expiry sweep decides again (``services.retention``).

A profile belongs to the system or a tenant, like a volume. It can be assigned to a subject its owner
owns, itself or through a sub-tenant: the system (for system snapshots), a tenant (that tenant's own system
snapshots), a VM or a volume. A subject has at most one profile; assigning another replaces it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import Conflict, Forbidden, InvalidInput, NameClash, NotFound
from snapkeep.model.installed_profiles import SYSTEM_PROFILE, installed_profiles
from snapkeep.model.names import check_description, check_name
from snapkeep.model.paging import MAX_LIMIT, Page, Window
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.profile import WHEN_FIELDS, Assignment, Period, Profile, ScheduleEntry, SubjectOfProfile
from snapkeep.model.schedule import (
    Existing,
    Lifetime,
    Planned,
    check_profile,
    lifetimes,
    next_slot,
    preview,
    profile_estimate,
)
from snapkeep.services.audit import Audit
from snapkeep.services.subjects.base import WHOLE_SYSTEM

_INSTALLED = "profiles_installed_at"


@dataclass(frozen=True)
class Saved:
    """A profile as saved, with its steady-state estimate (snapshots per subject; None: unbounded) and the
    warnings an operator should read."""

    profile: Profile
    estimate: int | None
    per_period: dict[str, int | None]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Subject:
    type: SubjectOfProfile
    id: str
    name: str
    owner_tenant_id: str | None  # the tenant whose subtree the subject is in (a tenant: itself)


class Profiles:
    def __init__(self, db: Database, audit: Audit, clock: Callable[[], datetime], warn_at: int) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._warn_at = warn_at

    # --- reading -----------------------------------------------------------------------------------
    def listing(self, who: Principal) -> list[Profile]:
        with self._db.unit(who) as uow:
            return uow.profiles.list()

    def page(self, who: Principal, window: Window) -> Page[Profile]:
        """By name, a page at a time."""
        with self._db.unit(who) as uow:
            return uow.profiles.page(window)

    def get(self, ref: str, who: Principal) -> Profile:
        with self._db.unit(who) as uow:
            return uow.profiles.resolve(ref)

    def assignments(self, who: Principal, ref: str | None = None) -> list[Assignment]:
        """The assignments the caller sees, of one profile or of all."""
        with self._db.unit(who) as uow:
            if ref is None:
                return uow.assignments.list()
            return uow.assignments.page(uow.profiles.resolve(ref).id, Window(MAX_LIMIT)).items

    def assignments_page(self, ref: str, who: Principal, window: Window) -> Page[Assignment]:
        """The subjects of one profile the caller sees, in the order they were assigned, a page at a time."""
        with self._db.unit(who) as uow:
            return uow.assignments.page(uow.profiles.resolve(ref).id, window)

    def saved(self, profile: Profile) -> Saved:
        total, per_period = profile_estimate(profile)
        warnings = []
        if not profile.ignore_warning and (total is None or total > self._warn_at):
            kept = "an unbounded number of" if total is None else str(total)
            warnings.append(
                f"profile {profile.name!r} keeps {kept} snapshots per subject in steady state, more than the "
                f"threshold of {self._warn_at}; shorten a retention, or set ignore_warning to silence this"
            )
        return Saved(profile, total, per_period, tuple(warnings))

    # --- profiles ----------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        who: Principal,
        *,
        description: str = "",
        timezone: str = "UTC",
        periods: tuple[Period, ...] = (),
        ignore_warning: bool = False,
        tenant: str | None = None,
    ) -> Saved:
        """A new profile owned by ``tenant`` (default: the caller's own owner)."""
        who.require(Role.OPERATOR)
        check_name(name, "profile name")
        check_description(description)
        periods = tuple(replace(p, id=p.id or str(uuid.uuid4())) for p in periods)
        with self._db.unit(who) as uow:
            owner = uow.tenants.owner(tenant)
            profile = Profile(
                id=str(uuid.uuid4()),
                name=name,
                description=description,
                owner_tenant_id=owner,
                timezone=timezone,
                periods=periods,
                ignore_warning=ignore_warning,
                created_at=self._clock(),
            )
            check_profile(profile, self._clock())
            if uow.profiles.find(name, owner) is not None:
                raise NameClash(f"a profile named {name!r} exists already", name=name)
            stored = uow.profiles.insert(profile)
            self._audit.done(uow, who, "profile.create", f"profile:{name}", owner=owner)
        return self.saved(stored)

    def update(self, ref: str, who: Principal, **changes: Any) -> Saved:
        """Change the name, description, zone or ignore_warning of a profile; a new zone moves every slot."""
        who.require(Role.OPERATOR)
        allowed = {"name", "description", "timezone", "ignore_warning"}
        if set(changes) - allowed:
            raise TypeError(f"profiles have no changeable field(s) {sorted(set(changes) - allowed)}")
        if "name" in changes:
            check_name(changes["name"], "profile name")
        if "description" in changes:
            check_description(changes["description"])
        with self._db.unit(who) as uow:
            profile = uow.profiles.resolve(ref)
            changed = replace(profile, **changes)
            check_profile(changed, self._clock(), previous=profile)
            if changed.name != profile.name and uow.profiles.find(changed.name, profile.owner_tenant_id):
                raise NameClash(f"a profile named {changed.name!r} exists already", name=changed.name)
            uow.profiles.update(profile.id, **changes)
            if changed.timezone != profile.timezone:
                for period in changed.periods:
                    self._reschedule(uow, changed, period)
            detail = ", ".join(sorted(changes))
            self._audit.done(
                uow, who, "profile.update", f"profile:{changed.name}", detail, owner=profile.owner_tenant_id
            )
            return self.saved(uow.profiles.get(profile.id))

    def delete(self, ref: str, who: Principal, *, detach: bool = False) -> None:
        """Refused while the profile is assigned, unless ``detach``: then it is unassigned from every subject
        first. The snapshots it took stay, with their expiry (their holds are released)."""
        who.require(Role.OPERATOR)
        with self._db.unit(who) as uow:
            profile = uow.profiles.resolve(ref)
            assigned = uow.assignments.of_profile(profile.id)
            if assigned and not detach:
                names = ", ".join(f"{a.subject_type} {a.subject_name}" for a in assigned[:5])
                raise Conflict(
                    f"profile {profile.name!r} is assigned to {len(assigned)} subject(s) ({names}); unassign it "
                    "or ask to detach it",
                    profile=profile.id,
                    assigned=len(assigned),
                )
            for assignment in assigned:
                self._unassign(uow, assignment)
            uow.profiles.delete(profile.id)
            detail = f"detached {len(assigned)}"
            self._audit.done(
                uow, who, "profile.delete", f"profile:{profile.name}", detail, owner=profile.owner_tenant_id
            )

    # --- periods -----------------------------------------------------------------------------------
    def add_period(self, ref: str, period: Period, who: Principal) -> Saved:
        who.require(Role.OPERATOR)
        with self._db.unit(who) as uow:
            profile = uow.profiles.resolve(ref)
            period = replace(period, id=str(uuid.uuid4()))
            check_profile(replace(profile, periods=(*profile.periods, period)), self._clock(), previous=profile)
            uow.profiles.put_period(profile.id, period)
            self._reschedule(uow, profile, period)
            target, owner = f"profile:{profile.name}", profile.owner_tenant_id
            self._audit.done(uow, who, "profile.period.add", target, period.name, owner=owner)
            return self.saved(uow.profiles.get(profile.id))

    def update_period(self, ref: str, period_name: str, who: Principal, /, **changes: Any) -> Saved:
        """Change fields of period ``period_name`` (``name`` among them renames it); if when it runs changed,
        its slots are computed again from now on its subjects."""
        who.require(Role.OPERATOR)
        with self._db.unit(who) as uow:
            profile = uow.profiles.resolve(ref)
            old = _period(profile, period_name)
            new = replace(old, **changes)
            others = tuple(p for p in profile.periods if p.id != old.id)
            check_profile(replace(profile, periods=(*others, new)), self._clock(), previous=profile)
            uow.profiles.put_period(profile.id, new)
            if any(getattr(new, field) != getattr(old, field) for field in WHEN_FIELDS):
                self._reschedule(uow, profile, new)  # else a slot waiting for its retry keeps it
            uow.snapshots.release_holds(period_id=new.id)
            detail = f"{period_name}: " + ", ".join(sorted(changes))
            target, owner = f"profile:{profile.name}", profile.owner_tenant_id
            self._audit.done(uow, who, "profile.period.update", target, detail, owner=owner)
            return self.saved(uow.profiles.get(profile.id))

    def remove_period(self, ref: str, name: str, who: Principal) -> Saved:
        """The period's snapshots stay, with their expiry (no longer held by its minimum count)."""
        who.require(Role.OPERATOR)
        with self._db.unit(who) as uow:
            profile = uow.profiles.resolve(ref)
            period = _period(profile, name)
            uow.schedule.remove(period_id=period.id)
            uow.profiles.remove_period(profile.id, period.id)
            uow.snapshots.release_holds(period_id=period.id)
            target, owner = f"profile:{profile.name}", profile.owner_tenant_id
            self._audit.done(uow, who, "profile.period.remove", target, name, owner=owner)
            return self.saved(uow.profiles.get(profile.id))

    # --- assignments -------------------------------------------------------------------------------
    def assign(self, ref: str, subject_type: SubjectOfProfile, subject_ref: str, who: Principal) -> Assignment:
        who.require(Role.OPERATOR)
        with self._db.unit(who) as uow:
            profile = uow.profiles.resolve(ref)
            subject = _subject(uow, subject_type, subject_ref)
            owner = profile.owner_tenant_id
            if owner is not None and subject.owner_tenant_id not in uow.tenants.subtree_ids(owner):
                raise Forbidden(
                    f"profile {profile.name!r} belongs to a tenant; it can only be assigned to what that tenant owns",
                    profile=profile.id,
                )
            previous = uow.assignments.of_subject(subject.type, subject.id)
            if previous is not None:
                _require_own(uow, previous, subject)
                self._unassign(uow, previous)
            assignment = uow.assignments.put(
                Assignment(profile.id, subject.type, subject.id, subject.name, subject.owner_tenant_id, self._clock())
            )
            now = self._clock()
            for period in profile.periods:
                uow.schedule.add(period.id, subject.type.value, subject.id, next_slot(period, profile.timezone, now))
            target, owner = f"{subject.type}:{subject.name}", subject.owner_tenant_id
            self._audit.done(uow, who, "profile.assign", target, profile.name, owner=owner)
            return assignment

    def put_back(
        self, subject_type: SubjectOfProfile, subject_id: str, profile_id: str | None, who: Principal
    ) -> str | None:
        """Make ``profile_id`` (None: none) the subject's profile again, as a restore brings back a recorded
        configuration; why not, if that profile cannot be assigned any more (deleted, or not the owner's)."""
        with self._db.unit(who) as uow:
            current = uow.assignments.of_subject(subject_type.value, subject_id)
        if (None if current is None else current.profile_id) == profile_id:
            return None
        try:
            if profile_id is None:
                self.unassign(subject_type, subject_id, who)
            else:
                self.assign(profile_id, subject_type, subject_id, who)
        except (NotFound, Forbidden) as exc:  # deleted since, or assigned by a parent the caller may not undo
            return exc.message
        return None

    def unassign(self, subject_type: SubjectOfProfile, subject_ref: str, who: Principal) -> None:
        """The subject's snapshots stay, with their expiry; idempotent."""
        who.require(Role.OPERATOR)
        with self._db.unit(who) as uow:
            subject = _subject(uow, subject_type, subject_ref)
            assignment = uow.assignments.of_subject(subject.type, subject.id)
            if assignment is not None:
                _require_own(uow, assignment, subject)
                self._unassign(uow, assignment)
                target, owner = f"{subject.type}:{subject.name}", subject.owner_tenant_id
                self._audit.done(uow, who, "profile.unassign", target, owner=owner)

    def forget_subject(self, uow: Unit, subject_type: SubjectOfProfile, subject_id: str) -> None:
        """A subject is being deleted (inside ``uow``): its assignment and schedule go with it."""
        assignment = uow.assignments.of_subject(subject_type, subject_id)
        if assignment is not None:
            self._unassign(uow, assignment)

    def _unassign(self, uow: Unit, assignment: Assignment) -> None:
        uow.assignments.remove(assignment.subject_type, assignment.subject_id)
        uow.schedule.remove(subject=(assignment.subject_type.value, assignment.subject_id))
        uow.snapshots.release_holds(subject_id=assignment.subject_id)

    def _reschedule(self, uow: Unit, profile: Profile, period: Period) -> None:
        """The entries of ``period`` on every subject the profile is assigned to, from now on."""
        uow.schedule.remove(period_id=period.id)
        slot = next_slot(period, profile.timezone, self._clock())
        for assignment in uow.assignments.of_profile(profile.id):
            uow.schedule.add(period.id, assignment.subject_type.value, assignment.subject_id, slot)

    # --- preview ---------------------------------------------------------------------------------
    def preview(
        self,
        ref: str,
        at: datetime,
        who: Principal,
        *,
        subject_type: SubjectOfProfile | None = None,
        subject: str | None = None,
    ) -> list[Planned]:
        """Which snapshots of one subject the profile's periods leave at ``at`` (without a zone: in the
        profile's), taking none. With a subject, the snapshots its periods already took of it count too;
        without, a subject assigned from now."""
        if (subject_type is None) != (subject is None):
            raise InvalidInput("a preview of a subject names both its type and the subject")
        with self._db.unit(who) as uow:
            profile = uow.profiles.resolve(ref)
            if at.tzinfo is None:  # a wall-clock time, as the profile's periods are written: in its zone
                at = at.replace(tzinfo=ZoneInfo(profile.timezone))
            existing = _existing(uow, profile, subject_type, subject)
        return preview(profile, existing, self._clock(), at)

    def timeline(
        self,
        ref: str,
        until: datetime,
        who: Principal,
        *,
        subject_type: SubjectOfProfile | None = None,
        subject: str | None = None,
    ) -> tuple[Profile, list[Lifetime]]:
        """The profile, and every snapshot of one subject its periods leave at some time from now until
        ``until``, with when each goes (:func:`~snapkeep.model.schedule.lifetimes`: the preview at every
        point at once); with a subject, its snapshots the periods already took count too. Any role."""
        if (subject_type is None) != (subject is None):
            raise InvalidInput("a timeline of a subject names both its type and the subject")
        with self._db.unit(who) as uow:
            profile = uow.profiles.resolve(ref)
            existing = _existing(uow, profile, subject_type, subject)
        return profile, lifetimes(profile, existing, self._clock(), until)

    # --- installed profiles ------------------------------------------------------------------------
    def install(self) -> bool:
        """At the first start of a catalog: the installed profiles, System Snapshots assigned to the system.
        Once only: profiles an operator deleted or changed stay as the operator left them. A start cut short
        while installing completes the install at the next (what exists already is kept)."""
        with self._db.unit() as uow:
            if uow.meta.get(_INSTALLED) is not None:
                return False
            existing = {p.name for p in uow.profiles.list(owned_by=None) if p.owner_tenant_id is None}
            system_assigned = uow.assignments.of_subject(SubjectOfProfile.SYSTEM, WHOLE_SYSTEM) is not None
        for profile in installed_profiles():
            if profile.name not in existing:
                self.create(
                    profile.name,
                    SYSTEM,
                    description=profile.description,
                    timezone=profile.timezone,
                    periods=profile.periods,
                    ignore_warning=profile.ignore_warning,
                )
        if not system_assigned:
            self.assign(SYSTEM_PROFILE, SubjectOfProfile.SYSTEM, WHOLE_SYSTEM, SYSTEM)
        with self._db.unit() as uow:
            mark_installed(uow, self._clock())
        return True


def mark_installed(uow: Unit, at: datetime) -> None:
    """Count the installed profiles as installed: :meth:`Profiles.install` makes none any more. A catalog
    rebuilt with the system's own profiles is marked so, or a profile the operator had deleted would come back."""
    uow.meta.put(_INSTALLED, at.isoformat())


def _require_own(uow: Unit, assignment: Assignment, subject: Subject) -> None:
    """A profile put on a subject from above (a parent's, the system's) is not the subject's owner's to take
    away or replace: only callers who see that profile may."""
    try:
        uow.profiles.get(assignment.profile_id)
    except NotFound:
        raise Forbidden(
            f"{subject.type} {subject.name!r} has a profile assigned by your parent; only it can change that",
            subject=subject.id,
        ) from None


def _existing(
    uow: Unit, profile: Profile, subject_type: SubjectOfProfile | None, subject: str | None
) -> list[Existing]:
    """The snapshots the profile's periods already took of the subject (none without a subject)."""
    if subject_type is None or subject is None:
        return []
    found = _subject(uow, subject_type, subject)
    names = {p.id: p.name for p in profile.periods}
    return [
        Existing(snap.name, names[snap.period_id or ""], snap.created_at, snap.expires_at, snap.immutable)
        for snap in uow.snapshots.taken_by(found.id, tuple(names))
    ]


def _period(profile: Profile, name: str) -> Period:
    for period in profile.periods:
        if period.name == name:
            return period
    raise NotFound(f"profile {profile.name!r} has no period {name!r}", period=name)


def _subject(uow: Unit, subject_type: SubjectOfProfile, ref: str) -> Subject:
    """The subject ``ref`` of ``subject_type`` as the caller's scope sees it."""
    if subject_type is SubjectOfProfile.SYSTEM:
        if ref != WHOLE_SYSTEM:
            raise NotFound(f"the system is addressed as {WHOLE_SYSTEM!r}, not {ref!r}", ref=ref)
        if uow.tenants.owner(None) is not None:
            raise NotFound("the system is outside this scope").hiding()
        return Subject(subject_type, WHOLE_SYSTEM, WHOLE_SYSTEM, None)
    if subject_type is SubjectOfProfile.TENANT:
        tenant = uow.tenants.resolve(ref)
        return Subject(subject_type, tenant.id, tenant.name, tenant.id)
    found = (uow.vms if subject_type is SubjectOfProfile.VM else uow.volumes).resolve(ref)
    return Subject(subject_type, found.id, found.name, found.owner_tenant_id)


@dataclass(frozen=True)
class Upcoming:
    """One period on one subject, as ``snapkeep scheduler status`` lists it."""

    assignment: Assignment
    profile: str
    period: str
    entry: ScheduleEntry


def upcoming(db: Database, who: Principal, window: Window) -> Page[Upcoming]:
    """The scheduled (subject, period) pairs the caller sees that will run again, soonest first, a page at a
    time. A subject of the caller's may have its parent's profile: its name and periods are shown."""
    with db.unit(who) as uow:
        page = uow.assignments.scheduled(window)
    found = [Upcoming(assignment, profile, period, entry) for entry, assignment, profile, period in page.items]
    return Page(found, page.next)
