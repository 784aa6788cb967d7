"""When periods run and what they keep (model.schedule), against instants written out by hand: DST in both
directions, short months, leap days, "any" days, the validation of every field, the steady-state estimates of
the installed profiles and the preview's holds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest

from snapkeep.errors import InvalidInput, InvalidSchedule
from snapkeep.model.installed_profiles import SYSTEM_PROFILE, installed_profiles
from snapkeep.model.profile import Frequency, Period, Profile
from snapkeep.model.schedule import (
    INTERVALS,
    MAX_PERIODS,
    Existing,
    Planned,
    PlannedStatus,
    check_period,
    check_profile,
    describe,
    next_slot,
    preview,
    profile_estimate,
    slots_between,
    snapshot_name,
    steady_state_count,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def slots(period: Period, zone: str, start: datetime, end: datetime) -> list[datetime]:
    return list(slots_between(period, zone, start, end))


def names(period: Period, zone: str, start: datetime, end: datetime) -> list[str]:
    return [snapshot_name(period.name, slot, zone) for slot in slots_between(period, zone, start, end)]


# -- validation ---------------------------------------------------------------------------------------------

AT = utc(2026, 6, 1, 12, 0)


@pytest.mark.parametrize(
    ("period", "message"),
    [
        (Period("p", Frequency.DAILY, minute=61), "minute must be 0-59, got 61"),
        (Period("p", Frequency.HOURLY, minute=-1), "minute must be 0-59, got -1"),
        (Period("p", Frequency.DAILY, hour=24), "hour must be 0-23, got 24"),
        (Period("p", Frequency.WEEKLY, day_of_week=7), r"day_of_week must be 0-6 \(0 = Sunday"),
        (Period("p", Frequency.MONTHLY, day_of_month=0), "day_of_month must be 1-31, got 0"),
        (Period("p", Frequency.MONTHLY, day_of_month=32), "day_of_month must be 1-31, got 32"),
        (Period("p", Frequency.YEARLY, month=13), "month must be 1-12, got 13"),
        (Period("p", Frequency.YEARLY, month=2, day_of_month=30), "February has no day 30 \\(at most 29\\)"),
        (Period("p", Frequency.YEARLY, month=2, day_of_month=31), "February has no day 31"),
        (Period("p", Frequency.YEARLY, month=4, day_of_month=31), "April has no day 31 \\(at most 30\\)"),
        (Period("p", Frequency.YEARLY, month=11, day_of_month=31), "November has no day 31"),
        (Period("p", Frequency.INTERVAL), "an interval of None minutes"),
        (
            Period("p", Frequency.INTERVAL, interval_minutes=7),
            "7 minutes does not repeat.*one of 1, 2, 3, 4, 5, 6, 10,",
        ),
        (Period("p", Frequency.INTERVAL, interval_minutes=90), "90 minutes does not repeat"),
        (Period("p", Frequency.INTERVAL, interval_minutes=0), "0 minutes does not repeat"),
        (Period("p", Frequency.INTERVAL, interval_minutes=2880), "2880 minutes does not repeat"),
        (Period("p", Frequency.INTERVAL, interval_minutes=15, minute=5), "an interval period does not use minute"),
        (Period("p", Frequency.DAILY, interval_minutes=15), "a daily period does not use interval_minutes"),
        (Period("p", Frequency.HOURLY, hour=3), "an? hourly period does not use hour; leave it at 0"),
        (Period("p", Frequency.WEEKLY, day_of_month=3), "a weekly period does not use day_of_month"),
        (Period("p", Frequency.MONTHLY, month=3), "a monthly period does not use month"),
        (Period("p", Frequency.MONTHLY, day_of_week=3), "a monthly period does not use day_of_week"),
        (Period("p", Frequency.DAILY, at=AT), "a daily period does not use at"),
        (Period("p", Frequency.ONCE), "a once period needs the time it runs at"),
        (Period("p", Frequency.ONCE, at=AT, hour=3), "a once period does not use hour"),
        (Period("p", Frequency.ONCE, at=datetime(2026, 6, 1, 12, 0)), "needs a UTC offset or zone"),
        (Period("p", Frequency.ONCE, at=utc(2026, 6, 1, 12, 0, 30)), "runs at a whole minute"),
        (Period("p", Frequency.ONCE, at=utc(2025, 12, 31, 23, 59)), "is in the past"),
        (Period("p", Frequency.ONCE, at=NOW), "is in the past"),
        (Period("p", Frequency.DAILY, retention=timedelta(seconds=30)), "retention must be from 1 minute"),
        (Period("p", Frequency.DAILY, retention=timedelta(0)), "retention must be from 1 minute"),
        (Period("p", Frequency.DAILY, retention=timedelta(days=1000 * 365)), "to 999 years"),
        (Period("p", Frequency.DAILY, min_snapshots=-1), "minimum snapshots must be 0-1000"),
        (Period("p", Frequency.DAILY, min_snapshots=1001), "minimum snapshots must be 0-1000"),
        (Period("", Frequency.DAILY), "period name '' must be 1-64"),
        (Period("a" * 65, Frequency.DAILY), "must be 1-64"),
        (Period("two words", Frequency.DAILY), "must be 1-64 letters"),
        (Period(".hidden", Frequency.DAILY), "start with a letter or digit"),
        (Period("a..b", Frequency.DAILY), "not contain '..'"),
        (Period("a/b", Frequency.DAILY), "must be 1-64 letters"),
        (Period("jährlich", Frequency.DAILY), "must be 1-64 letters"),
    ],
)
def test_periods_that_cannot_run_as_written_are_refused_saying_why(period: Period, message: str) -> None:
    with pytest.raises(InvalidSchedule, match=message) as caught:
        check_period(period, "UTC", NOW)
    assert caught.value.code == "invalid_schedule" and isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize(
    "period",
    [
        Period("p", Frequency.DAILY, minute=59, hour=23),
        Period("p", Frequency.HOURLY, minute=0),
        Period("p", Frequency.WEEKLY, day_of_week=0),
        Period("p", Frequency.WEEKLY, day_of_week=6),
        Period("p", Frequency.MONTHLY, day_of_month=31),
        Period("p", Frequency.YEARLY, month=2, day_of_month=29),
        Period("p", Frequency.YEARLY, month=12, day_of_month=31),
        Period("p", Frequency.YEARLY, day_of_month=31),  # any month: January
        *(Period("p", Frequency.INTERVAL, interval_minutes=k) for k in INTERVALS),
        Period("p", Frequency.ONCE, at=utc(2026, 1, 1, 0, 1)),
        Period("p", Frequency.ONCE, at=datetime(2026, 1, 1, 0, 1, tzinfo=timezone(timedelta(hours=-5)))),
        Period("p", Frequency.DAILY, retention=timedelta(minutes=1), min_snapshots=0),
        Period("p", Frequency.DAILY, retention=timedelta(days=999 * 365), min_snapshots=1000),
        Period("Daily.copy-2_x", Frequency.DAILY),
        Period("a" * 64, Frequency.DAILY),
    ],
)
def test_periods_at_the_edges_of_every_range_are_accepted(period: Period) -> None:
    check_period(period, BERLIN, NOW)


def test_the_intervals_allowed_are_the_divisors_of_an_hour_and_the_whole_hours_that_divide_a_day() -> None:
    assert INTERVALS == (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "europe/berlin", "", "../../etc/passwd", "/etc/localtime"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(InvalidSchedule, match="unknown time zone"):
        check_period(Period("p", Frequency.DAILY), zone, NOW)
    with pytest.raises(InvalidSchedule, match="unknown time zone"):
        check_profile(Profile("", "x", "", None, zone), NOW)


def test_a_profile_refuses_two_periods_of_one_name_and_too_many_periods() -> None:
    twice = Profile("", "x", "", None, "UTC", (Period("daily", Frequency.DAILY), Period("daily", Frequency.WEEKLY)))
    with pytest.raises(InvalidSchedule, match="two periods are named 'daily'"):
        check_profile(twice, NOW)
    many = tuple(Period(f"p{n}", Frequency.DAILY) for n in range(MAX_PERIODS + 1))
    with pytest.raises(InvalidSchedule, match="at most 32 periods, got 33"):
        check_profile(Profile("", "x", "", None, "UTC", many), NOW)
    check_profile(Profile("", "x", "", None, "UTC", many[:MAX_PERIODS]), NOW)


def test_a_profile_is_refused_for_its_first_bad_period() -> None:
    profile = Profile(
        "", "x", "", None, BERLIN, (Period("ok", Frequency.DAILY), Period("bad", Frequency.DAILY, minute=61))
    )
    with pytest.raises(InvalidSchedule, match="period 'bad': minute must be 0-59, got 61") as caught:
        check_profile(profile, NOW)
    assert caught.value.details == {"period": "bad", "field": "minute"}


def test_a_once_period_that_has_run_does_not_block_editing_the_profile_but_a_new_past_one_is_refused() -> None:
    ran = Period("go-live", Frequency.ONCE, at=utc(2025, 12, 1, 8, 0), id="p1")
    stored = Profile("id", "x", "", None, "UTC", (ran,))
    edited = replace(stored, periods=(replace(ran, min_snapshots=0), Period("daily", Frequency.DAILY)))
    check_profile(edited, NOW, previous=stored)  # the once period keeps its time: its other fields may change
    with pytest.raises(InvalidSchedule, match="in the past"):
        check_profile(edited, NOW)
    moved = replace(stored, periods=(replace(ran, at=utc(2025, 12, 2, 8, 0)),))
    with pytest.raises(InvalidSchedule, match="in the past"):
        check_profile(moved, NOW, previous=stored)


def test_the_installed_profiles_are_valid_and_system_snapshots_is_the_one_for_the_system() -> None:
    profiles = installed_profiles(BERLIN)
    assert [p.name for p in profiles] == [SYSTEM_PROFILE, "SOX", "HIPAA", "NAS Volume Syncs"]
    assert SYSTEM_PROFILE == "System Snapshots"
    for profile in profiles:
        check_profile(profile, NOW)
        assert profile.timezone == BERLIN and profile.owner_tenant_id is None and profile.id == ""
    system, sox, hipaa, nas = profiles
    assert [(p.name, p.frequency, p.hour, p.minute, p.retention) for p in system.periods] == [
        ("hourly", Frequency.HOURLY, 0, 0, timedelta(hours=3)),
        ("daily", Frequency.DAILY, 0, 0, timedelta(days=3)),
        ("midday", Frequency.DAILY, 12, 0, timedelta(days=1)),
    ]
    assert [(p.name, p.retention) for p in sox.periods] == [
        ("yearly", timedelta(days=7 * 365)),
        ("monthly", timedelta(days=365)),
        ("weekly", timedelta(days=31)),
        ("daily", timedelta(days=7)),
    ]
    assert [(p.name, p.retention) for p in hipaa.periods] == [
        ("yearly", None),
        ("monthly", timedelta(days=365)),
        ("weekly", timedelta(days=31)),
        ("daily", timedelta(days=7)),
    ]
    assert [(p.name, p.frequency, p.hour, p.retention) for p in nas.periods] == [
        ("daily", Frequency.DAILY, 18, timedelta(days=3))
    ]
    assert installed_profiles()[0].timezone == "UTC"


# -- slots: DST ---------------------------------------------------------------------------------------------

DAILY_0230 = Period("daily", Frequency.DAILY, hour=2, minute=30)
DAILY_0130 = Period("daily", Frequency.DAILY, hour=1, minute=30)


@pytest.mark.parametrize(
    ("period", "zone", "start", "expected", "local_names"),
    [
        # Berlin springs forward on 29 March 2026 at 02:00 CET → 03:00 CEST: 02:30 does not exist that day.
        (
            DAILY_0230,
            BERLIN,
            utc(2026, 3, 27, 12),
            [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)],
            ["daily_20260328_0230", "daily_20260329_0330", "daily_20260330_0230"],
        ),
        (
            DAILY_0130,
            BERLIN,
            utc(2026, 3, 27, 12),
            [utc(2026, 3, 28, 0, 30), utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 23, 30)],
            ["daily_20260328_0130", "daily_20260329_0130", "daily_20260330_0130"],
        ),
        # Berlin falls back on 25 October 2026 at 03:00 CEST → 02:00 CET: 02:30 happens twice, 01:30 once.
        (
            DAILY_0230,
            BERLIN,
            utc(2026, 10, 23, 12),
            [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
            ["daily_20261024_0230", "daily_20261025_0230", "daily_20261026_0230"],
        ),
        (
            DAILY_0130,
            BERLIN,
            utc(2026, 10, 23, 12),
            [utc(2026, 10, 23, 23, 30), utc(2026, 10, 24, 23, 30), utc(2026, 10, 26, 0, 30)],
            ["daily_20261024_0130", "daily_20261025_0130", "daily_20261026_0130"],
        ),
        # New York springs forward on 8 March 2026 at 02:00 EST → 03:00 EDT: 02:30 does not exist.
        (
            DAILY_0230,
            NEW_YORK,
            utc(2026, 3, 6, 12),
            [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)],
            ["daily_20260307_0230", "daily_20260308_0330", "daily_20260309_0230"],
        ),
        (
            DAILY_0130,
            NEW_YORK,
            utc(2026, 3, 6, 12),
            [utc(2026, 3, 7, 6, 30), utc(2026, 3, 8, 6, 30), utc(2026, 3, 9, 5, 30)],
            ["daily_20260307_0130", "daily_20260308_0130", "daily_20260309_0130"],
        ),
        # New York falls back on 1 November 2026 at 02:00 EDT → 01:00 EST: 01:30 happens twice, 02:30 once.
        (
            DAILY_0230,
            NEW_YORK,
            utc(2026, 10, 30, 12),
            [utc(2026, 10, 31, 6, 30), utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 7, 30)],
            ["daily_20261031_0230", "daily_20261101_0230", "daily_20261102_0230"],
        ),
        (
            DAILY_0130,
            NEW_YORK,
            utc(2026, 10, 30, 12),
            [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
            ["daily_20261031_0130", "daily_20261101_0130", "daily_20261102_0130"],
        ),
    ],
)
def test_a_daily_period_runs_exactly_once_on_the_days_clocks_change(
    period: Period, zone: str, start: datetime, expected: list[datetime], local_names: list[str]
) -> None:
    assert slots(period, zone, start, start + 3 * DAY) == expected
    assert names(period, zone, start, start + 3 * DAY) == local_names


def test_a_skipped_time_runs_exactly_a_day_after_the_day_before() -> None:
    before = next_slot(DAILY_0230, BERLIN, utc(2026, 3, 28))
    assert before == utc(2026, 3, 28, 1, 30)
    assert next_slot(DAILY_0230, BERLIN, before) == utc(2026, 3, 29, 1, 30)  # 03:30 CEST, 24 hours later


def test_hourly_runs_at_every_clock_time_that_exists_and_twice_in_the_repeated_hour() -> None:
    hourly = Period("hourly", Frequency.HOURLY, minute=15)
    spring = slots(hourly, BERLIN, utc(2026, 3, 28, 23), utc(2026, 3, 29, 3))
    assert spring == [
        utc(2026, 3, 28, 23, 15),
        utc(2026, 3, 29, 0, 15),
        utc(2026, 3, 29, 1, 15),
        utc(2026, 3, 29, 2, 15),
    ]
    assert names(hourly, BERLIN, utc(2026, 3, 28, 23), utc(2026, 3, 29, 3)) == [
        "hourly_20260329_0015",
        "hourly_20260329_0115",
        "hourly_20260329_0315",  # 02:15 does not exist: an hour after 01:15
        "hourly_20260329_0415",
    ]
    autumn = slots(hourly, BERLIN, utc(2026, 10, 24, 23), utc(2026, 10, 25, 3))
    assert autumn == [
        utc(2026, 10, 24, 23, 15),
        utc(2026, 10, 25, 0, 15),
        utc(2026, 10, 25, 1, 15),
        utc(2026, 10, 25, 2, 15),
    ]
    assert names(hourly, BERLIN, utc(2026, 10, 24, 23), utc(2026, 10, 25, 3)) == [
        "hourly_20261025_0115",
        "hourly_20261025_0215",
        "hourly_20261025_0215_2",  # the second 02:15 of the night, an hour after the first
        "hourly_20261025_0315",
    ]
    new_york = slots(hourly, NEW_YORK, utc(2026, 11, 1, 4), utc(2026, 11, 1, 8))
    assert new_york == [
        utc(2026, 11, 1, 4, 15),
        utc(2026, 11, 1, 5, 15),
        utc(2026, 11, 1, 6, 15),
        utc(2026, 11, 1, 7, 15),
    ]
    assert names(hourly, NEW_YORK, utc(2026, 11, 1, 4), utc(2026, 11, 1, 8)) == [
        "hourly_20261101_0015",
        "hourly_20261101_0115",
        "hourly_20261101_0115_2",
        "hourly_20261101_0215",
    ]


def test_a_year_of_hourly_slots_in_berlin_is_one_every_hour_with_unique_names() -> None:
    hourly = Period("hourly", Frequency.HOURLY, minute=0)
    year = slots(hourly, BERLIN, utc(2025, 12, 31, 23), utc(2026, 12, 31, 23))
    assert len(year) == 8760 and year[0] == utc(2026, 1, 1, 0) and year[-1] == utc(2026, 12, 31, 23)
    assert all(later - earlier == HOUR for earlier, later in pairwise(year))
    assert len({snapshot_name("hourly", slot, BERLIN) for slot in year}) == 8760


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK])
def test_a_year_of_daily_0230_slots_is_one_on_each_local_day(zone: str) -> None:
    year = slots(DAILY_0230, zone, utc(2026, 1, 1, 12), utc(2027, 1, 1, 12))
    assert len(year) == 365
    local_days = [snapshot_name("d", slot, zone)[2:10] for slot in year]
    assert local_days[0] == "20260102" and local_days[-1] == "20270101" and len(set(local_days)) == 365


def test_an_interval_of_15_minutes_runs_on_the_quarter_hours_and_keeps_its_spacing_across_dst() -> None:
    quarter = Period("q", Frequency.INTERVAL, interval_minutes=15)
    assert slots(quarter, "UTC", utc(2026, 5, 4, 9, 50), utc(2026, 5, 4, 10, 30)) == [
        utc(2026, 5, 4, 10, 0),
        utc(2026, 5, 4, 10, 15),
        utc(2026, 5, 4, 10, 30),
    ]
    assert slots(quarter, BERLIN, utc(2026, 3, 29, 0, 40), utc(2026, 3, 29, 1, 20)) == [
        utc(2026, 3, 29, 0, 45),  # 01:45 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST: 02:00-02:45 do not exist
        utc(2026, 3, 29, 1, 15),
    ]
    assert names(quarter, BERLIN, utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 2, 0)) == [
        "q_20261025_0245",
        "q_20261025_0200_2",
        "q_20261025_0215_2",
        "q_20261025_0230_2",
        "q_20261025_0245_2",
        "q_20261025_0300",
    ]
    # India is 5:30 from UTC: the clock's quarter hours are UTC's too, shifted by half an hour.
    assert slots(quarter, "Asia/Kolkata", utc(2026, 5, 4, 9, 50), utc(2026, 5, 4, 10, 10)) == [utc(2026, 5, 4, 10, 0)]
    assert names(quarter, "Asia/Kolkata", utc(2026, 5, 4, 9, 50), utc(2026, 5, 4, 10, 10)) == ["q_20260504_1530"]


def test_an_interval_of_hours_counts_from_local_midnight() -> None:
    every_six = Period("six", Frequency.INTERVAL, interval_minutes=360)
    assert slots(every_six, NEW_YORK, utc(2026, 7, 1, 0), utc(2026, 7, 2, 0)) == [
        utc(2026, 7, 1, 4),  # 00:00 EDT
        utc(2026, 7, 1, 10),
        utc(2026, 7, 1, 16),
        utc(2026, 7, 1, 22),
    ]


def test_an_interval_of_hours_whose_time_is_skipped_runs_after_the_gap() -> None:
    """Cairo's clocks jump from 00:00 to 01:00 on 25 April 2025 (22:00 UTC): the midnight slot runs at 01:00
    summer time; before, it was dropped, leaving 47 hours between daily snapshots (23 between 12-hourly)."""
    daily, twice = (
        Period("d", Frequency.INTERVAL, interval_minutes=1440),
        Period("t", Frequency.INTERVAL, interval_minutes=720),
    )
    cairo = "Africa/Cairo"
    assert slots(daily, cairo, utc(2025, 4, 23, 21), utc(2025, 4, 26, 0)) == [
        utc(2025, 4, 23, 22),  # Thursday 00:00 EET
        utc(2025, 4, 24, 22),  # Friday 01:00 EEST: 00:00 does not exist
        utc(2025, 4, 25, 21),  # Saturday 00:00 EEST
    ]
    assert names(daily, cairo, utc(2025, 4, 24, 12), utc(2025, 4, 25, 0)) == ["d_20250425_0100"]
    gaps = [b - a for a, b in pairwise(slots(twice, cairo, utc(2025, 4, 23, 0), utc(2025, 4, 27, 0)))]
    assert max(gaps) == timedelta(hours=12) and min(gaps) == timedelta(hours=11)


def test_an_interval_of_hours_runs_nothing_more_when_clocks_go_back() -> None:
    """The shift after a gap is for clocks going forward only: when they go back, a window with no slot
    (the day of 25 hours) made an extra snapshot at a time that is no slot ('_1100', '_2300')."""
    twice, daily = (
        Period("p", Frequency.INTERVAL, interval_minutes=720),
        Period("p", Frequency.INTERVAL, interval_minutes=1440),
    )
    assert names(twice, "Europe/Rome", utc(2025, 10, 25, 12), utc(2025, 10, 27)) == [
        "p_20251026_0000",
        "p_20251026_1200",
        "p_20251027_0000",
    ]
    assert names(daily, BERLIN, utc(2025, 10, 24), utc(2025, 10, 28)) == [
        "p_20251025_0000",
        "p_20251026_0000",
        "p_20251027_0000",
        "p_20251028_0000",
    ]


def test_preview_lists_a_snapshot_that_calendar_years_keep() -> None:
    """Kept 7 years from 1 January 2024, a yearly snapshot stays to 1 January 2031 (two leap days more than
    7 x 365 days): a preview of 31 December 2030 lists it."""
    yearly = Period("y", Frequency.YEARLY, month=1, day_of_month=1, retention=timedelta(days=7 * 365), id="p1")
    profile = Profile("x", "x", "", None, "UTC", (yearly,))
    planned = preview(profile, [], utc(2023, 12, 31, 12), utc(2030, 12, 31, 12))
    assert [p.name for p in planned][:1] == ["y_20240101_0000"] and len(planned) == 7


# -- slots: the calendar ------------------------------------------------------------------------------------


def test_yearly_on_29_february_runs_on_the_28th_in_other_years_over_8_years() -> None:
    leap = Period("leap", Frequency.YEARLY, month=2, day_of_month=29, hour=6)
    assert slots(leap, BERLIN, utc(2025, 1, 1), utc(2033, 1, 1)) == [
        utc(2025, 2, 28, 5),
        utc(2026, 2, 28, 5),
        utc(2027, 2, 28, 5),
        utc(2028, 2, 29, 5),
        utc(2029, 2, 28, 5),
        utc(2030, 2, 28, 5),
        utc(2031, 2, 28, 5),
        utc(2032, 2, 29, 5),
    ]


def test_monthly_on_day_31_runs_on_the_last_day_of_shorter_months_over_a_year() -> None:
    end_of_month = Period("eom", Frequency.MONTHLY, day_of_month=31, hour=2, minute=30)
    assert slots(end_of_month, "UTC", utc(2026, 1, 1), utc(2027, 1, 1)) == [
        utc(2026, 1, 31, 2, 30),
        utc(2026, 2, 28, 2, 30),
        utc(2026, 3, 31, 2, 30),
        utc(2026, 4, 30, 2, 30),
        utc(2026, 5, 31, 2, 30),
        utc(2026, 6, 30, 2, 30),
        utc(2026, 7, 31, 2, 30),
        utc(2026, 8, 31, 2, 30),
        utc(2026, 9, 30, 2, 30),
        utc(2026, 10, 31, 2, 30),
        utc(2026, 11, 30, 2, 30),
        utc(2026, 12, 31, 2, 30),
    ]
    assert next_slot(end_of_month, "UTC", utc(2028, 2, 1)) == utc(2028, 2, 29, 2, 30)


def test_monthly_and_yearly_any_day_run_on_the_first_and_yearly_any_month_in_january() -> None:
    monthly = Period("m", Frequency.MONTHLY, hour=6)
    assert slots(monthly, "UTC", utc(2026, 1, 15), utc(2026, 4, 15)) == [
        utc(2026, 2, 1, 6),
        utc(2026, 3, 1, 6),
        utc(2026, 4, 1, 6),
    ]
    yearly = Period("y", Frequency.YEARLY, day_of_month=15)
    assert slots(yearly, "UTC", utc(2026, 2, 1), utc(2028, 2, 1)) == [utc(2027, 1, 15), utc(2028, 1, 15)]


def test_weekly_with_any_day_runs_once_a_week_on_sunday_over_8_weeks() -> None:
    weekly = Period("weekly", Frequency.WEEKLY, hour=3)
    eight = slots(weekly, "UTC", utc(2026, 1, 1), utc(2026, 2, 28))  # 1 January 2026 is a Thursday
    assert eight == [
        utc(2026, 1, 4, 3),
        utc(2026, 1, 11, 3),
        utc(2026, 1, 18, 3),
        utc(2026, 1, 25, 3),
        utc(2026, 2, 1, 3),
        utc(2026, 2, 8, 3),
        utc(2026, 2, 15, 3),
        utc(2026, 2, 22, 3),
    ]
    wednesday = Period("weekly", Frequency.WEEKLY, day_of_week=3, hour=3)
    assert slots(wednesday, "UTC", utc(2026, 1, 1), utc(2026, 1, 15)) == [utc(2026, 1, 7, 3), utc(2026, 1, 14, 3)]
    saturday = Period("weekly", Frequency.WEEKLY, day_of_week=6)
    assert next_slot(saturday, "UTC", utc(2026, 1, 1)) == utc(2026, 1, 3)


def test_next_slot_is_strictly_after_and_answers_in_utc() -> None:
    daily = Period("d", Frequency.DAILY, hour=2, minute=30)
    assert next_slot(daily, "UTC", utc(2026, 5, 4, 2, 30)) == utc(2026, 5, 5, 2, 30)
    assert next_slot(daily, "UTC", utc(2026, 5, 4, 2, 29, 59, 999999)) == utc(2026, 5, 4, 2, 30)
    hourly = Period("h", Frequency.HOURLY, minute=0)
    assert next_slot(hourly, "UTC", utc(2026, 5, 4, 10)) == utc(2026, 5, 4, 11)
    assert next_slot(hourly, "UTC", utc(2026, 5, 4, 9, 59, 59, 500000)) == utc(2026, 5, 4, 10)
    minutely = Period("m", Frequency.INTERVAL, interval_minutes=1)
    assert next_slot(minutely, BERLIN, utc(2026, 5, 4, 10)) == utc(2026, 5, 4, 10, 1)
    berlin_noon = datetime(2026, 5, 4, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    found = next_slot(hourly, BERLIN, berlin_noon)
    assert found == utc(2026, 5, 4, 11) and found.tzinfo is UTC
    with pytest.raises(ValueError, match="aware"):
        next_slot(hourly, "UTC", datetime(2026, 5, 4))


def test_a_once_period_has_one_slot_and_none_after_it() -> None:
    once = Period("go-live", Frequency.ONCE, at=datetime(2026, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert next_slot(once, BERLIN, NOW) == utc(2026, 6, 1, 12)
    assert next_slot(once, BERLIN, utc(2026, 6, 1, 12)) is None
    assert slots(once, BERLIN, NOW, utc(2027, 1, 1)) == [utc(2026, 6, 1, 12)]
    assert snapshot_name("go-live", utc(2026, 6, 1, 12), BERLIN) == "go-live_20260601_1400"


@pytest.mark.parametrize(
    "period",
    [
        Period("h", Frequency.HOURLY, minute=45),
        Period("i", Frequency.INTERVAL, interval_minutes=20),
        Period("i", Frequency.INTERVAL, interval_minutes=180),
        DAILY_0230,
        Period("w", Frequency.WEEKLY, day_of_week=0, hour=2, minute=30),
        Period("m", Frequency.MONTHLY, day_of_month=29, hour=23, minute=59),
        Period("y", Frequency.YEARLY, month=3, day_of_month=29, hour=2, minute=30),
    ],
)
def test_slots_between_is_next_slot_repeated(period: Period) -> None:
    start, end = utc(2026, 3, 1), utc(2026, 11, 30)
    expected, slot = [], next_slot(period, BERLIN, start)
    while slot is not None and slot <= end:
        expected.append(slot)
        slot = next_slot(period, BERLIN, slot)
    assert slots(period, BERLIN, start, end) == expected and expected
    assert slots(period, BERLIN, expected[0], expected[-1]) == expected[1:]  # (start, end]


def test_a_frequency_given_as_plain_text_runs_like_the_enum() -> None:
    as_text = Period("w", "weekly", day_of_week=3, hour=3)  # type: ignore[arg-type]
    check_period(as_text, "UTC", NOW)
    assert next_slot(as_text, "UTC", utc(2026, 1, 1)) == utc(2026, 1, 7, 3)
    assert steady_state_count(replace(as_text, retention=timedelta(days=14))) == 2


def test_the_last_years_of_the_calendar_have_no_slot() -> None:
    assert next_slot(Period("d", Frequency.DAILY), "UTC", utc(9998, 1, 1)) is None
    assert next_slot(Period("y", Frequency.YEARLY), "UTC", utc(9997, 6, 1)) == utc(9998, 1, 1)


# -- describing ---------------------------------------------------------------------------------------------

CLOCK = " (clock times: a time skipped when clocks go forward is skipped, the repeated hour runs twice)"
HOURS = " (clock times: a time skipped when clocks go forward runs right after, the repeated hour runs twice)"


@pytest.mark.parametrize(
    ("period", "words"),
    [
        (
            Period("p", Frequency.MONTHLY, day_of_month=31, hour=2, minute=30),
            "monthly on day 31 at 02:30 (the last day in shorter months)",
        ),
        (
            Period("p", Frequency.MONTHLY, day_of_month=29),
            "monthly on day 29 at 00:00 (the last day in shorter months)",
        ),
        (Period("p", Frequency.MONTHLY, day_of_month=15, hour=6), "monthly on day 15 at 06:00"),
        (Period("p", Frequency.MONTHLY, hour=6), "monthly on day 1 at 06:00 (any day: the 1st)"),
        (
            Period("p", Frequency.YEARLY, month=2, day_of_month=29),
            "yearly on 29 February at 00:00 (28 February in years that are not leap years)",
        ),
        (Period("p", Frequency.YEARLY), "yearly on 1 January at 00:00 (any month: January; any day: the 1st)"),
        (Period("p", Frequency.YEARLY, month=7, day_of_month=4, hour=9), "yearly on 4 July at 09:00"),
        (Period("p", Frequency.WEEKLY, hour=3), "weekly on Sunday at 03:00 (any day: once a week, on Sunday)"),
        (Period("p", Frequency.WEEKLY, day_of_week=3, hour=3), "weekly on Wednesday at 03:00"),
        (Period("p", Frequency.DAILY, hour=18), "daily at 18:00"),
        (Period("p", Frequency.HOURLY, minute=5), "every hour at minute 05" + CLOCK),
        (
            Period("p", Frequency.INTERVAL, interval_minutes=15),
            "every 15 minutes (at :00, :15, ... past every hour)" + CLOCK,
        ),
        (Period("p", Frequency.INTERVAL, interval_minutes=1), "every minute" + CLOCK),
        (
            Period("p", Frequency.INTERVAL, interval_minutes=360),
            "every 6 hours from midnight (00:00, 06:00, ...)" + HOURS,
        ),
    ],
)
def test_describe_says_when_a_period_runs_and_how_short_months_and_any_days_are_handled(
    period: Period, words: str
) -> None:
    assert describe(period) == words


def test_describe_shows_a_once_period_in_the_profile_zone() -> None:
    once = Period("p", Frequency.ONCE, at=utc(2026, 6, 1, 12))
    assert describe(once, BERLIN) == "once at 2026-06-01 14:00 Europe/Berlin"
    assert describe(once) == "once at 2026-06-01 12:00 UTC"


# -- estimates ----------------------------------------------------------------------------------------------


def test_steady_state_counts_of_the_installed_profiles() -> None:
    system, sox, hipaa, nas = installed_profiles()
    assert profile_estimate(system) == (7, {"hourly": 3, "daily": 3, "midday": 1})
    assert profile_estimate(sox) == (31, {"yearly": 7, "monthly": 12, "weekly": 5, "daily": 7})
    assert profile_estimate(hipaa) == (None, {"yearly": None, "monthly": 12, "weekly": 5, "daily": 7})
    assert profile_estimate(nas) == (3, {"daily": 3})


@pytest.mark.parametrize(
    ("period", "count"),
    [
        (Period("p", Frequency.INTERVAL, interval_minutes=15, retention=HOUR), 4),
        (Period("p", Frequency.INTERVAL, interval_minutes=1, retention=DAY), 1440),
        (Period("p", Frequency.HOURLY, retention=timedelta(minutes=90)), 2),
        (Period("p", Frequency.DAILY, retention=timedelta(hours=12), min_snapshots=0), 1),
        (Period("p", Frequency.DAILY, retention=DAY, min_snapshots=5), 5),
        (Period("p", Frequency.WEEKLY, retention=timedelta(days=28)), 4),
        (Period("p", Frequency.WEEKLY, retention=timedelta(days=29)), 5),
        # Two monthly slots fit in 31 days (1 February and 1 March are 28 days apart) ...
        (Period("p", Frequency.MONTHLY, retention=timedelta(days=31)), 2),
        (Period("p", Frequency.MONTHLY, retention=timedelta(days=28)), 1),
        # ... three in 60 days (1 January to 1 March: 59 days), not in 59.
        (Period("p", Frequency.MONTHLY, retention=timedelta(days=59)), 2),
        (Period("p", Frequency.MONTHLY, retention=timedelta(days=60)), 3),
        # Day 31: 31 January, 28 February, 31 March are 59 days apart; 28 February to 30 April 61.
        (Period("p", Frequency.MONTHLY, day_of_month=31, retention=timedelta(days=62)), 3),
        (Period("p", Frequency.MONTHLY, day_of_month=31, retention=timedelta(days=59)), 2),
        # A year is 365 or 366 days: two yearly slots fit in 366 days, not in 365.
        (Period("p", Frequency.YEARLY, retention=timedelta(days=365)), 1),
        (Period("p", Frequency.YEARLY, retention=timedelta(days=366)), 2),
        # 29 February: 29 February 2028 to 28 February 2029 is 365 days, the shortest year between two slots.
        (Period("p", Frequency.YEARLY, month=2, day_of_month=29, retention=timedelta(days=366)), 2),
        (Period("p", Frequency.YEARLY, month=2, day_of_month=29, retention=timedelta(days=365)), 1),
        (Period("p", Frequency.DAILY), None),
        (Period("p", Frequency.ONCE, at=utc(2027, 1, 1)), 1),
        (Period("p", Frequency.ONCE, at=utc(2027, 1, 1), retention=DAY, min_snapshots=0), 1),
    ],
)
def test_steady_state_count_is_the_most_slots_in_a_retention_window(period: Period, count: int | None) -> None:
    assert steady_state_count(period) == count


# -- preview ------------------------------------------------------------------------------------------------


def profile_of(*periods: Period, zone: str = "UTC") -> Profile:
    return Profile("id", "test", "", None, zone, periods)


def test_preview_holds_the_newest_expired_snapshots_up_to_the_minimum() -> None:
    daily = Period("daily", Frequency.DAILY, retention=DAY, min_snapshots=3)
    got = preview(profile_of(daily), [], utc(2026, 1, 1, 12), utc(2026, 1, 10, 6))
    assert got == [
        Planned(
            "daily",
            "daily_20260108_0000",
            utc(2026, 1, 8),
            utc(2026, 1, 9),
            PlannedStatus.HELD,
            False,
            False,
            timedelta(days=1, hours=6),
        ),
        Planned(
            "daily",
            "daily_20260109_0000",
            utc(2026, 1, 9),
            utc(2026, 1, 10),
            PlannedStatus.HELD,
            False,
            False,
            timedelta(hours=6),
        ),
        Planned("daily", "daily_20260110_0000", utc(2026, 1, 10), utc(2026, 1, 11), PlannedStatus.READY, False, False),
    ]


def test_preview_a_held_snapshot_goes_when_a_newer_one_replaces_it() -> None:
    daily = Period("daily", Frequency.DAILY, retention=timedelta(hours=12))
    held = preview(profile_of(daily), [], utc(2026, 1, 1, 12), utc(2026, 1, 3, 23, 59))
    assert [(p.name, p.status, p.overdue) for p in held] == [
        ("daily_20260103_0000", PlannedStatus.HELD, timedelta(hours=11, minutes=59))
    ]
    replaced = preview(profile_of(daily), [], utc(2026, 1, 1, 12), utc(2026, 1, 4))
    assert [(p.name, p.status) for p in replaced] == [("daily_20260104_0000", PlannedStatus.READY)]
    none_held = preview(profile_of(replace(daily, min_snapshots=0)), [], utc(2026, 1, 1, 12), utc(2026, 1, 3, 23, 59))
    assert none_held == []


def test_preview_counts_existing_snapshots_towards_the_holds_and_keeps_their_flags() -> None:
    daily = Period("daily", Frequency.DAILY, hour=6, retention=DAY, min_snapshots=2, immutable=True)
    existing = [
        Existing("daily_20251230_0600", "daily", utc(2025, 12, 30, 6), utc(2025, 12, 31, 6), immutable=True),
        Existing("daily_20251231_0600", "daily", utc(2025, 12, 31, 6), utc(2026, 1, 1, 6), immutable=True),
        Existing("daily_20260101_0600", "daily", utc(2026, 1, 1, 6), utc(2026, 1, 2, 6)),
    ]
    now = utc(2026, 1, 1, 12)
    assert preview(profile_of(daily), existing, now, now) == [
        Planned(
            "daily",
            "daily_20251231_0600",
            utc(2025, 12, 31, 6),
            utc(2026, 1, 1, 6),
            PlannedStatus.HELD,
            True,
            True,
            timedelta(hours=6),
        ),
        Planned(
            "daily", "daily_20260101_0600", utc(2026, 1, 1, 6), utc(2026, 1, 2, 6), PlannedStatus.READY, True, False
        ),
    ]
    assert preview(profile_of(daily), existing, now, utc(2026, 1, 2, 12)) == [
        Planned(
            "daily",
            "daily_20260101_0600",
            utc(2026, 1, 1, 6),
            utc(2026, 1, 2, 6),
            PlannedStatus.HELD,
            True,
            False,
            timedelta(hours=6),
        ),
        Planned(
            "daily", "daily_20260102_0600", utc(2026, 1, 2, 6), utc(2026, 1, 3, 6), PlannedStatus.READY, False, True
        ),
    ]


def test_preview_lists_several_periods_in_order_and_snapshots_of_a_removed_period_only_until_expiry() -> None:
    hourly = Period("hourly", Frequency.HOURLY, retention=timedelta(hours=2), min_snapshots=0)
    midnight = Period("midnight", Frequency.DAILY, retention=None)
    gone = Existing("old_20251231_0000", "old", utc(2025, 12, 31), utc(2026, 1, 2))
    now = utc(2025, 12, 31, 22, 30)
    at = utc(2026, 1, 1, 1, 0)
    assert [(p.name, p.existing, p.expires_at) for p in preview(profile_of(hourly, midnight), [gone], now, at)] == [
        ("old_20251231_0000", True, utc(2026, 1, 2)),
        ("hourly_20260101_0000", False, utc(2026, 1, 1, 2)),
        ("midnight_20260101_0000", False, None),
        ("hourly_20260101_0100", False, utc(2026, 1, 1, 3)),
    ]
    later = preview(profile_of(hourly), [gone], now, utc(2026, 1, 2))
    assert [p.name for p in later] == ["hourly_20260101_2300", "hourly_20260102_0000"]


def test_preview_far_ahead_lists_only_what_survives_and_uses_local_names() -> None:
    hourly = Period("hourly", Frequency.HOURLY, retention=HOUR, min_snapshots=5)
    got = preview(profile_of(hourly, zone=BERLIN), [], utc(2026, 1, 1), utc(2026, 7, 10, 0, 30))
    # 00:30 UTC is 02:30 in Berlin: the 02:00 snapshot is current, the four before it are held.
    assert [(p.name, p.status, p.overdue) for p in got] == [
        ("hourly_20260709_2200", PlannedStatus.HELD, timedelta(hours=3, minutes=30)),
        ("hourly_20260709_2300", PlannedStatus.HELD, timedelta(hours=2, minutes=30)),
        ("hourly_20260710_0000", PlannedStatus.HELD, timedelta(hours=1, minutes=30)),
        ("hourly_20260710_0100", PlannedStatus.HELD, timedelta(minutes=30)),
        ("hourly_20260710_0200", PlannedStatus.READY, None),
    ]
    assert got[-1].created_at == utc(2026, 7, 10, 0, 0)


def test_preview_a_once_period_is_held_past_its_expiry_while_it_is_its_periods_newest() -> None:
    once = Period("go-live", Frequency.ONCE, at=utc(2026, 2, 1, 9), retention=DAY)
    got = preview(profile_of(once, zone=BERLIN), [], NOW, utc(2027, 1, 1))
    assert got == [
        Planned(
            "go-live",
            "go-live_20260201_1000",
            utc(2026, 2, 1, 9),
            utc(2026, 2, 2, 9),
            PlannedStatus.HELD,
            False,
            False,
            timedelta(days=332, hours=15),
        )
    ]
    assert preview(profile_of(replace(once, min_snapshots=0)), [], NOW, utc(2027, 1, 1)) == []


def test_preview_refuses_the_past_and_a_list_too_long_to_show() -> None:
    with pytest.raises(InvalidSchedule, match="before now"):
        preview(profile_of(Period("d", Frequency.DAILY)), [], NOW, NOW - HOUR)
    forever = Period("m", Frequency.INTERVAL, interval_minutes=1)
    with pytest.raises(InvalidSchedule, match="more than 100000 snapshots"):
        preview(profile_of(forever), [], NOW, NOW + timedelta(days=365))
