"""Profiles on real services and a real pool: what an operator saves is checked, assignments put periods on
the schedule, due periods take real snapshots named after their slot, failures are retried, downtime is
caught up or skipped as the period says, and minimum counts hold expired snapshots until replaced.

Time moves through the services' clock (``TestClock``); the scheduler's pass is called directly, as its
loop would call it, and the test waits for the jobs it started.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from snapkeep.errors import Conflict, Forbidden, InvalidSchedule, NameClash
from snapkeep.model.paging import Window
from snapkeep.model.principal import SYSTEM
from snapkeep.model.profile import Frequency, Period, ScheduleEntry, SubjectOfProfile
from snapkeep.model.types import JobStatus, Snapshot, SnapshotStatus
from snapkeep.services.container import Services
from snapkeep.services.profiles import upcoming
from snapkeep.services.snapshots import TakeRequest
from tests.conftest import TestClock

MB = 1 << 20
VOLUME = SubjectOfProfile.VOLUME


def at(clock: TestClock, when: datetime) -> None:
    """Move the services' clock to ``when`` (it then runs on from there with real time)."""
    clock.advance(when - clock())


def run_schedule(svc: Services) -> list[str]:
    """One pass of the scheduler over due periods, waiting for the jobs it starts; their ids."""
    jobs = svc.scheduled.run_due()
    for job in jobs:
        assert svc.jobs.wait(job.id, 60, SYSTEM).status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    return [job.id for job in jobs]


def entries(svc: Services) -> list[ScheduleEntry]:
    """The scheduler's entries, as ``scheduler status`` lists them."""
    return [u.entry for u in upcoming(svc.db, SYSTEM, Window(1000)).items]


def scheduled(svc: Services, volume: str) -> list[Snapshot]:
    return sorted(
        (s for s in svc.snapshots.listing(volume, who=SYSTEM) if s.origin != "manual"), key=lambda s: s.created_at
    )


def daily(name: str = "daily", hour: int = 2, minute: int = 30, **rules: object) -> Period:
    return Period(name=name, frequency=Frequency.DAILY, hour=hour, minute=minute, **rules)  # type: ignore[arg-type]


@pytest.fixture
def docs(services: Services) -> str:
    return services.volumes.create("docs", size_limit=64 * MB, who=SYSTEM).id


def test_a_profile_with_an_impossible_period_is_refused_and_nothing_is_saved(services: Services) -> None:
    with pytest.raises(InvalidSchedule, match="minute"):
        services.profiles.create("bad", SYSTEM, periods=(daily(minute=61),))
    with pytest.raises(InvalidSchedule):
        services.profiles.create("bad", SYSTEM, periods=(Period("feb", Frequency.YEARLY, month=2, day_of_month=30),))
    past = datetime(2020, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidSchedule, match="past"):
        services.profiles.create("bad", SYSTEM, periods=(Period("once", Frequency.ONCE, at=past),))
    with pytest.raises(InvalidSchedule):
        services.profiles.create("bad", SYSTEM, timezone="Mars/Olympus")
    assert services.profiles.listing(SYSTEM) == []
    services.profiles.create("good", SYSTEM, periods=(daily(),))
    with pytest.raises(NameClash):
        services.profiles.create("good", SYSTEM)


def test_the_estimate_warns_above_the_threshold_unless_told_not_to(services: Services) -> None:
    every_minute = Period("often", Frequency.INTERVAL, interval_minutes=1, retention=timedelta(days=1))
    saved = services.profiles.create("busy", SYSTEM, periods=(every_minute,))
    assert saved.estimate == 1440 and saved.warnings and "200" in saved.warnings[0]
    quiet = services.profiles.create("quiet", SYSTEM, periods=(every_minute,), ignore_warning=True)
    assert quiet.estimate == 1440 and quiet.warnings == ()


