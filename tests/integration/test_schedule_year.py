"""A simulated year of the installed profiles: the snapshots that exist at the end of every day are exactly
those the rules say, computed here independently.

The year: SOX on two volumes (in UTC; one volume unassigned in July, after which its snapshots keep only
their expiry), HIPAA on one volume (moved to America/New_York) and System Snapshots on the system (moved to
Europe/Berlin, whose midnight is 23:00 or 22:00 UTC of the day before), its hourly period included (8,784
passes of the scheduler). SOX's daily period is edited to hold its newest 10 snapshots, 3 of them past their
7 days, and the hourly one its newest 5, 2 past their 3 hours, so the hold rule decides what exists every
day. Around each of Berlin's clock changes the hourly period is also checked every hour, over four days: the
skipped hour and the repeated one, whose second occurrence is named ``..._2``.

What runs is the real scheduler pass (``ScheduledTakes.run_due``, its jobs on the real ``JobRunner``, its
audit) and the real hold rule (``services.retention.expired_unheld``), over a real SQLite catalog, with
a clock the test moves from one due time (read from the catalog) to the next. The takes themselves go to
a catalog-only stand-in that writes the ready row ``Snapshots._take`` writes (about 10,000 real pool
snapshots would take minutes); the real-pool path of the same rules — a due period taking a real snapshot,
held ones swept off the pool when replaced — is tested in ``test_profiles.py`` and in the real-time test
(``test_schedule_realtime.py``: a 1-minute period on a real volume and a running VM).

The expected set is computed with plain datetime arithmetic for these specific periods, not with
``model.schedule`` or the scheduler's code: a slot is a wall-clock time in the profile's zone; a snapshot
expires at created + retention (years: calendar years); the newest ``min_snapshots`` of a period per
subject are kept past expiry (``held``) while the period is on the subject's schedule.
"""

from __future__ import annotations

import bisect
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from snapkeep.errors import NameClash
from snapkeep.model.paging import Window
from snapkeep.model.principal import SYSTEM, Principal
from snapkeep.model.profile import SubjectOfProfile
from snapkeep.model.types import JobStatus, Snapshot, SnapshotStatus
from snapkeep.services.container import Services
from snapkeep.services.retention import expired_unheld
from snapkeep.services.scheduled import ScheduledTakes
from snapkeep.services.snapshots import TakeRequest, snapshot_record
from snapkeep.services.subjects import Subject
from snapkeep.storage.pool import Pool
from tests.conftest import SimulatedClock, build_services

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
HOUR, DAY, YEAR = timedelta(hours=1), timedelta(days=1), timedelta(days=365)


class CatalogTakes:
    """Stands in for ``Snapshots`` in the scheduler: ``take`` records the ready snapshot ``Snapshots._take``
    records — the subject resolved by its real kind, the name refused if the subject has it, created now,
    expiring at ``req.expiry`` — without capturing anything in the pool. The subjects do not change during
    the year, so each is resolved once (the system's estate is read in several queries)."""

    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._subjects: dict[tuple[str, str], Subject] = {}

    def take(self, req: TakeRequest, *, who: Principal) -> Snapshot:
        kind = self._svc.snapshots.kind(req.subject_type)
        now = self._svc.clock()
        with self._svc.db.unit(who) as uow:
            subject = self._subjects.get((req.subject_type, req.ref))
            if subject is None:
                subject = self._subjects[req.subject_type, req.ref] = kind.resolve(uow, req.ref, req.selection)
            if uow.snapshots.find(subject.type, subject.id, req.name) is not None:
                raise NameClash(f"{subject.type} {subject.name!r} already has a snapshot named {req.name!r}")
            record = snapshot_record(req, subject, kind, str(uuid.uuid4()), now, SnapshotStatus.READY)
            return uow.snapshots.insert(record)


def sweep(svc: Services) -> None:
    """One expiry sweep with the real hold rule; the catalog rows it would delete go (there is no pool copy)."""
    with svc.db.unit() as uow:
        for snap in expired_unheld(uow, svc.clock()):
            uow.snapshots.delete(snap.id)


