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
comes (a once period: for a day); then that slot is given up and audited, and so is a slot whose name a
snapshot of someone else's already has. After downtime, an entry the scheduler sees more than :data:`LATE`
after its slot takes one catch-up snapshot for the newest missed slot, or none when the period says
``skip_missed``; either way the next slot is the first one after now. Lateness is judged when the pass sees
the entry due, not when a busy lane gets to it: waiting behind slow subjects is no downtime.

Each take starts by reading its entry again: a profile unassigned, deleted or changed while the take
waited in the lane takes nothing. Whatever goes wrong, the entry leaves ``running``: a take that raises
something unexpected is retried like a failed one.
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
from snapkeep.services.subjects.base import WHOLE_SYSTEM

log = logging.getLogger(__name__)

LATE = timedelta(minutes=5)  # a slot passed by more than this was missed (the service was down)
FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(hours=1)
ONCE_RETRIED_FOR = timedelta(days=1)  # a once period has no next slot to give way to
BATCH = 1000  # due entries handled per pass; the rest come in the next pass, a few seconds later
# Windows in which the newest missed slot is looked for, each larger than the longest gap between two slots of
# some frequency (interval, hourly, daily, weekly, monthly, yearly; with room for DST and 29 February).
_LOOK_BACK = tuple(timedelta(minutes=m) for m in (2, 125, 2 * 1500, 8 * 1440, 32 * 1440, 367 * 1440, 1500 * 1440))


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
    """The newest slot of the entry's period at or before ``now`` (the entry's own slot if none is newer).
    Looked for in windows before ``now`` that grow until one holds a slot, so that a year of downtime of a
    one-minute period costs a few slots, not half a million."""
    newest = due.entry.slot
    assert newest is not None  # due entries have a slot
    for gap in _LOOK_BACK:
        start = max(newest, now - gap)
        found = None
        for slot in slots_between(due.period, due.timezone, start, now):
            found = slot
        if found is not None:
            return found
        if start == newest:
            break
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
        seen = self._clock()
        with self._db.unit() as uow:
            due = uow.schedule.due(seen, BATCH)
            for item in due:
                uow.schedule.update(item.entry.id, running_since=seen)
        key = lambda item: (item.entry.subject_type, item.entry.subject_id)  # noqa: E731
        batches = [list(items) for _key, items in groupby(sorted(due, key=key), key=key)]
        jobs: list[Job] = []
        try:
            for batch in batches:
                jobs.append(self._submit(batch, seen))
        except BaseException:  # the entries of no job must not stay 'running' until the next start: due again
            with self._db.unit() as uow:
                for batch in batches[len(jobs) :]:
                    for item in batch:
                        uow.schedule.update(item.entry.id, running_since=None)
            raise
        return jobs

    def _submit(self, batch: list[Due], seen: datetime) -> Job:
        """One job for the due entries of one subject."""
        entry = batch[0].entry
        periods = [d.period.name for d in batch]
        params = {"subject_type": entry.subject_type, "subject_id": entry.subject_id, "periods": periods}
        run = self._runner(batch, seen)
        return self._jobs.submit(
            "snapshot.scheduled", params, run, Lane.SCHEDULED, owner_tenant_id=batch[0].owner_tenant_id
        )

    def _runner(self, batch: list[Due], seen: datetime) -> Callable[[Progress], dict[str, object]]:
        def run(progress: Progress) -> dict[str, object]:
            outcomes = []
            for done, due in enumerate(batch):
                progress(done / len(batch), f"period {due.period.name}")
                outcomes.append(self._run_safely(due.entry.id, seen))
            failed = [o.error for o in outcomes if o.error]
            if failed:  # the job shows failed; every other period of the subject still ran
                raise ScheduledTakeFailed("; ".join(failed))
            taken = [o.snapshot_id for o in outcomes if o.snapshot_id]
            return {"snapshots": taken, "skipped": sum(o.skipped for o in outcomes)}

        return run

    def _run_safely(self, entry_id: int, seen: datetime) -> Outcome:
        try:
            with self._db.unit() as uow:
                due = uow.schedule.due_entry(entry_id)
            if due is None or due.entry.running_since != seen:  # unassigned, removed or rescheduled meanwhile
                return Outcome(entry_id)
            return self._run_one(due, seen)
        except Exception as exc:  # the entry must not stay 'running': retried like a failed take
            log.exception("scheduled entry %s failed", entry_id)
            with self._db.unit() as uow:
                failures = (entry.failures + 1) if (entry := uow.schedule.get(entry_id)) else 1
                retry = self._clock() + min(FIRST_RETRY * 2 ** (failures - 1), LAST_RETRY)
                uow.schedule.update(entry_id, next_due=retry, failures=failures, running_since=None)
            return Outcome(entry_id, error=f"internal error: {exc!r}")

    def _run_one(self, due: Due, seen: datetime) -> Outcome:
        entry, period = due.entry, due.period
        slot = newest_slot_by(due, seen)
        target = f"{entry.subject_type}:{entry.subject_id}"
        if seen - slot > LATE and entry.failures == 0 and period.skip_missed:
            self._advance(entry, snapshot_id=None)
            with self._db.unit() as uow:
                missed = f"{due.profile_name}/{period.name} missed {slot.isoformat()}"
                self._audit.done(uow, SYSTEM, "schedule.skip", target, missed, owner=due.owner_tenant_id)
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
        except NameClash:
            return self._name_taken(due, slot, request)
        except SnapkeepError as exc:
            return self._failed(due, slot, exc.message)
        self._advance(entry, snapshot_id=snap.id)
        return Outcome(entry.id, snapshot_id=snap.id)

    def _name_taken(self, due: Due, slot: datetime, request: TakeRequest) -> Outcome:
        """The slot's name is taken: by this period's own snapshot (a crash came between the take and the
        entry moving on: nothing is lost), or by another snapshot (the slot is given up, audited)."""
        with self._db.unit() as uow:
            found = uow.snapshots.find(request.subject_type, due.entry.subject_id, request.name)
        if found is not None and found.period_id == due.period.id:  # as if just taken: holds released
            self._advance(due.entry, snapshot_id=found.id)
            return Outcome(due.entry.id)
        why = f"a snapshot named {request.name!r} exists already"
        with self._db.unit() as uow:
            target = f"{due.entry.subject_type}:{due.entry.subject_id}"
            detail = f"{due.profile_name}/{due.period.name} slot {slot.isoformat()}: {why} (given up)"
            self._audit.failed(uow, SYSTEM, "schedule.take", target, detail, owner=due.owner_tenant_id)
        self._advance(due.entry, snapshot_id=None, error=why)
        return Outcome(due.entry.id, error=why)

    def _advance(self, entry: ScheduleEntry, snapshot_id: str | None, error: str | None = None) -> None:
        """The entry waits for its next slot after now."""
        now = self._clock()
        with self._db.unit() as uow:
            due = uow.schedule.due_entry(entry.id)
            if due is None:  # unassigned or removed meanwhile
                return
            upcoming = next_slot(due.period, due.timezone, now)
            changes: dict[str, object] = {"slot": upcoming, "next_due": upcoming, "failures": 0, "running_since": None}
            if error is not None:
                changes["last_error"] = error
            if snapshot_id is not None:
                changes.update(last_run=now, last_snapshot_id=snapshot_id, last_error=None)
                # a newer snapshot of the period: the sweep decides again which older ones it still holds
                uow.snapshots.release_holds(period_id=entry.period_id, subject_id=entry.subject_id)
            uow.schedule.update(entry.id, **changes)

    def _failed(self, due: Due, slot: datetime, why: str) -> Outcome:
        """Retry with back-off until the next slot (a once period: for a day); then give this slot up."""
        now = self._clock()
        entry = due.entry
        wait = min(FIRST_RETRY * 2**entry.failures, LAST_RETRY)
        deadline = next_slot(due.period, due.timezone, slot) or slot + ONCE_RETRIED_FOR
        gives_up = now + wait >= deadline
        with self._db.unit() as uow:
            target = f"{entry.subject_type}:{entry.subject_id}"
            detail = f"{due.profile_name}/{due.period.name} slot {slot.isoformat()}: {why}"
            then = " (given up: the next slot comes)" if gives_up else f" (retried in {wait})"
            self._audit.failed(uow, SYSTEM, "schedule.take", target, detail + then, owner=due.owner_tenant_id)
            if gives_up:
                upcoming = next_slot(due.period, due.timezone, now)
                changes: dict[str, object] = {"slot": upcoming, "next_due": upcoming, "failures": 0}
            else:
                changes = {"next_due": now + wait, "failures": entry.failures + 1}
            uow.schedule.update(entry.id, **changes, last_error=why, running_since=None)
        return Outcome(entry.id, error=why)
