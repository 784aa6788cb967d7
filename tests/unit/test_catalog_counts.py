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
        uow.audit.append(T0 - timedelta(hours=2), "x", "snapshot.take", "volume:docs/a", "failed", "disk full", None)
        uow.audit.append(T0 - timedelta(hours=1), "x", "snapshot.take", "volume:docs/b", "done", "", None)
        uow.audit.append(T0 - timedelta(hours=30), "x", "snapshot.take", "volume:docs/c", "failed", "old", None)
    since = T0 - timedelta(days=1)
    with db.unit() as uow:
        assert [j.id for j in uow.jobs.failed_since(since, 10)][:2] == [newest.id, recent.id]
        assert len(uow.jobs.failed_since(since, 10)) == 3
        assert len(uow.jobs.failed_since(since, 1)) == 1
        assert [e.target for e in uow.audit.failed_since(since, 10)] == ["volume:docs/a"]
    with db.unit(A) as uow:
        assert [j.id for j in uow.jobs.failed_since(since, 10)] == [recent.id]
