"""Imports of one object's state out of a system snapshot, where a review found them wrong (each test failed
before its fix): an import from a snapshot held past its expiry by its period's minimum was deleted by the
next sweep, and an import whose name a failed take had left could never be made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from snapkeep.model.principal import SYSTEM
from snapkeep.model.profile import Frequency, Period, SubjectOfProfile
from snapkeep.model.types import JobStatus, SnapshotKind, SnapshotStatus, SubjectType
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from tests.conftest import TestClock

MB = 1 << 20


def at(clock: TestClock, when: datetime) -> None:
    clock.advance(when - clock())


def system_snapshots(svc: Services) -> list[tuple[str, SnapshotStatus]]:
    return [(s.name, s.status) for s in svc.snapshots.listing(who=SYSTEM) if s.kind is SnapshotKind.SYSTEM]


def test_an_import_from_a_held_snapshot_is_kept_by_the_sweep(services: Services, clock: TestClock) -> None:
    docs = services.volumes.create("docs", size_limit=64 * MB, who=SYSTEM)
    at(clock, datetime(2027, 3, 1, 0, 0, tzinfo=UTC))
    daily = Period("daily", Frequency.DAILY, hour=2, retention=timedelta(days=1), min_snapshots=3)
    services.profiles.create("nightly", SYSTEM, periods=(daily,))
    services.profiles.assign("nightly", SubjectOfProfile.SYSTEM, "system", SYSTEM)
    for day in range(1, 5):
        at(clock, datetime(2027, 3, day, 2, 0, 1, tzinfo=UTC))
        for job in services.scheduled.run_due():
            assert services.jobs.wait(job.id, 60, SYSTEM).status is JobStatus.SUCCEEDED
    services.snapshots.sweep_expired(SYSTEM)
    held = SnapshotStatus.HELD
    assert system_snapshots(services)[:2] == [("daily_20270302_0200", held), ("daily_20270303_0200", held)]
    source = next(s for s in services.snapshots.listing(who=SYSTEM) if s.name == "daily_20270302_0200")

    imported = services.imports.run(source.id, SubjectType.VOLUME, "docs", who=SYSTEM)
    assert imported.expires_at is None and imported.period_id is None  # asked for: kept, and no period's
    clock.advance(timedelta(minutes=1))
    services.snapshots.sweep_expired(SYSTEM)
    assert [s.name for s in services.snapshots.listing(docs.id, "volume", who=SYSTEM)] == ["daily_20270302_0200"]
    assert len(system_snapshots(services)) == 3  # the period's minimum counts its own snapshots only


def broken_capture(*_: object) -> None:
    raise OSError(5, "I/O error")


def test_an_import_takes_the_name_a_failed_take_left(
    services: Services, clock: TestClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = services.volumes.create("docs", size_limit=64 * MB, who=SYSTEM)
    source = services.snapshots.take(TakeRequest("system", "before-upgrade", subject_type="system"), who=SYSTEM)
    with monkeypatch.context() as faults:  # fault switch: the capture fails, the take's row stays, failed
        faults.setattr(services.pool, "capture", broken_capture)
        with pytest.raises(OSError, match="I/O error"):
            services.snapshots.take(TakeRequest(docs.id, "before-upgrade"), who=SYSTEM)
    [failed] = services.snapshots.listing(docs.id, "volume", who=SYSTEM)
    assert failed.status is SnapshotStatus.FAILED

    imported = services.imports.run(source.id, SubjectType.VOLUME, "docs", who=SYSTEM)  # before: a UNIQUE conflict
    assert imported.name == "before-upgrade" and imported.status is SnapshotStatus.READY
    assert [s.id for s in services.snapshots.listing(docs.id, "volume", who=SYSTEM)] == [imported.id]