# -- the rules, written out for these periods --------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One period as the test reads it: on which local days (None: every hour), at which local hour."""

    period: str
    origin: str
    zone: ZoneInfo
    on: Callable[[date], bool] | None
    hour: int
    retention: timedelta | None
    keep: int  # min_snapshots


@dataclass(frozen=True)
class Slot:
    at: datetime
    name: str


def every_day(_day: date) -> bool:
    return True


def sundays(day: date) -> bool:
    return day.weekday() == 6


def firsts(day: date) -> bool:
    return day.day == 1


def new_years(day: date) -> bool:
    return day.month == 1 and day.day == 1


def expiry(created: datetime, retention: timedelta) -> datetime:
    """created + retention; whole years are calendar years: the same date that many years on (29 February:
    the 28th), if that is later."""
    if retention % YEAR:
        return created + retention
    years = retention // YEAR
    try:
        same_date = created.replace(year=created.year + years)
    except ValueError:
        same_date = created.replace(year=created.year + years, day=28)
    return max(created + retention, same_date)


def compliance(profile: str, zone: ZoneInfo, yearly: timedelta | None, daily_keep: int) -> list[Rule]:
    """SOX and HIPAA as installed: at midnight, yearly on 1 January, monthly on the 1st (kept a year), weekly
    on Sunday (31 days), daily (7 days)."""
    return [
        Rule("yearly", f"{profile}/yearly", zone, new_years, 0, yearly, 1),
        Rule("monthly", f"{profile}/monthly", zone, firsts, 0, YEAR, 1),
        Rule("weekly", f"{profile}/weekly", zone, sundays, 0, timedelta(days=31), 1),
        Rule("daily", f"{profile}/daily", zone, every_day, 0, 7 * DAY, daily_keep),
    ]


SYSTEM_DAYS = [  # System Snapshots in Berlin
    Rule("daily", "System Snapshots/daily", BERLIN, every_day, 0, 3 * DAY, 1),
    Rule("midday", "System Snapshots/midday", BERLIN, every_day, 12, DAY, 1),
]
SYSTEM_HOURLY = Rule("hourly", "System Snapshots/hourly", BERLIN, None, 0, 3 * HOUR, 5)  # edited: holds 5
SOX_RULES = compliance("SOX", ZoneInfo("UTC"), 7 * YEAR, 10)  # its daily period edited to hold the newest 10
HIPAA_RULES = compliance("HIPAA", NEW_YORK, None, 1)


def slots(rule: Rule, start: datetime, until: datetime) -> list[Slot]:
    """The rule's slots after ``start`` up to ``until``, oldest first, named after their local time."""
    found: list[Slot] = []
    if rule.on is None:  # hourly at minute 0: the offsets of these zones are whole hours, so every UTC hour
        at, seen = start.replace(minute=0, second=0, microsecond=0) + HOUR, set()
        while at <= until:
            name = f"{rule.period}_{at.astimezone(rule.zone):%Y%m%d_%H%M}"
            found.append(Slot(at, name if name not in seen else name + "_2"))  # the repeated hour in October
            seen.add(name)
            at += HOUR
        return found
    day = start.astimezone(rule.zone).date()
    while day <= until.astimezone(rule.zone).date():
        at = datetime(day.year, day.month, day.day, rule.hour, tzinfo=rule.zone).astimezone(UTC)
        if rule.on(day) and start < at <= until:
            found.append(Slot(at, f"{rule.period}_{day:%Y%m%d}_{rule.hour:02d}00"))
        day += DAY
    return found


@dataclass(frozen=True)
class Expected:
    status: SnapshotStatus
    created_at: datetime
    expires_at: datetime | None
    origin: str