def test_a_due_period_takes_a_snapshot_named_after_its_slot(services: Services, clock: TestClock, docs: str) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    period = daily(retention=timedelta(days=3))
    services.profiles.create("nightly", SYSTEM, periods=(period,))
    services.profiles.assign("nightly", VOLUME, "docs", SYSTEM)
    assert run_schedule(services) == []  # nothing is due at 01:00

    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    assert len(run_schedule(services)) == 1
    [snap] = scheduled(services, "docs")
    assert snap.name == "daily_20270301_0230" and snap.origin == "nightly/daily" and snap.period_id
    assert snap.status is SnapshotStatus.READY and services.pool.has_snapshot(snap.id)
    assert snap.expires_at is not None and snap.expires_at - snap.created_at == timedelta(days=3)
    assert run_schedule(services) == []  # the next slot is tomorrow
    [entry] = entries(services)
    assert entry.next_due == datetime(2027, 3, 2, 2, 30, tzinfo=UTC) and entry.last_snapshot_id == snap.id


def test_periods_due_at_the_same_minute_all_run(services: Services, clock: TestClock, docs: str) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    both = (daily("a"), daily("b"), Period("hour", Frequency.HOURLY, minute=30))
    services.profiles.create("crowded", SYSTEM, periods=both)
    services.profiles.assign("crowded", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 5, tzinfo=UTC))
    run_schedule(services)
    names = sorted(s.name for s in scheduled(services, "docs"))
    assert names == ["a_20270301_0230", "b_20270301_0230", "hour_20270301_0230"]


