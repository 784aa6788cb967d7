"""Which expired snapshots the expiry sweep deletes, and which their period holds (SPEC §2, §4).

A snapshot whose expiry has passed is deleted, unless a period holds it: it was taken by a period that is
still on its subject's schedule, and it is one of that period's newest ``min_snapshots`` snapshots of the
subject. Then it is marked ``held`` instead, and stays until a newer snapshot of the period (or a change to
the period or the assignment) releases it, after which the next sweep decides again. A snapshot taken by
hand has only its own expiry, and so has the record of a take that failed. Only what is due is read, and
each hold is decided through indexes on (subject, period), so a sweep costs what is due.
"""

from __future__ import annotations

from datetime import datetime

from snapkeep.catalog.stores import Unit
from snapkeep.errors import NotFound
from snapkeep.model.types import Snapshot, SnapshotStatus


def expired_unheld(uow: Unit, now: datetime) -> list[Snapshot]:
    """The scope's expired ``ready`` snapshots that no period holds, soonest expired first; those a period
    holds are marked ``held`` in ``uow``."""
    return [snap for snap in uow.snapshots.due(now) if not _hold(uow, snap)]


def still_unheld(uow: Unit, snap_id: str, now: datetime) -> Snapshot | None:
    """``snap_id`` as it is now if the sweep may still delete it: there, due (expired, ``ready`` or
    ``failed``) and held by no period; else None (a held one is marked so). The sweep decides again, under
    the snapshot's and its period's guards, right before deleting: between its first read and then, the
    period's newest snapshot may have been deleted, making this one the newest it must keep."""
    try:
        snap = uow.snapshots.get(snap_id)
    except NotFound:
        return None
    due = snap.expires_at is not None and snap.expires_at <= now
    if not due or snap.status not in (SnapshotStatus.READY, SnapshotStatus.FAILED) or _hold(uow, snap):
        return None
    return snap


def _hold(uow: Unit, snap: Snapshot) -> bool:
    """Mark ``snap`` held if its period keeps it past expiry; whether it did."""
    if snap.period_id is None:
        return False
    keep = uow.schedule.minimum(snap.period_id, snap.subject_id)
    if snap.id not in uow.snapshots.newest_of_period(snap.subject_id, snap.period_id, keep):
        return False
    uow.snapshots.update(snap.id, status=SnapshotStatus.HELD)
    return True
