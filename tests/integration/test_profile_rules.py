"""Rules of profiles and scheduled snapshots that a hostile review found broken (each of these failed before
its fix): nulls and far-off times in requests, takes that wait in a busy lane, failures outside a take,
once periods, name clashes, a parent's assignment, failed rows, pages, and a long sweep beside the loop.

Time moves through the services' clock (``TestClock``) as in test_profiles.py; the scheduler's pass is called
directly. Where a take must wait in the scheduled lane (behind slow subjects), the lane's workers are held
by jobs that wait on an event, as slow guest agents would hold them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from snapkeep.api.app import create_app
from snapkeep.errors import ServiceUnavailable, SnapkeepError
from snapkeep.model.paging import Window
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.profile import Frequency, Period, SubjectOfProfile
from snapkeep.model.types import Job, JobStatus, Snapshot, SnapshotStatus
from snapkeep.scheduler import Scheduler, standard_tasks
from snapkeep.services.container import Services
from snapkeep.services.jobs import Lane
from snapkeep.services.profiles import upcoming
from snapkeep.services.snapshots import TakeRequest
from tests.conftest import TestClock

MB = 1 << 20
VOLUME = SubjectOfProfile.VOLUME


def at(clock: TestClock, when: datetime) -> None:
    clock.advance(when - clock())


def wait_all(svc: Services, jobs: list[Job]) -> None:
    for job in jobs:
        assert svc.jobs.wait(job.id, 60, SYSTEM).status in (JobStatus.SUCCEEDED, JobStatus.FAILED)


def scheduled(svc: Services, volume: str) -> list[Snapshot]:
    return [s for s in svc.snapshots.listing(volume, who=SYSTEM) if s.origin != "manual"]


def daily(name: str = "daily", **rules: object) -> Period:
    return Period(name=name, frequency=Frequency.DAILY, hour=2, minute=30, **rules)  # type: ignore[arg-type]


@pytest.fixture
def docs(services: Services) -> str:
    return services.volumes.create("docs", size_limit=64 * MB, who=SYSTEM).id


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    token = services.tokens.create("review-admin", Role.ADMIN)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(services), headers=headers, raise_server_exceptions=False) as client:
        yield client


class BusyLane:
    """Every worker of the scheduled lane held, as by subjects whose guest agents take their full timeout."""

    def __init__(self, svc: Services) -> None:
        self.go = threading.Event()
        self._svc = svc
        self._jobs = [
            svc.jobs.submit("slow subject", {}, self._hold, Lane.SCHEDULED)
            for _ in range(svc.settings.scheduled_workers)
        ]

    def _hold(self, _progress: object) -> dict[str, object]:
        self.go.wait(60)
        return {}

    def release(self) -> None:
        self.go.set()
        wait_all(self._svc, self._jobs)


# --- 1. a null in a period's PATCH is saved and breaks the profile (high) ---------------------------------


@pytest.mark.parametrize("flag", ["immutable", "quiesce", "private", "skip_missed"])
def test_a_null_flag_in_a_period_update_is_refused_and_saves_nothing(
    api: TestClient, services: Services, clock: TestClock, docs: str, flag: str
) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    body = {"name": "p", "periods": [{"name": "d", "frequency": "daily", "hour": 2, "minute": 30}]}
    assert api.post("/api/v1/profiles", json=body).status_code == 201
    assert (
        api.post("/api/v1/profiles/p/assignments", json={"subject_type": "volume", "subject": "docs"}).status_code
        == 201
    )

    patched = api.patch("/api/v1/profiles/p/periods/d", json={flag: None}).status_code
    listed = api.get("/api/v1/profiles").status_code
    # before its fix: (500, 500): the PATCH saves the null, then fails to answer; every listing fails from then on
    assert (patched in (200, 422), listed) == (True, 200), (patched, listed)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    wait_all(services, services.scheduled.run_due())
    assert [s.status.value for s in scheduled(services, docs)] == ["ready"]  # main (immutable): failed every slot


def test_a_tenant_operator_cannot_break_the_system_admins_profile_listing(api: TestClient, services: Services) -> None:
    tenant = services.tenants.create(SYSTEM, "acme")
    secret = services.tokens.create("acme-op", Role.OPERATOR, tenant_id=tenant.tenant.id)
    with TestClient(
        create_app(services), headers={"Authorization": f"Bearer {secret}"}, raise_server_exceptions=False
    ) as acme:
        body = {"name": "mine", "periods": [{"name": "d", "frequency": "daily"}]}
        assert acme.post("/api/v1/profiles", json=body).status_code == 201
        acme.patch("/api/v1/profiles/mine/periods/d", json={"private": None})
    listing = api.get("/api/v1/profiles")
    assert listing.status_code == 200, listing.text  # before its fix: 500 (ValidationError of the tenant's period)


# --- 2. other odd bodies answer 500 (medium) ---------------------------------------------------------------


@pytest.mark.parametrize("field", ["minute", "hour", "min_snapshots"])
def test_a_null_clock_field_in_a_period_update_is_a_clear_4xx(api: TestClient, field: str) -> None:
    body = {"name": "p", "periods": [{"name": "d", "frequency": "daily"}]}
    assert api.post("/api/v1/profiles", json=body).status_code == 201
    answer = api.patch("/api/v1/profiles/p/periods/d", json={field: None})
    assert answer.status_code == 422, answer.text  # before its fix: 500 (TypeError)


def test_a_preview_far_ahead_is_answered_not_a_500(api: TestClient) -> None:
    body = {
        "name": "sox",
        "periods": [{"name": "yearly", "frequency": "yearly", "month": 1, "day_of_month": 1, "retention": "7y"}],
    }
    assert api.post("/api/v1/profiles", json=body).status_code == 201
    answer = api.get("/api/v1/profiles/sox/preview", params={"at": "9999-06-01T00:00:00Z"})
    assert answer.status_code in (200, 422), answer.text  # before its fix: 500 (OverflowError: slot + 7 years)


# --- 3. the scheduler's takes ------------------------------------------------------------------------------


def test_a_failed_once_period_is_retried_with_back_off(services: Services, clock: TestClock, docs: str) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    once = Period("before-upgrade", Frequency.ONCE, at=datetime(2027, 3, 1, 2, 30, tzinfo=UTC))
    services.profiles.create("upgrade", SYSTEM, periods=(once,))
    services.profiles.assign("upgrade", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    with services.snapshots.claim_take(services.snapshots.subject("volume", docs, SYSTEM)):  # briefly busy
        wait_all(services, services.scheduled.run_due())
    waiting = [u.entry.next_due for u in upcoming(services.db, SYSTEM, Window(1000)).items]
    assert waiting and waiting[0] is not None, "before its fix: given up at the first failure, never taken"
    clock.advance(timedelta(seconds=31))
    wait_all(services, services.scheduled.run_due())
    assert [s.name for s in scheduled(services, docs)] == ["before-upgrade_20270301_0230"]


def test_a_slot_waiting_for_its_retry_keeps_it_when_the_period_is_edited(
    services: Services, clock: TestClock, docs: str
) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    with services.snapshots.claim_take(services.snapshots.subject("volume", docs, SYSTEM)):  # briefly busy
        wait_all(services, services.scheduled.run_due())
    services.profiles.update_period("nightly", "daily", SYSTEM, min_snapshots=2)  # not when it runs
    clock.advance(timedelta(seconds=31))
    wait_all(services, services.scheduled.run_due())
    assert [s.name for s in scheduled(services, docs)] == ["daily_20270301_0230"]  # before its fix: dropped
    services.profiles.update_period("nightly", "daily", SYSTEM, hour=3)  # when it runs: from the next 03:30
    [entry] = [u.entry for u in upcoming(services.db, SYSTEM, Window(1000)).items]
    assert entry.next_due == datetime(2027, 3, 1, 3, 30, tzinfo=UTC)


def test_a_slot_taken_before_a_crash_releases_the_periods_holds_after_it(
    services: Services, clock: TestClock, docs: str
) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(retention=timedelta(days=1), min_snapshots=2),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    for day in (1, 2):
        at(clock, datetime(2027, 3, day, 2, 30, 1, tzinfo=UTC))
        wait_all(services, services.scheduled.run_due())
    at(clock, datetime(2027, 3, 3, 2, 30, 1, tzinfo=UTC))
    services.snapshots.sweep_expired(SYSTEM)
    first, second = scheduled(services, docs)
    assert first.status is SnapshotStatus.HELD
    # the service took the third slot's snapshot, then was killed before its entry moved on
    slot = "daily_20270303_0230"
    made = TakeRequest(docs, slot, keep_for=timedelta(days=1), origin=second.origin, period_id=second.period_id)
    services.snapshots.take(made, who=SYSTEM)
    wait_all(services, services.scheduled.run_due())  # after the restart: found taken, the entry moves on
    services.snapshots.sweep_expired(SYSTEM)
    left = [s.name for s in scheduled(services, docs)]
    assert left == [second.name, slot], left  # before its fix: the first held until the next take


@pytest.mark.parametrize("change", ["unassign", "delete"])
def test_a_take_waiting_in_the_lane_is_not_taken_after_its_profile_left_the_subject(
    services: Services, clock: TestClock, docs: str, change: str
) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    lane = BusyLane(services)
    try:
        jobs = services.scheduled.run_due()  # queued behind the slow subjects
        if change == "unassign":
            services.profiles.unassign(VOLUME, docs, SYSTEM)
        else:
            services.profiles.delete("nightly", SYSTEM, detach=True)
    finally:
        lane.release()
    wait_all(services, jobs)
    assert scheduled(services, docs) == []  # before its fix: taken anyway, by a period no longer on the subject


def test_a_slot_delayed_in_the_lane_is_not_skipped_as_missed(services: Services, clock: TestClock, docs: str) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(skip_missed=True),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))  # the service is up and sees the slot on time
    lane = BusyLane(services)
    try:
        jobs = services.scheduled.run_due()
        clock.advance(timedelta(minutes=6))  # the lane is busy for six minutes
    finally:
        lane.release()
    wait_all(services, jobs)
    assert [s.name for s in scheduled(services, docs)] == ["daily_20270301_0230"]  # before its fix: skipped as 'missed'


def test_a_slot_lost_to_a_name_clash_is_audited(services: Services, clock: TestClock, docs: str) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(immutable=True),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    services.snapshots.take(TakeRequest(docs, "daily_20270301_0230"), who=SYSTEM)  # by hand, not locked
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    wait_all(services, services.scheduled.run_due())
    assert scheduled(services, docs) == []
    said = [e for e in services.audit.entries(SYSTEM) if e.action.startswith("schedule.")]
    assert said, "before its fix: the slot is given up silently (the job succeeds, nothing is audited)"


# --- 4. listings that must page (main pages all but a profile's assignments since 263edfa) -----------------------


def test_the_scheduler_status_and_profile_listings_page(api: TestClient, services: Services) -> None:
    for name in ("a", "b", "c"):
        services.volumes.create(name, size_limit=64 * MB, who=SYSTEM)
    body = {"name": "p", "periods": [{"name": "d", "frequency": "daily"}, {"name": "h", "frequency": "hourly"}]}
    assert api.post("/api/v1/profiles", json=body).status_code == 201
    assert api.post("/api/v1/profiles", json={"name": "q"}).status_code == 201
    for name in ("a", "b", "c"):
        assert (
            api.post("/api/v1/profiles/p/assignments", json={"subject_type": "volume", "subject": name}).status_code
            == 201
        )
    for path in ("/api/v1/scheduler", "/api/v1/profiles", "/api/v1/profiles/p/assignments"):
        page = api.get(path, params={"limit": 1})
        assert page.status_code == 200 and len(page.json()) == 1 and "x-next-cursor" in page.headers, (
            path,
            len(page.json()),
        )  # before its fix: every row, no cursor


# --- 5. an error outside the take strands the entries (medium) ---------------------------------------------


def test_a_catalog_error_after_a_take_does_not_strand_the_subjects_entries(
    services: Services, clock: TestClock, docs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily("a"), daily("b")))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    advance = services.scheduled._advance
    failing = [True]

    def busy_once(*args: object, **kwargs: object) -> None:  # the catalog is busy once (fault switch)
        if failing.pop() if failing else False:
            raise ServiceUnavailable("the catalog is not available: database is locked")
        advance(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(services.scheduled, "_advance", busy_once)
    wait_all(services, services.scheduled.run_due())
    at(clock, datetime(2027, 3, 2, 2, 30, 1, tzinfo=UTC))  # a day later, the service still up
    wait_all(services, services.scheduled.run_due())
    running = [u.period for u in upcoming(services.db, SYSTEM, Window(1000)).items if u.entry.running_since is not None]
    assert running == [], running  # before its fix: ['a', 'b'] 'running' until the next restart; no snapshot since
    assert "b_20270302_0230" in {s.name for s in scheduled(services, docs)}


def test_a_job_that_cannot_be_started_leaves_its_entries_due(
    services: Services, clock: TestClock, docs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))

    def busy(*_: object, **__: object) -> Job:  # fault switch: the job's row cannot be written
        raise ServiceUnavailable("the catalog is not available: database is locked")

    with monkeypatch.context() as faults:
        faults.setattr(services.jobs, "submit", busy)
        with pytest.raises(ServiceUnavailable):
            services.scheduled.run_due()
    clock.advance(timedelta(seconds=5))  # the loop's next look
    wait_all(services, services.scheduled.run_due())  # before its fix: none, the entry 'running' until a restart
    assert [s.name for s in scheduled(services, docs)] == ["daily_20270301_0230"]


# --- 6. a tenant removes the profile its parent put on its subject (medium-low) ----------------------------


def test_a_tenant_cannot_take_away_the_profile_its_parent_assigned(services: Services) -> None:
    tenant = services.tenants.create(SYSTEM, "acme").tenant
    services.volumes.create("ledger", size_limit=64 * MB, tenant=tenant.id, who=SYSTEM)
    services.profiles.create("compliance", SYSTEM, periods=(daily(immutable=True, retention=timedelta(days=7)),))
    acme = Principal("acme-op", Role.OPERATOR, tenant.id)
    ledger = services.volumes.get("ledger", acme)
    services.profiles.assign("compliance", VOLUME, ledger.id, SYSTEM)
    with pytest.raises(SnapkeepError):  # before its fix: done; the system's schedule on the volume is gone
        services.profiles.unassign(VOLUME, ledger.id, acme)
    assert [a.profile_id for a in services.profiles.assignments(SYSTEM)]


# --- 7. failed scheduled takes leave rows that nothing removes (low) ---------------------------------------


def test_the_failed_row_of_a_given_up_slot_does_not_stay_forever(
    services: Services, clock: TestClock, docs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(retention=timedelta(hours=6)),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    seal = services.pool.seal

    def full(snap_id: str, manifest: bytes) -> None:  # fault switch: the pool refuses the manifest
        raise SnapkeepError("no space left on the pool")

    monkeypatch.setattr(services.pool, "seal", full)
    at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
    wait_all(services, services.scheduled.run_due())
    for _ in range(8):  # retried with back-off until the next slot comes near; then given up
        clock.advance(timedelta(hours=3))
        wait_all(services, services.scheduled.run_due())
    monkeypatch.setattr(services.pool, "seal", seal)
    at(clock, datetime(2027, 3, 5, 2, 30, 1, tzinfo=UTC))
    wait_all(services, services.scheduled.run_due())
    services.snapshots.sweep_expired(SYSTEM)
    left = sorted((s.name, s.status.value) for s in scheduled(services, docs))
    # before its fix: the failed rows of the given-up slots stay for good (the sweep reads only 'ready' rows)
    assert left == [("daily_20270305_0230", "ready")], left


# --- 8. a once period that has run cannot be edited at all (low) -------------------------------------------


def test_a_once_period_that_ran_can_still_have_its_minimum_lowered(services: Services, clock: TestClock) -> None:
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    once = Period("before-upgrade", Frequency.ONCE, at=datetime(2027, 3, 1, 2, 30, tzinfo=UTC))
    services.profiles.create("upgrade", SYSTEM, periods=(once,))
    at(clock, datetime(2027, 3, 2, 0, 0, tzinfo=UTC))
    # lowering the minimum lets its held snapshot go at its expiry; before its fix: InvalidSchedule '... is in the past'
    saved = services.profiles.update_period("upgrade", "before-upgrade", SYSTEM, min_snapshots=0)
    assert saved.profile.periods[0].min_snapshots == 0


# --- 9. a long expiry sweep runs beside the scheduler's loop, not in it -------------------------------------


def test_a_long_expiry_sweep_does_not_hold_back_the_scheduled_snapshots(
    services: Services, clock: TestClock, docs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(clock, datetime(2027, 3, 1, 1, 29, tzinfo=UTC))
    scheduler = Scheduler(standard_tasks(services), clock)  # its first sweep comes an interval (1 h) later
    services.profiles.create("nightly", SYSTEM, periods=(daily(skip_missed=True),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    other = services.volumes.create("other", size_limit=64 * MB, who=SYSTEM).id
    services.snapshots.take(TakeRequest(other, "old", expires_at=clock() + timedelta(minutes=5)), who=SYSTEM)
    delete, stuck, release = services.pool.delete_snapshot, threading.Event(), threading.Event()

    def slow(snap_id: str) -> None:  # fault switch: the deletion hangs (a loaded pool) until released
        stuck.set()
        release.wait(60)
        delete(snap_id)

    monkeypatch.setattr(services.pool, "delete_snapshot", slow)
    try:
        at(clock, datetime(2027, 3, 1, 2, 29, 30, tzinfo=UTC))
        assert "expiry sweep" in scheduler.run_due()
        assert stuck.wait(30)  # the sweep is inside its deletion
        at(clock, datetime(2027, 3, 1, 2, 30, 1, tzinfo=UTC))
        assert "scheduled snapshots" in scheduler.run_due()  # the loop goes on while the sweep hangs
        wait_all(services, [j for j in services.jobs.list(SYSTEM) if j.kind == "snapshot.scheduled"])
        assert [s.name for s in scheduled(services, docs)] == ["daily_20270301_0230"]
    finally:
        release.set()
        scheduler.settle()


# --- 10. a sweep decides what a period keeps once, then deletes a list (second review) ---------------------


def three_days_of_daily(services: Services, clock: TestClock, docs: str) -> list[Snapshot]:
    """Three daily snapshots kept a day, at least one: at the end the first two have expired."""
    at(clock, datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    services.profiles.create("nightly", SYSTEM, periods=(daily(retention=timedelta(days=1), min_snapshots=1),))
    services.profiles.assign("nightly", VOLUME, docs, SYSTEM)
    for day in (1, 2, 3):
        at(clock, datetime(2027, 3, day, 2, 30, 1, tzinfo=UTC))
        wait_all(services, services.scheduled.run_due())
    at(clock, datetime(2027, 3, 3, 3, 0, tzinfo=UTC))
    return scheduled(services, docs)


def test_a_sweep_decides_again_what_the_period_keeps_before_each_delete(
    services: Services, clock: TestClock, docs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, newest = three_days_of_daily(services, clock, docs)
    delete = services.pool.delete_snapshot

    def newest_deleted_meanwhile(snap_id: str) -> None:  # an operator deletes the newest during the sweep
        if snap_id == first.id:
            services.snapshots.delete(newest.id, who=SYSTEM)
        delete(snap_id)

    monkeypatch.setattr(services.pool, "delete_snapshot", newest_deleted_meanwhile)
    assert services.snapshots.sweep_expired(SYSTEM) == [first.id]
    left = [(s.name, s.status) for s in scheduled(services, docs)]
    assert left == [(second.name, SnapshotStatus.HELD)], left  # before its fix: none left, min_snapshots 1


def test_a_period_snapshot_is_not_deleted_by_hand_while_the_sweep_decides_that_period(
    services: Services, clock: TestClock, docs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _second, newest = three_days_of_daily(services, clock, docs)
    delete, refused = services.pool.delete_snapshot, []

    def operator_deletes_the_newest(snap_id: str) -> None:  # from another request, while the sweep deletes
        if snap_id == first.id:
            worker = threading.Thread(target=lambda: refused.append(try_delete(services, newest.id)))
            worker.start()
            worker.join()
        delete(snap_id)

    monkeypatch.setattr(services.pool, "delete_snapshot", operator_deletes_the_newest)
    services.snapshots.sweep_expired(SYSTEM)
    assert refused == ["busy"]  # tried again once the sweep is done
    assert [s.name for s in scheduled(services, docs)] == [newest.name]


def try_delete(services: Services, snap_id: str) -> str:
    try:
        services.snapshots.delete(snap_id, who=SYSTEM)
    except SnapkeepError as exc:
        return exc.code
    return "deleted"