class Holdings:
    """What the rules say one subject holds at any time up to ``end``, assigned from ``start`` (until
    ``unassigned``, if given)."""

    def __init__(self, rules: list[Rule], start: datetime, end: datetime, unassigned: datetime | None = None) -> None:
        self.unassigned = unassigned
        self.periods = [(rule, slots(rule, start, unassigned or end)) for rule in rules]

    def at(self, now: datetime) -> dict[str, Expected]:
        holding = self.unassigned is None or now < self.unassigned  # after, only their expiry counts
        found = {}
        for rule, all_slots in self.periods:
            taken = all_slots[: bisect.bisect_right([s.at for s in all_slots], now)]
            newest = taken[-rule.keep :] if holding else []
            for slot in taken:
                expires = None if rule.retention is None else expiry(slot.at, rule.retention)
                if expires is None or now < expires:
                    status = SnapshotStatus.READY
                elif slot in newest:
                    status = SnapshotStatus.HELD
                else:
                    continue
                found[slot.name] = Expected(status, slot.at, expires, rule.origin)
        return found

    def slot_count(self) -> int:
        return sum(len(found) for _, found in self.periods)


def held_by_catalog(svc: Services, subject_type: str, subject_id: str) -> dict[str, Expected]:
    with svc.db.unit() as uow:
        snaps = uow.snapshots.list(subject_type, subject_id)
    return {s.name: Expected(s.status, s.created_at, s.expires_at, s.origin) for s in snaps}


# -- the simulation ----------------------------------------------------------------------------------------


