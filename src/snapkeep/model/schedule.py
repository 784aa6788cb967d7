"""When a profile's periods take their snapshots, and which snapshots that leaves in store (SPEC §4).

Pure computation on values: no catalog, no clock of its own, no I/O beyond the time zone database. Instants
go in and come out as aware datetimes (UTC out); the profile's zone only decides which instants are slots.

When a period runs
------------------
Slots are wall-clock times in the profile's time zone:

- ``interval`` of k minutes (k divides 60, or is a whole number of hours dividing a day): whenever the clock
  shows a multiple of k minutes after midnight (k = 15: :00, :15, :30, :45 of every hour; k = 120: 00:00,
  02:00, ...). Other k would drift against the hour and the day, so the schedule would not repeat daily.
- ``hourly`` at minute M: whenever the clock shows HH:MM.
- ``daily``, ``weekly``, ``monthly``, ``yearly`` at ``hour``:``minute`` on the days they name.
- ``once``: at ``at`` (an aware time on a whole minute).

Days the fields leave open or the calendar lacks:

- weekly with day "any" (``None``): once a week, on Sunday;
- monthly with day "any": the 1st; on day 29, 30 or 31: the last day of the months shorter than that;
- yearly with month "any": January; with day "any": the 1st; on 29 February: 28 February in years that are
  not leap years. Dates no year has (30 February, 31 April) are refused.

Daylight saving time:

- A daily or longer period runs exactly once on each day it names. A time the clock skips (02:30 in
  Europe/Berlin on the last Sunday of March) runs at the instant that time would have had without the
  change, shifted by the length of the gap: 03:30 summer time, exactly 24 hours after the day before's 02:30
  (Python's ``fold=0`` reading). A time the clock shows twice (02:30 on the last Sunday of October) runs at
  its first occurrence only.
- Hourly and interval periods promise a spacing in elapsed time ("lose at most an hour"), so they run
  whenever the clock shows one of their times: a skipped time is skipped (clocks jump 02:00 → 03:00: the
  03:15 snapshot comes one hour after 01:15) and in the hour repeated when clocks go back they run in both
  occurrences (running only the first would leave two hours between snapshots). Names are unique per
  subject, so the second occurrence's name carries the suffix ``_2``. An interval of several hours whose
  time is skipped (00:00 where clocks jump from midnight, as in Africa/Cairo) runs right after the gap, as
  a daily period does: skipping it would leave up to twice the interval between snapshots.

Names are ``<period>_<YYYYMMDD>_<HHMM>`` of the slot's own local time (SPEC §2): the daily 02:30 of the
spring-forward day is ``..._0330``; the second 02:15 of the fall-back night is ``..._0215_2``.

The fields of "when" a frequency does not use must stay at their defaults (``minute`` and ``hour`` 0, the others
unset): a weekly period given a day of the month was meant as something else, so it is refused, not ignored.

What a period keeps
-------------------
A snapshot expires at created + retention (a retention of whole years: the same date that many years on,
if later, so that leap days never cut "7 years" short). At any time the newest ``min_snapshots`` snapshots of a period
(per subject) are kept even if expired (status ``held``); an older expired one goes. An immutable lock ends
at expiry, so it never keeps a snapshot past it: it only refuses deletion before. The steady-state count of a
period is the largest number of its slots in any window of length ``retention`` (created in (T - R, T]), and
at least ``min_snapshots``; months and years are counted over the whole Gregorian cycle, so the count is the
largest the calendar allows (13 monthly slots never fit in 365 days, 2 fit in 31 days across February).
Daylight saving time is not counted: when a retention is a whole number of days, the 23-hour day of spring
forward lets a daily or longer period hold one snapshot more for an hour.
"""

from __future__ import annotations

import re
from calendar import monthrange
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cache, lru_cache
from itertools import count
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from snapkeep.errors import InvalidSchedule
from snapkeep.model.profile import Frequency, Period, Profile
from snapkeep.model.timespec import expiry_after