def test_a_failed_take_is_retried_with_back_off_and_audited(services: Services, clock: TestClock, docs: str) -> None:
    at(clock, datetime(2027, 3, 1, 2, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    subject = services.snapshots.subject("volume", docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    with services.snapshots.claim_take(subject):  # another operation holds the volume: the take is busy
        [job] = run_schedule(services)
    assert services.jobs.get(job, SYSTEM).status is JobStatus.FAILED
    assert scheduled(services, "docs") == []
    [entry] = entries(services)
    assert (
        entry.failures == 1
        and entry.last_error
        and timedelta(seconds=29) < entry.next_due - clock() <= timedelta(seconds=30)
    )
    failed = [e for e in services.audit.entries(SYSTEM) if e.action == "schedule.take"]
    assert failed and failed[0].outcome == "failed" and "retried" in failed[0].detail

    clock.advance(timedelta(seconds=31))
    run_schedule(services)
    [snap] = scheduled(services, "docs")
    assert snap.name == "daily_20270301_0230"  # the retry stands for the slot it retries
    [entry] = entries(services)
    assert entry.failures == 0 and entry.next_due == datetime(2027, 3, 2, 2, 30, tzinfo=UTC)


@pytest.mark.parametrize("skip_missed", [False, True])
def test_after_downtime_one_catch_up_or_none(
    services: Services, clock: TestClock, docs: str, skip_missed: bool
) -> None:
    at(clock, datetime(2027, 3, 1, 2, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(skip_missed=skip_missed),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 4, 12, 0, tzinfo=UTC))  # the service was down over three slots
    run_schedule(services)
    names = [s.name for s in scheduled(services, "docs")]
    assert names == ([] if skip_missed else ["daily_20270304_0230"])
    [entry] = entries(services)
    assert entry.next_due == datetime(2027, 3, 5, 2, 30, tzinfo=UTC)


def test_minimum_snapshots_hold_expired_ones_until_replaced(services: Services, clock: TestClock, docs: str) -> None:
    at(clock, datetime(2027, 3, 1, 2, 0, tzinfo=UTC))
    period = daily(retention=timedelta(hours=1), min_snapshots=1)
    services.profiles.create("short", SYSTEM, periods=(period,))
    services.profiles.assign("short", VOLUME, docs, SYSTEM)
    manual = services.snapshots.take(TakeRequest(docs, "by-hand", expires_at=clock() + timedelta(hours=2)), who=SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    run_schedule(services)
    [first] = scheduled(services, "docs")

    at(clock, datetime(2027, 3, 1, 20, 0, tzinfo=UTC))  # both expired; the scheduled one is the newest of its period
    services.snapshots.sweep_expired(SYSTEM)
    [held] = scheduled(services, "docs")
    assert held.id == first.id and held.status is SnapshotStatus.HELD
    assert manual.id not in {s.id for s in services.snapshots.listing(docs, who=SYSTEM)}  # its own expiry only

    at(clock, datetime(2027, 3, 2, 2, 30, 1, tzinfo=UTC))
    run_schedule(services)  # a newer one of the period replaces it
    services.snapshots.sweep_expired(SYSTEM)
    [second] = scheduled(services, "docs")
    assert second.name == "daily_20270302_0230" and not services.pool.has_snapshot(first.id)


def test_unassigned_subjects_keep_their_snapshots_with_their_expiry(
    services: Services, clock: TestClock, docs: str
) -> None:
    at(clock, datetime(2027, 3, 1, 2, 0, tzinfo=UTC))
    services.profiles.create("short", SYSTEM, periods=(daily(retention=timedelta(hours=1)),))
    services.profiles.assign("short", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    run_schedule(services)
    at(clock, datetime(2027, 3, 1, 4, 0, tzinfo=UTC))
    services.snapshots.sweep_expired(SYSTEM)
    [held] = scheduled(services, "docs")
    assert held.status is SnapshotStatus.HELD

    with pytest.raises(Conflict, match="assigned"):
        services.profiles.delete("short", SYSTEM)
    services.profiles.delete("short", SYSTEM, detach=True)
    assert entries(services) == []
    [kept] = scheduled(services, "docs")  # the profile is gone, its snapshot stays until its expiry is swept
    assert kept.id == held.id and kept.status is SnapshotStatus.READY
    services.snapshots.sweep_expired(SYSTEM)
    assert scheduled(services, "docs") == []


def test_the_installed_profiles_come_once(services: Services) -> None:
    assert services.profiles.install()
    names = {p.name for p in services.profiles.listing(SYSTEM)}
    assert names == {"System Snapshots", "SOX", "HIPAA", "NAS Volume Syncs"}
    [assignment] = services.profiles.assignments(SYSTEM)
    assert assignment.subject_type is SubjectOfProfile.SYSTEM
    services.profiles.delete("SOX", SYSTEM)
    assert not services.profiles.install()
    assert "SOX" not in {p.name for p in services.profiles.listing(SYSTEM)}


def test_a_changed_period_moves_its_slots_and_a_removed_one_leaves_its_snapshots(
    services: Services, clock: TestClock, docs: str
) -> None:
    at(clock, datetime(2027, 3, 1, 2, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(retention=timedelta(hours=1)),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    run_schedule(services)
    at(clock, datetime(2027, 3, 1, 5, 0, tzinfo=UTC))
    services.snapshots.sweep_expired(SYSTEM)
    [held] = scheduled(services, "docs")
    assert held.status is SnapshotStatus.HELD

    saved = services.profiles.update_period("nightly", "daily", SYSTEM, name="late", hour=23)
    assert [p.name for p in saved.profile.periods] == ["late"]
    [entry] = entries(services)
    assert entry.next_due == datetime(2027, 3, 1, 23, 30, tzinfo=UTC)  # from now, at the new time
    services.snapshots.sweep_expired(SYSTEM)  # still its period's newest: held again
    assert [s.status for s in scheduled(services, "docs")] == [SnapshotStatus.HELD]

    services.profiles.remove_period("nightly", "late", SYSTEM)
    assert entries(services) == []
    [kept] = scheduled(services, "docs")
    assert kept.id == held.id and kept.status is SnapshotStatus.READY  # no period holds it now
    services.snapshots.sweep_expired(SYSTEM)
    assert scheduled(services, "docs") == []


def test_a_deleted_tenant_takes_its_profiles_and_schedule_along(services: Services, clock: TestClock) -> None:
    tenant = services.tenants.create(SYSTEM, "acme").tenant
    volume = services.volumes.create("files", size_limit=64 * MB, tenant=tenant.id, who=SYSTEM)
    theirs = services.profiles.create("theirs", SYSTEM, periods=(daily(),), tenant=tenant.id).profile.id
    services.profiles.assign(theirs, VOLUME, volume.id, SYSTEM)  # names resolve in the caller's own owner
    services.profiles.create("ours", SYSTEM, periods=(daily("ours"),))
    services.profiles.assign("ours", SubjectOfProfile.TENANT, tenant.id, SYSTEM)
    assert len(entries(services)) == 2
    with pytest.raises(Forbidden):  # a tenant's profile goes only on what that tenant owns
        services.profiles.assign(theirs, SubjectOfProfile.SYSTEM, "system", SYSTEM)

    services.tenants.delete(SYSTEM, tenant.id, force=True)
    assert entries(services) == [] and services.profiles.assignments(SYSTEM) == []
    assert [p.name for p in services.profiles.listing(SYSTEM)] == ["ours"]