@pytest.fixture
def sim_services() -> Iterator[Services]:
    """Services on a copy-mode pool and a catalog in memory-backed storage (``/dev/shm`` where there is one):
    nothing is captured, and the simulation's many small transactions should not wait for a disk. The
    clock stands still until a test moves it."""
    top = tempfile.mkdtemp(prefix="snapkeep-year-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    try:
        os.makedirs(os.path.join(top, "pool"))
        pool = Pool.open(os.path.join(top, "pool"), allow_slow_copy=True)
        svc = build_services(os.path.join(top, "data"), pool, SimulatedClock(datetime(2026, 1, 1, tzinfo=UTC)))
        try:
            yield svc
        finally:
            svc.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def next_due(svc: Services) -> datetime:
    """The soonest time any scheduled entry comes due, as ``snapkeep scheduler status`` reads it."""
    with svc.db.unit() as uow:
        [(entry, *_)] = uow.assignments.scheduled(Window(1)).items
    assert entry.next_due is not None
    return entry.next_due


def simulate(
    svc: Services,
    subjects: dict[tuple[str, str], Holdings],
    checks: list[datetime],
    events: dict[datetime, Callable[[], None]] | None = None,
) -> int:
    """Run the scheduler from the clock's time: at every due time (read from the catalog), at every check
    and at every event, one ``run_due`` pass (waiting for its jobs) and one sweep; at each check, every
    subject's snapshots are compared with the rules. The number of snapshots taken."""
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    scheduler = ScheduledTakes(svc.db, CatalogTakes(svc), svc.jobs, svc.audit, clock)  # type: ignore[arg-type]
    pending = dict(events or {})
    taken = 0
    for check in checks:
        while clock.now < check:
            clock.now = min(next_due(svc), check, *pending)
            if clock.now in pending:
                pending.pop(clock.now)()
            for job in scheduler.run_due():
                done = svc.jobs.wait(job.id, 60, SYSTEM)
                assert done.status is JobStatus.SUCCEEDED, done.error
                taken += len(done.result["snapshots"]) if done.result else 0
            sweep(svc)
        for (subject_type, subject_id), subject in subjects.items():
            want, got = subject.at(check), held_by_catalog(svc, subject_type, subject_id)
            assert got == want, (check, subject_type, subject_id, sorted(set(got) ^ set(want)))
    return taken


def install(svc: Services, start: datetime) -> None:
    """At ``start``: the installed profiles, System Snapshots (assigned to the system) moved to Berlin and
    its hourly period holding its newest 5, HIPAA moved to New York, SOX's daily period holding its newest
    10."""
    clock = svc.clock
    assert isinstance(clock, SimulatedClock)
    clock.now = start
    profiles = svc.profiles
    assert profiles.install()
    profiles.update("System Snapshots", SYSTEM, timezone="Europe/Berlin")
    profiles.update_period("System Snapshots", "hourly", SYSTEM, min_snapshots=5)
    profiles.update("HIPAA", SYSTEM, timezone="America/New_York")
    profiles.update_period("SOX", "daily", SYSTEM, min_snapshots=10)


@pytest.mark.timeout(900)
def test_a_year_of_installed_profiles_leaves_exactly_what_the_rules_say(sim_services: Services) -> None:
    """SOX on two volumes (one unassigned in July), HIPAA on one, System Snapshots with its hourly period on
    the system, from New Year's Eve 2026 to New Year's Day 2028: checked at the end of each of the 367 days.

    Some 10,600 scheduler passes, each with its sweep: about 5 minutes on the 2-core test host (~28 ms of
    catalog work a pass: the due query, the job's rows, the take's row, the entry moved on, the hold rule),
    hence its own time limit."""
    svc = sim_services
    start, end = datetime(2026, 12, 31, 12, 0, tzinfo=UTC), datetime(2028, 1, 1, 23, 59, tzinfo=UTC)
    install(svc, start)
    volume = SubjectOfProfile.VOLUME
    ids = {name: svc.volumes.create(name, None, who=SYSTEM).id for name in ("ledger", "payroll", "records")}
    for profile, name in (("SOX", "ledger"), ("SOX", "payroll"), ("HIPAA", "records")):
        svc.profiles.assign(profile, volume, name, SYSTEM)
    unassigned = datetime(2027, 7, 1, 6, 30, tzinfo=UTC)
    subjects = {
        ("system", "system"): Holdings([SYSTEM_HOURLY, *SYSTEM_DAYS], start, end),
        ("volume", ids["ledger"]): Holdings(SOX_RULES, start, end),
        ("volume", ids["payroll"]): Holdings(SOX_RULES, start, end, unassigned),
        ("volume", ids["records"]): Holdings(HIPAA_RULES, start, end),
    }
    day_ends = [datetime(2026, 12, 31, 23, 59, tzinfo=UTC) + n * DAY for n in range(367)]
    assert day_ends[-1] == end
    events = {unassigned: lambda: svc.profiles.unassign(volume, "payroll", SYSTEM)}
    assert simulate(svc, subjects, day_ends, events) == sum(s.slot_count() for s in subjects.values())


@pytest.mark.parametrize(
    "start",
    [datetime(2027, 3, 26, 12, 0, tzinfo=UTC), datetime(2027, 10, 29, 12, 0, tzinfo=UTC)],
    ids=["spring-forward", "fall-back"],
)
def test_hourly_system_snapshots_across_a_clock_change(sim_services: Services, start: datetime) -> None:
    """System Snapshots as installed but in Berlin, its hourly period holding 5, over four days around a
    clock change (the last Sundays of March and October), checked after every hour: the skipped hour has
    no snapshot, the repeated hour has two (the second named ``..._2``), and the newest 5 hourly snapshots
    stay, 2 of them held past their 3 hours."""
    svc = sim_services
    hours = [start + HOUR / 2 + n * HOUR for n in range(4 * 24)]
    install(svc, start)
    subjects = {("system", "system"): Holdings([SYSTEM_HOURLY, *SYSTEM_DAYS], start, hours[-1])}
    assert simulate(svc, subjects, hours) == subjects["system", "system"].slot_count()
    hourly = [slot.name for slot in subjects["system", "system"].periods[0][1]]
    if start.month == 3:  # 02:00 is skipped: 01:00 CET is followed by 03:00 CEST
        assert hourly.index("hourly_20270328_0300") == hourly.index("hourly_20270328_0100") + 1
    else:  # 02:00 comes twice: CEST, then CET
        assert hourly.index("hourly_20271031_0200_2") == hourly.index("hourly_20271031_0200") + 1