MAX_PERIODS = 32  # per profile
MAX_MIN_SNAPSHOTS = 1000
MIN_RETENTION = timedelta(minutes=1)
MAX_RETENTION = timedelta(days=999 * 365)  # the longest duration snapkeep reads (999y)
MAX_PREVIEW = 100_000  # snapshots a preview may list for one subject
# Interval lengths that repeat every hour (divisors of 60) or every day (whole hours dividing 24).
INTERVALS = (*(k for k in range(1, 61) if 60 % k == 0), *(k for k in range(120, 1441, 60) if 1440 % k == 0))
DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")  # day_of_week 0-6
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_PERIOD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
# The fields of "when" each frequency reads; the others must stay at their defaults.
_USES = {
    Frequency.INTERVAL: {"interval_minutes"},
    Frequency.HOURLY: {"minute"},
    Frequency.DAILY: {"minute", "hour"},
    Frequency.WEEKLY: {"minute", "hour", "day_of_week"},
    Frequency.MONTHLY: {"minute", "hour", "day_of_month"},
    Frequency.YEARLY: {"minute", "hour", "day_of_month", "month"},
    Frequency.ONCE: {"at"},
}
_WHEN = ("minute", "hour", "day_of_week", "day_of_month", "month", "interval_minutes", "at")
_WHEN_DEFAULTS = {field.name: field.default for field in fields(Period) if field.name in _WHEN}
_Refuse = Callable[[str, str], InvalidSchedule]  # builds the error for a field of the period being checked
_LAST_YEAR = 9997  # slots are computed up to here; the calendar of datetime ends in 9999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)
# Longer than any gap between two slots of a frequency, DST and skipped clock times included.
_MAX_GAP = {
    Frequency.DAILY: timedelta(days=2),
    Frequency.WEEKLY: timedelta(days=8),
    Frequency.MONTHLY: timedelta(days=32),
    Frequency.YEARLY: timedelta(days=367),
}


