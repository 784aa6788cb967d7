"""The dashboard's numbers, from the catalog's counting queries (services/overview.py): each counts what the
caller's scope sees, no more, and the last day's failures stop at the day's start."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import Job, JobStatus, SnapshotStatus, Tenant, VolumeRecord
from snapkeep.services.audit import Audit
from snapkeep.services.overview import overview
from snapkeep.storage.pool import Pool
from tests.unit.test_catalog_pages import T0, snapshot

A = Principal("a-admin", Role.ADMIN, "t-a")
B = Principal("b-admin", Role.ADMIN, "t-b")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    database = Database(engine)
    with database.unit() as uow:
        uow.tenants.insert(Tenant("t-a", "a", None, "", T0))
        uow.tenants.insert(Tenant("t-a1", "a1", "t-a", "", T0))
        uow.tenants.insert(Tenant("t-b", "b", None, "", T0))
    yield database
    engine.dispose()


def _volume(owner: str | None) -> VolumeRecord:
    name = f"v-{uuid.uuid4().hex[:8]}"
    return VolumeRecord(str(uuid.uuid4()), name, "", 1 << 20, owner, f"volumes/{name}", {}, T0)


def _job(owner: str | None, status: JobStatus, finished_hours_ago: float) -> Job:
    finished = T0 - timedelta(hours=finished_hours_ago)
    return Job(str(uuid.uuid4()), "snapshot.take", status, 1.0, "", {}, None, None, finished, finished, owner)


def test_counts_and_tallies_follow_the_scope(db: Database) -> None:
    with db.unit() as uow:
        for owner in (None, None, "t-a", "t-a1", "t-b"):
            uow.volumes.insert(_volume(owner))
        uow.snapshots.insert(snapshot(T0, owner_tenant_id=None, exclusive_bytes=100))
        uow.snapshots.insert(snapshot(T0, owner_tenant_id="t-a1", exclusive_bytes=7, status=SnapshotStatus.HELD))
        uow.snapshots.insert(snapshot(T0, owner_tenant_id="t-a1"))
        uow.snapshots.insert(snapshot(T0, owner_tenant_id="t-b", exclusive_bytes=1000))
    with db.unit() as uow:
        assert uow.volumes.count() == 5
        assert uow.snapshots.tally() == {SnapshotStatus.READY: (3, 2, 1100), SnapshotStatus.HELD: (1, 1, 7)}
    with db.unit(A) as uow:
        assert uow.volumes.count() == 2  # its own and its child's
        assert uow.snapshots.tally() == {SnapshotStatus.READY: (1, 0, 0), SnapshotStatus.HELD: (1, 1, 7)}
    with db.unit(B) as uow:
        assert uow.volumes.count() == 1
        assert uow.snapshots.tally() == {SnapshotStatus.READY: (1, 1, 1000)}


def test_failures_since_a_time_in_the_scope_newest_first(db: Database) -> None:
    with db.unit() as uow:
        recent = uow.jobs.insert(_job("t-a", JobStatus.FAILED, 1))
        newest = uow.jobs.insert(_job(None, JobStatus.FAILED, 0.5))
        uow.jobs.insert(_job("t-a", JobStatus.FAILED, 30))  # before the day
        uow.jobs.insert(_job("t-a", JobStatus.SUCCEEDED, 1))
        uow.jobs.insert(_job("t-b", JobStatus.FAILED, 1))
    since = T0 - timedelta(days=1)
    with db.unit() as uow:
        assert [j.id for j in uow.jobs.failed_since(since, 10)][:2] == [newest.id, recent.id]
        assert len(uow.jobs.failed_since(since, 10)) == 3
        assert len(uow.jobs.failed_since(since, 1)) == 1
    with db.unit(A) as uow:
        assert [j.id for j in uow.jobs.failed_since(since, 10)] == [recent.id]


def test_the_audit_logs_failures_of_the_day_are_each_scopes_own_as_its_audit_log_shows_them(db: Database) -> None:
    """A tenant's dashboard lists its subtree's failures, an actor above it masked as in the audit log."""
    hours = T0 - timedelta(hours=2), T0 - timedelta(hours=1), T0 - timedelta(hours=30)
    admin = Principal("root-admin", Role.ADMIN, None)
    with db.unit() as uow:
        uow.audit.append(hours[0], admin, "snapshot.take", "volume:docs/a", "failed", "disk full", None)
        uow.audit.append(hours[0], admin, "snapshot.take", "volume:a-files", "failed", "disk full", "t-a1")
        uow.audit.append(hours[1], A, "volume.delete", "volume:a-old", "failed", "busy", "t-a")
        uow.audit.append(hours[1], A, "volume.delete", "volume:a-gone", "done", "", "t-a")
        uow.audit.append(hours[1], B, "volume.delete", "volume:b-old", "failed", "busy", "t-b")
        uow.audit.append(hours[2], A, "snapshot.take", "volume:a-files", "failed", "old", "t-a")
    audit = Audit(db, lambda: T0)

    def failures(who: Principal) -> list[tuple[str, str]]:
        view = overview(db, FixedPool(), lambda: T0, audit, who)
        assert (view.space is None) == (who.tenant_id is not None)  # the host's disk is the system's
        return [(e.actor, e.target) for e in view.failed_audit]

    assert failures(A) == [("a-admin", "volume:a-old"), ("parent", "volume:a-files")]
    assert failures(B) == [("b-admin", "volume:b-old")]
    assert len(failures(admin)) == 4 and ("root-admin", "volume:docs/a") in failures(admin)


class FixedPool(Pool):
    """A pool of 100 bytes with 40 free: all the overview reads of one."""

    def __init__(self) -> None:
        pass

    def size_bytes(self) -> int:
        return 100

    def free_bytes(self) -> int:
        return 40
