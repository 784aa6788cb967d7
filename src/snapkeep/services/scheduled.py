"""Scheduled snapshots: the periods of assigned profiles, taken when they come due (SPEC §4).

The scheduler's loop calls :meth:`ScheduledTakes.run_due` every few seconds. It reads the due entries (an
indexed query: its cost is what is due, not what is scheduled), marks them running, and hands each
subject's due periods to one job in the scheduled lane, so that a slow subject (a guest agent that takes
its whole timeout) holds one worker and never the others' snapshots. Within one subject the periods run
one after another (a subject takes one operation at a time); several periods due at the same minute all
run, one snapshot each.

A snapshot is taken through :meth:`Snapshots.take`, as a manual one is, named ``<period>_<YYYYMMDD>_<HHMM>``
after the slot it stands for (in the profile's zone), expiring at created + retention, attributed to its
period. A take that fails is retried with back-off (30 s, doubling, at most an hour) until the next slot
comes; then that slot is given up and recorded. After downtime, an entry whose slot has passed by more
than :data:`LATE` takes one catch-up snapshot for the newest missed slot, or none when the period says
``skip_missed``; either way the next slot is the first one after now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from snapkeep.catalog.db import Database
from snapkeep.errors import NameClash, ScheduledTakeFailed, SnapkeepError
from snapkeep.model.principal import SYSTEM
from snapkeep.model.profile import Due, ScheduleEntry, SubjectOfProfile
from snapkeep.model.schedule import next_slot, slots_between, snapshot_name
from snapkeep.model.types import Job
from snapkeep.services.audit import Audit
from snapkeep.services.jobs import JobRunner, Lane, Progress
from snapkeep.services.snapshots import Snapshots, TakeRequest
from snapkeep.services.subjects.system import WHOLE_SYSTEM

log = logging.getLogger(__name__)

LATE = timedelta(minutes=5)  # a slot passed by more than this was missed (the service was down)
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)
BATCH = 1000  # due entries handled per pass; the rest come in the next pass, a few seconds later
# How far back the newest missed slot can lie from its successor: the longest gap between two slots.
_LONGEST_GAP = timedelta(days=367)


@dataclass(frozen=True)
class Outcome:
    """What one due entry came to: a snapshot, a catch-up skipped, or a failure to be retried."""

    entry_id: int
    snapshot_id: str | None = None
    skipped: bool = False
    error: str | None = None


def take_target(subject_type: str, subject_id: str) -> tuple[str, str]:
    """(snapshot subject type, ref) of a profile's subject: the system and a tenant take system snapshots
    (a tenant's own), VMs and volumes their own kind."""
    if subject_type == SubjectOfProfile.SYSTEM:
        return ("system", WHOLE_SYSTEM)
    if subject_type == SubjectOfProfile.TENANT:
        return ("system", subject_id)
    return (subject_type, subject_id)


def newest_slot_by(due: Due, now: datetime) -> datetime:
    """The newest slot of the entry's period at or before ``now`` (the entry's own slot if none is newer)."""
    newest = due.entry.slot
    assert newest is not None  # due entries have a slot
    for slot in slots_between(due.period, due.timezone, newest, now):
        newest = slot
    return newest


class ScheduledTakes:
    def __init__(
        self, db: Database, snapshots: Snapshots, jobs: JobRunner, audit: Audit, clock: Callable[[], datetime]
    ) -> None:
        self._db = db
        self._snapshots = snapshots
        self._jobs = jobs
        self._audit = audit
        self._clock = clock

    def run_due(self) -> list[Job]:
        """Start a job for every subject with due entries; the jobs started."""
        now = self._clock()
        with self._db.unit() as uow:
            due = uow.schedule.due(now, BATCH)
            for item in due:
                uow.schedule.update(item.entry.id, running_since=now)
        key = lambda item: (item.entry.subject_type, item.entry.subject_id)  # noqa: E731
        jobs = []
        for (subject_type, subject_id), items in groupby(sorted(due, key=key), key=key):
            batch = list(items)
            params = {"subject_type": subject_type, "subject_id": subject_id, "periods": [d.period.name for d in batch]}
            owner = batch[0].owner_tenant_id
            run = self._runner(batch)
            jobs.append(self._jobs.submit("snapshot.scheduled", params, run, Lane.SCHEDULED, owner_tenant_id=owner))
        return jobs

    def _runner(self, batch: list[Due]) -> Callable[[Progress], dict[str, object]]:
        def run(progress: Progress) -> dict[str, object]:
            outcomes = []
            for done, due in enumerate(batch):
                progress(done / len(batch), f"period {due.period.name}")
                outcomes.append(self._run_one(due))
            failed = [o.error for o in outcomes if o.error]
            if failed:  # the job shows failed; every other period of the subject still ran
                raise ScheduledTakeFailed("; ".join(failed))
            taken = [o.snapshot_id for o in outcomes if o.snapshot_id]
            return {"snapshots": taken, "skipped": sum(o.skipped for o in outcomes)}

        return run

    def _run_one(self, due: Due) -> Outcome:
        now = self._clock()
        entry, period = due.entry, due.period
        slot = newest_slot_by(due, now)
        target = f"{entry.subject_type}:{entry.subject_id}"
        if now - slot > LATE and entry.failures == 0 and period.skip_missed:
            self._advance(entry, now, snapshot_id=None)
            with self._db.unit() as uow:
                missed = f"{due.profile_name}/{period.name} missed {slot.isoformat()}"
                self._audit.done(uow, SYSTEM.name, "schedule.skip", target, missed)
            return Outcome(entry.id, skipped=True)
        subject_type, ref = take_target(entry.subject_type, entry.subject_id)
        request = TakeRequest(
            ref=ref,
            name=snapshot_name(period.name, slot, due.timezone),
            subject_type=subject_type,
            keep_for=period.retention,
            quiesce=period.quiesce and subject_type in ("vm", "volume"),
            immutable=period.immutable,
            origin=f"{due.profile_name}/{period.name}",
            private=period.private if subject_type == "system" else None,
            selection=period.selection,
            period_id=period.id,
        )
        try:
            snap = self._snapshots.take(request, who=SYSTEM)
        except NameClash:  # this slot was taken already (a crash after the take, before the entry moved on)
            self._advance(entry, now, snapshot_id=None)
            return Outcome(entry.id)
        except SnapkeepError as exc:
            return self._failed(due, slot, now, exc.message)
        except Exception as exc:  # an unexpected error must not stop the schedule of this entry
            log.exception("scheduled take %s failed", request.name)
            return self._failed(due, slot, now, f"internal error: {exc!r}")
        self._advance(entry, now, snapshot_id=snap.id)
        return Outcome(entry.id, snapshot_id=snap.id)

    def _advance(self, entry: ScheduleEntry, now: datetime, snapshot_id: str | None) -> None:
        """The entry waits for its next slot after now."""
        with self._db.unit() as uow:
            due = uow.schedule.due_entry(entry.id)
            if due is None:  # unassigned or removed meanwhile
                return
            upcoming = next_slot(due.period, due.timezone, now)
            changes: dict[str, object] = {"slot": upcoming, "next_due": upcoming, "failures": 0, "running_since": None}
            if snapshot_id is not None:
                changes.update(last_run=now, last_snapshot_id=snapshot_id, last_error=None)
                # a newer snapshot of the period: the sweep decides again which older ones it still holds
                uow.snapshots.release_holds(period_id=entry.period_id, subject_id=entry.subject_id)
            uow.schedule.update(entry.id, **changes)

    def _failed(self, due: Due, slot: datetime, now: datetime, why: str) -> Outcome:
        """Retry with back-off until the next slot; then give this slot up."""
        entry = due.entry
        wait = min(FIRST_RETRY * 2**entry.failures, LAST_RETRY)
        upcoming = next_slot(due.period, due.timezone, slot)
        gives_up = upcoming is None or now + wait >= upcoming
        with self._db.unit() as uow:
            target = f"{entry.subject_type}:{entry.subject_id}"
            detail = f"{due.profile_name}/{due.period.name} slot {slot.isoformat()}: {why}"
            then = " (given up: the next slot comes)" if gives_up else f" (retried in {wait})"
            self._audit.failed(uow, SYSTEM.name, "schedule.take", target, detail + then)
            if gives_up:
                upcoming = next_slot(due.period, due.timezone, now)
                changes: dict[str, object] = {"slot": upcoming, "next_due": upcoming, "failures": 0}
            else:
                changes = {"next_due": now + wait, "failures": entry.failures + 1}
            uow.schedule.update(entry.id, **changes, last_error=why, running_since=None)
        return Outcome(entry.id, error=why)