# -- validation ---------------------------------------------------------------------------------------------


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=512)
def _zone(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise InvalidSchedule(f"unknown time zone {str(zone)[:64]!r}", zone=str(zone)[:64]) from exc


def check_zone(zone: str) -> None:
    """Raise :class:`InvalidSchedule` unless ``zone`` is an IANA zone name of this host's time zone database."""
    if not isinstance(zone, str) or zone not in _known_zones():
        raise InvalidSchedule(
            f"unknown time zone {str(zone)[:64]!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'",
            zone=str(zone)[:64],
        )
    _zone(zone)


def check_period(period: Period, zone: str, now: datetime) -> None:
    """Raise :class:`InvalidSchedule` unless ``period`` can run in ``zone`` as written (a once period: after
    ``now``)."""
    check_zone(zone)
    _check_period(period, now)


def check_profile(profile: Profile, now: datetime, previous: Profile | None = None) -> None:
    """Raise :class:`InvalidSchedule` unless every period of ``profile`` can run as written in its zone.

    ``previous`` is the stored version when a profile is updated: a once period it already held at the same
    time is not refused for having passed (it ran; its other fields and the profile may still be edited).
    """
    check_zone(profile.timezone)
    if len(profile.periods) > MAX_PERIODS:
        raise InvalidSchedule(
            f"a profile holds at most {MAX_PERIODS} periods, got {len(profile.periods)}", periods=len(profile.periods)
        )
    seen: set[str] = set()
    for period in profile.periods:
        if period.name in seen:
            raise InvalidSchedule(f"two periods are named {period.name!r}: names are unique in a profile")
        seen.add(period.name)
    ran_at = {p.id: p.at for p in previous.periods if p.id} if previous is not None else {}
    for period in profile.periods:  # a stored once period keeping its time may have passed (it ran)
        kept = period.id in ran_at and ran_at[period.id] == period.at
        _check_period(period, None if kept else now)


def _check_period(period: Period, now: datetime | None) -> None:
    name = period.name
    if not isinstance(name, str) or not _PERIOD_NAME.fullmatch(name) or ".." in name:
        raise InvalidSchedule(
            f"period name {str(name)[:64]!r} must be 1-64 letters, digits, '.', '_' or '-', start with a letter "
            "or digit and not contain '..' (it begins the names of the snapshots the period takes)",
            field="name",
        )

    def refuse(field: str, why: str) -> InvalidSchedule:
        return InvalidSchedule(f"period {name!r}: {why}", period=name, field=field)

    try:
        frequency = Frequency(period.frequency)
    except ValueError:
        choices = ", ".join(f.value for f in Frequency)
        raise refuse("frequency", f"unknown frequency {period.frequency!r} (one of {choices})") from None
    uses = _USES[frequency]
    for field, default in _WHEN_DEFAULTS.items():
        if field not in uses and getattr(period, field) != default:
            article = "an" if frequency in (Frequency.INTERVAL, Frequency.HOURLY) else "a"
            raise refuse(field, f"{article} {frequency} period does not use {field}; leave it at {default}")
    for flag in ("quiesce", "immutable", "private", "skip_missed"):
        if not isinstance(getattr(period, flag), bool):
            raise refuse(flag, f"{flag} is true or false, got {getattr(period, flag)!r}")
    for field in ("minute", "hour", "min_snapshots"):
        value = getattr(period, field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse(field, f"{field} is a whole number, got {value!r}")
    _check_range(refuse, "minute", period.minute, 0, 59)
    _check_range(refuse, "hour", period.hour, 0, 23)
    _check_range(refuse, "day_of_week", period.day_of_week, 0, 6, " (0 = Sunday ... 6 = Saturday)")
    _check_range(refuse, "day_of_month", period.day_of_month, 1, 31)
    _check_range(refuse, "month", period.month, 1, 12)
    if period.month is not None and period.day_of_month is not None:
        longest = _LONGEST_MONTH[period.month - 1]
        if period.day_of_month > longest:
            raise refuse(
                "day_of_month",
                f"{MONTHS[period.month - 1]} has no day {period.day_of_month} (at most {longest})",
            )
    if frequency == Frequency.INTERVAL and period.interval_minutes not in INTERVALS:
        allowed = ", ".join(map(str, INTERVALS))
        raise refuse(
            "interval_minutes",
            f"an interval of {period.interval_minutes} minutes does not repeat every hour or every day; "
            f"choose one of {allowed}",
        )
    if frequency == Frequency.ONCE:
        _check_once(refuse, period.at, now)
    _check_retention(refuse, period.retention)
    if not 0 <= period.min_snapshots <= MAX_MIN_SNAPSHOTS:
        raise refuse(
            "min_snapshots",
            f"minimum snapshots must be 0-{MAX_MIN_SNAPSHOTS} (0: none held), got {period.min_snapshots}",
        )


def _check_range(refuse: _Refuse, field: str, value: int | None, low: int, high: int, note: str = "") -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
        raise refuse(field, f"{field} must be {low}-{high}{note}, got {value!r}")


def _check_once(refuse: _Refuse, at: datetime | None, now: datetime | None) -> None:
    if at is None:
        raise refuse("at", "a once period needs the time it runs at")
    if at.tzinfo is None or at.utcoffset() is None:
        raise refuse("at", f"the time of a once period needs a UTC offset or zone, got {at.isoformat()}")
    if at.second or at.microsecond:
        raise refuse("at", f"a once period runs at a whole minute, got {at.isoformat()}")
    if not 1 < at.year < 9999:
        raise refuse("at", f"{at.isoformat()} is outside the years 2-9998")
    if now is not None and at <= now:
        raise refuse("at", f"a once period at {at.isoformat()} is in the past (now is {now.isoformat()})")


def _check_retention(refuse: _Refuse, retention: timedelta | None) -> None:
    if retention is not None and not MIN_RETENTION <= retention <= MAX_RETENTION:
        raise refuse("retention", f"retention must be from 1 minute to 999 years, or forever; got {retention}")


# -- slots --------------------------------------------------------------------------------------------------


def next_slot(period: Period, zone: str, after: datetime) -> datetime | None:
    """The first slot of ``period`` strictly after ``after`` (aware), in UTC; ``None`` once a once period
    has passed (or after the year 9997).

    Cost is a handful of zone look-ups, never a walk over minutes or days: fit to call for every (subject,
    period) pair on each tick of the scheduler.
    """
    _require_aware(after, "after")
    frequency = period.frequency
    if frequency == Frequency.ONCE:
        return period.at.astimezone(UTC) if period.at is not None and period.at > after else None
    if after.year > _LAST_YEAR:
        return None
    tz = _zone(zone)
    if frequency == Frequency.HOURLY:
        return _EPOCH + _next_on_clock(_seconds(after), 3600, period.minute * 60, tz) * _SECOND
    if frequency == Frequency.INTERVAL:
        if period.interval_minutes is None:
            raise ValueError(f"interval period {period.name!r} has no interval_minutes (check_period refuses it)")
        return _EPOCH + _next_on_clock(_seconds(after), period.interval_minutes * 60, 0, tz) * _SECOND
    return _next_on_calendar(period, tz, after)


def slots_between(period: Period, zone: str, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every slot of ``period`` in (``start``, ``end``], in order, in UTC."""
    _require_aware(end, "end")
    slot = next_slot(period, zone, start)
    while slot is not None and slot <= end:
        yield slot
        slot = next_slot(period, zone, slot)


def snapshot_name(period_name: str, slot: datetime, zone: str) -> str:
    """``<period>_<YYYYMMDD>_<HHMM>`` of ``slot`` on the clock of ``zone``; the second occurrence of a time the
    clock shows twice (an hourly slot in the hour repeated when clocks go back) ends in ``_2``."""
    local = slot.astimezone(_zone(zone))
    name = f"{period_name}_{local:%Y%m%d_%H%M}"
    return f"{name}_2" if local.fold else name


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got {moment.isoformat()}")


def _seconds(moment: datetime) -> int:
    """Whole seconds since the epoch, rounded down (so "after" a fraction of a second is the next second)."""
    return (moment - _EPOCH) // _SECOND


def _offset(timestamp: int, tz: ZoneInfo) -> int:
    """The zone's UTC offset in seconds at ``timestamp``."""
    offset = datetime.fromtimestamp(timestamp, tz).utcoffset()
    return 0 if offset is None else offset // _SECOND


def _next_on_clock(after: int, step: int, phase: int, tz: ZoneInfo) -> int:
    """The first instant t > ``after`` (epoch seconds) at which the clock of ``tz`` shows a time of day that is
    ``phase`` seconds past a multiple of ``step`` (which divides a day).

    Within (start, start + step] the zone has at most one offset change (a step is at most a day), so the
    offset is the one at either end; for each offset there is exactly one instant in the window whose local
    time fits, and it is a slot only if the zone really has that offset then. No slot in the window (a
    skipped time): a step of minutes or one hour tries the next window (the gap costs at most an hour); a
    step of several hours runs the skipped time right after the gap, shifted by its length, as a daily
    period does (skipping it would leave up to twice the step between snapshots).
    """
    start = after
    while True:
        first, last = _offset(start + 1, tz), _offset(start + step, tz)
        if first == last:  # no change of offset in the window, the common case
            return start + step - (start + first - phase) % step
        best: int | None = None
        for offset in (first, last):
            candidate = start + step - (start + offset - phase) % step
            if _offset(candidate, tz) == offset and (best is None or candidate < best):
                best = candidate
        if best is not None:
            return best
        if step > 3600 and last > first:  # clocks went forward: the skipped time, read with the offset
            return start + step - (start + first - phase) % step  # before the change (fold=0), after the gap
        start += step


def _next_on_calendar(period: Period, tz: ZoneInfo, after: datetime) -> datetime:
    # From the day before: a time skipped on that day runs after the gap, possibly after midnight.
    first_day = after.astimezone(tz).date() - _DAY
    for day in _days(period, first_day):
        slot = datetime(day.year, day.month, day.day, period.hour, period.minute, tzinfo=tz).astimezone(UTC)
        if slot > after:
            return slot
    raise AssertionError("a calendar period runs on infinitely many days")


def _days(period: Period, start: date) -> Iterator[date]:
    """The days a daily, weekly, monthly or yearly period runs on, in order, from the first on or after
    ``start`` (the monthly and yearly ones from ``start``'s month or year)."""
    frequency = period.frequency
    if frequency == Frequency.DAILY or frequency == Frequency.WEEKLY:
        step = _DAY
        day = start
        if frequency == Frequency.WEEKLY:
            step = 7 * _DAY
            wanted = ((period.day_of_week or 0) - 1) % 7  # date.weekday(): Monday is 0
            day = start + (wanted - start.weekday()) % 7 * _DAY
        while True:
            yield day
            day += step
    if frequency == Frequency.MONTHLY:
        year, month = start.year, start.month
        while True:
            yield _clamped(year, month, period.day_of_month or 1)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    for year in count(start.year):
        yield _clamped(year, period.month or 1, period.day_of_month or 1)


def _clamped(year: int, month: int, day: int) -> date:
    """``day`` of the month, or the month's last day when the month is shorter."""
    return date(year, month, min(day, monthrange(year, month)[1]))


# -- describing ---------------------------------------------------------------------------------------------

_CLOCK_NOTE = "clock times: a time skipped when clocks go forward is skipped, the repeated hour runs twice"
_HOURS_NOTE = "clock times: a time skipped when clocks go forward runs right after, the repeated hour runs twice"


def describe(period: Period, zone: str | None = None) -> str:
    """When ``period`` runs, in words, with the rule for days the fields leave open or short months lack.

    Shown to the operator when a profile is saved; ``zone`` names the zone a once period's time is shown in.
    """
    clock = f"{period.hour:02d}:{period.minute:02d}"
    frequency = period.frequency
    if frequency == Frequency.INTERVAL:
        minutes = period.interval_minutes or 0
        return f"{_interval_words(minutes)} ({_HOURS_NOTE if minutes > 60 else _CLOCK_NOTE})"
    if frequency == Frequency.HOURLY:
        return f"every hour at minute {period.minute:02d} ({_CLOCK_NOTE})"
    if frequency == Frequency.DAILY:
        return f"daily at {clock}"
    if frequency == Frequency.WEEKLY:
        if period.day_of_week is None:
            return f"weekly on Sunday at {clock} (any day: once a week, on Sunday)"
        return f"weekly on {DAYS[period.day_of_week]} at {clock}"
    if frequency == Frequency.MONTHLY:
        if period.day_of_month is None:
            return f"monthly on day 1 at {clock} (any day: the 1st)"
        note = " (the last day in shorter months)" if period.day_of_month > 28 else ""
        return f"monthly on day {period.day_of_month} at {clock}{note}"
    if frequency == Frequency.YEARLY:
        return _yearly_words(period, clock)
    if period.at is None:
        return "once (no time set)"
    shown = period.at.astimezone(_zone(zone)) if zone else period.at
    return f"once at {shown:%Y-%m-%d %H:%M} {zone or shown.tzname()}"


def _interval_words(minutes: int) -> str:
    if minutes == 1:
        return "every minute"
    if minutes < 60:
        return f"every {minutes} minutes (at :00, :{minutes:02d}, ... past every hour)"
    if minutes == 60:
        return "every hour on the hour"
    hours = minutes // 60
    if hours == 24:
        return "every 24 hours at 00:00"
    return f"every {hours} hours from midnight (00:00, {hours:02d}:00, ...)"


def _yearly_words(period: Period, clock: str) -> str:
    month, day = period.month or 1, period.day_of_month or 1
    notes = []
    if period.month is None:
        notes.append("any month: January")
    if period.day_of_month is None:
        notes.append("any day: the 1st")
    if month == 2 and day == 29:
        notes.append("28 February in years that are not leap years")
    text = f"yearly on {day} {MONTHS[month - 1]} at {clock}"
    return f"{text} ({'; '.join(notes)})" if notes else text


# -- estimates ----------------------------------------------------------------------------------------------


def steady_state_count(period: Period) -> int | None:
    """How many snapshots of ``period`` one subject holds in steady state: the most slots in any window of
    its retention, at least ``min_snapshots``; ``None`` (unbounded) for a repeating period kept forever, 1 for
    a once period."""
    if period.frequency == Frequency.ONCE:
        return 1
    if period.retention is None:
        return None
    return max(_slots_within(period, period.retention), period.min_snapshots)


def profile_estimate(profile: Profile) -> tuple[int | None, dict[str, int | None]]:
    """The steady-state count per subject for the whole profile (``None``: unbounded) and per period name."""
    counts = {period.name: steady_state_count(period) for period in profile.periods}
    bounded = [count for count in counts.values() if count is not None]
    return (sum(bounded) if len(bounded) == len(counts) else None), counts


def _slots_within(period: Period, retention: timedelta) -> int:
    frequency = period.frequency
    if frequency == Frequency.MONTHLY or frequency == Frequency.YEARLY:
        return _calendar_slots_within(frequency, period.month, period.day_of_month, retention)
    spacing = {
        Frequency.INTERVAL: timedelta(minutes=period.interval_minutes or 1),
        Frequency.HOURLY: timedelta(hours=1),
        Frequency.DAILY: _DAY,
        Frequency.WEEKLY: 7 * _DAY,
    }[frequency]
    return -(-retention // spacing)  # points ``spacing`` apart in a half-open window: ceil(R / S)


@lru_cache(maxsize=1024)
def _calendar_slots_within(frequency: Frequency, month: int | None, day: int | None, retention: timedelta) -> int:
    """The most monthly or yearly slots in any window of ``retention``, over a whole 400-year Gregorian cycle
    (after which the calendar repeats) plus the retention itself."""
    years = range(2000, 2000 + 400 + retention.days // 365 + 2)
    months = range(1, 13) if frequency == Frequency.MONTHLY else (month or 1,)
    days = [_clamped(year, m, day or 1).toordinal() for year in years for m in months]
    limit = retention / _DAY
    most = first = 0
    for last, ordinal in enumerate(days):
        while ordinal - days[first] >= limit:
            first += 1
        most = max(most, last - first + 1)
    return most


# -- preview ------------------------------------------------------------------------------------------------


class PlannedStatus(StrEnum):
    READY = "ready"
    HELD = "held"  # expired, kept as one of the newest ``min_snapshots`` of its period


@dataclass(frozen=True)
class Existing:
    """A snapshot one of the profile's periods already took of the subject (ready or held)."""

    name: str
    period: str  # the period's name
    created_at: datetime
    expires_at: datetime | None
    immutable: bool = False  # locked; a lock ends at expiry, so it keeps nothing past it


@dataclass(frozen=True)
class Planned:
    """A snapshot that exists at the preview's time: one taken already (``existing``) or one a slot will take."""

    period: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    status: PlannedStatus
    existing: bool
    immutable: bool
    overdue: timedelta | None = None  # held: how long past its expiry


def preview(profile: Profile, existing: Iterable[Existing], now: datetime, at: datetime) -> list[Planned]:
    """Which of one subject's snapshots of ``profile`` exist at ``at``, taking none: those already taken
    (``existing``) and those its periods will take after ``now``, under the expiry and hold rules. Sorted
    by creation time (then period name). A snapshot of a period the profile no longer has keeps only its
    expiry (no period holds it).
    """
    _require_aware(now, "now")
    _require_aware(at, "at")
    if at < now:
        raise InvalidSchedule(f"a preview looks ahead: {at.isoformat()} is before now ({now.isoformat()})")
    candidates: dict[str, list[tuple[datetime, str, datetime | None, bool, bool]]] = {}
    for snap in existing:
        if snap.created_at <= at:
            candidates.setdefault(snap.period, []).append(
                (snap.created_at, snap.name, snap.expires_at, snap.immutable, True)
            )
    planned = 0
    for period in profile.periods:
        future = candidates.setdefault(period.name, [])
        for slot in slots_between(period, profile.timezone, _first_needed(period, now, at), at):
            planned += 1
            if planned > MAX_PREVIEW:
                raise InvalidSchedule(
                    f"the preview would list more than {MAX_PREVIEW} snapshots; choose an earlier time"
                )
            expires = _expiry(slot, period.retention)
            future.append((slot, snapshot_name(period.name, slot, profile.timezone), expires, period.immutable, False))
    holds = {period.name: period.min_snapshots for period in profile.periods}
    result: list[Planned] = []
    for period_name, snaps in candidates.items():
        snaps.sort(key=lambda snap: snap[0], reverse=True)
        for rank, (created, name, expires, immutable, taken) in enumerate(snaps):
            if expires is None or at < expires:
                status, overdue = PlannedStatus.READY, None
            elif rank < holds.get(period_name, 0):
                status, overdue = PlannedStatus.HELD, at - expires
            else:
                continue
            result.append(Planned(period_name, name, created, expires, status, taken, immutable, overdue))
    result.sort(key=lambda snap: (snap.created_at, snap.period, snap.name))
    return result


@dataclass(frozen=True)
class Lifetime:
    """One snapshot of a subject over a stretch of time: from its creation until the expiry sweep may
    delete it (its expiry, or later while its period's minimum count holds it)."""

    period: str
    name: str
    created_at: datetime
    expires_at: datetime | None
    gone_at: datetime | None  # None: not before the end of the stretch (or never)
    existing: bool
    immutable: bool


def lifetimes(profile: Profile, existing: Iterable[Existing], now: datetime, until: datetime) -> list[Lifetime]:
    """Every snapshot of one subject that exists at some time of [``now``, ``until``], with when it goes:
    the timeline of :func:`preview`. At any ``at`` of that stretch, the snapshots ``preview(profile, existing,
    now, at)`` lists are those with ``created_at <= at < gone_at``. Sorted like :func:`preview`."""
    _require_aware(now, "now")
    _require_aware(until, "until")
    if until < now:
        raise InvalidSchedule(f"a timeline looks ahead: {until.isoformat()} is before now ({now.isoformat()})")
    candidates: dict[str, list[tuple[datetime, str, datetime | None, bool, bool]]] = {}
    for snap in existing:
        if snap.created_at <= until:
            candidates.setdefault(snap.period, []).append(
                (snap.created_at, snap.name, snap.expires_at, snap.immutable, True)
            )
    planned = 0
    for period in profile.periods:
        future = candidates.setdefault(period.name, [])
        for slot in slots_between(period, profile.timezone, now, until):
            planned += 1
            if planned > MAX_PREVIEW:
                raise InvalidSchedule(f"the timeline would hold more than {MAX_PREVIEW} snapshots; look less far")
            expires = _expiry(slot, period.retention)
            future.append((slot, snapshot_name(period.name, slot, profile.timezone), expires, period.immutable, False))
    holds = {period.name: period.min_snapshots for period in profile.periods}
    result: list[Lifetime] = []
    for period_name, snaps in candidates.items():
        snaps.sort(key=lambda snap: snap[0])
        keep = holds.get(period_name, 0)
        for index, (created, name, expires, immutable, taken) in enumerate(snaps):
            # held past its expiry until ``keep`` newer snapshots of its period exist
            pushed_out = snaps[index + keep][0] if keep and index + keep < len(snaps) else None
            if expires is None or (keep and pushed_out is None):
                gone = None
            else:
                gone = expires if pushed_out is None else max(expires, pushed_out)
            if gone is None or gone > now:
                result.append(Lifetime(period_name, name, created, expires, gone, taken, immutable))
    result.sort(key=lambda snap: (snap.created_at, snap.period, snap.name))
    return result


def _expiry(created: datetime, retention: timedelta | None) -> datetime | None:
    """created + retention (:func:`expiry_after`: years are calendar years); past the calendar's end (the
    year 9999) it never comes: None."""
    if retention is None:
        return None
    try:
        return expiry_after(created, retention)
    except OverflowError:
        return None


def _first_needed(period: Period, now: datetime, at: datetime) -> datetime:
    """Where a preview starts listing a period's future slots: a slot older than both the retention and the
    newest ``min_snapshots`` slots before ``at`` is gone by then."""
    if period.retention is None or period.frequency == Frequency.ONCE:
        return now
    if period.frequency == Frequency.HOURLY or period.frequency == Frequency.INTERVAL:
        step = timedelta(minutes=60 if period.frequency == Frequency.HOURLY else period.interval_minutes or 1)
        gap = 2 * step + timedelta(hours=6)  # a skipped clock time can drop a slot
    else:
        gap = _MAX_GAP[period.frequency]
    leap_days = timedelta(days=period.retention.days // 365 + 1)  # years of retention are calendar years
    return max(now, at - max(period.retention + leap_days, period.min_snapshots * gap))
