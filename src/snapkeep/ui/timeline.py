"""Snapshots drawn on a timeline: the geometry of the SVG that ``templates/timeline.html`` renders.

One row per period (a profile's preview) or per origin (a subject's snapshots), a mark per snapshot from its
creation to when it goes, stacked in lanes so that the marks over any instant are the snapshots that exist
then. The part a period's minimum count holds past the expiry is marked as held; a snapshot locked against
deletion (immutable, until its expiry) is outlined. Drawn on the server, no script: the page works without
JavaScript and the picture is in the HTML a test reads.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from snapkeep.model.profile import Profile
from snapkeep.model.schedule import Lifetime
from snapkeep.model.types import SnapshotStatus

WIDTH = 960
PLOT_X = 150  # the row labels' column
AXIS_H = 24
LANE_H = 7.0
ROW_GAP = 10
MAX_ROW_H = 16 * LANE_H  # a row with more lanes than fit gets thinner lanes
MAX_MARKS = 2000  # per row; more would make a page of megabytes (a 1-minute interval over weeks)


@dataclass(frozen=True)
class Span:
    """One snapshot as drawn: when it exists, and how."""

    name: str
    created: datetime
    expires: datetime | None
    gone: datetime | None  # None: past the end of the picture
    locked: bool
    existing: bool


@dataclass(frozen=True)
class Mark:
    """A snapshot's bar: ``x`` to ``x + width`` until its expiry (locked, if it is, all along: a lock ends at
    expiry), then ``held_x`` to ``held_x + held_width`` while its period's minimum count keeps it."""

    x: float
    width: float
    y: float
    height: float
    held_x: float | None
    held_width: float
    locked: bool
    existing: bool
    title: str


@dataclass(frozen=True)
class Row:
    label: str
    y: float
    height: float
    marks: list[Mark]
    most: int  # the most snapshots that exist at once
    held: int  # snapshots held past their expiry
    left_out: int  # marks not drawn (over MAX_MARKS)


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Drawing:
    width: int
    height: float
    plot_x: int
    rows: list[Row]
    ticks: list[Tick]
    now_x: float | None
    start: datetime
    end: datetime


def _x(when: datetime, start: datetime, end: datetime) -> float:
    clipped = min(max(when, start), end)
    return PLOT_X + (clipped - start) / (end - start) * (WIDTH - PLOT_X - 4)


def _lanes(spans: Sequence[Span]) -> list[int]:
    """A lane per span (in order of creation) such that spans in one lane never overlap: the lowest lane
    free when it is created (heaps: O(n log n), for a period with thousands of snapshots alive at once)."""
    busy: list[tuple[datetime, int]] = []  # (end, lane) of lanes whose span ends (spans that never end: none)
    free: list[int] = []
    count = 0
    lanes = []
    for span in spans:
        while busy and busy[0][0] <= span.created:
            heapq.heappush(free, heapq.heappop(busy)[1])
        if free:
            lane = heapq.heappop(free)
        else:
            lane, count = count, count + 1
        if span.gone is not None:
            heapq.heappush(busy, (span.gone, lane))
        lanes.append(lane)
    return lanes


def _ticks(start: datetime, end: datetime) -> list[Tick]:
    """Day lines for up to a fortnight, Mondays up to four months, else the first of each month (UTC)."""
    days = (end - start) / timedelta(days=1)
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    ticks = []
    last = end - (end - start) * 0.04  # no label cut by the right edge
    while day < last:
        if days <= 16:
            ticks.append(Tick(_x(day, start, end), f"{day:%a %d}"))
        elif days <= 120 and day.weekday() == 0:
            ticks.append(Tick(_x(day, start, end), f"{day:%d %b}"))
        elif days > 120 and day.day == 1:
            ticks.append(Tick(_x(day, start, end), f"{day:%b %Y}"))
        day += timedelta(days=1)
    return ticks


def drawing(
    rows: Iterable[tuple[str, Sequence[Span]]], start: datetime, end: datetime, now: datetime | None
) -> Drawing:
    """The picture of ``rows`` (label, its spans in order of creation) between ``start`` and ``end``."""
    drawn: list[Row] = []
    y = float(AXIS_H)
    for label, spans in rows:
        lanes = _lanes(spans)
        count = max(lanes, default=-1) + 1
        lane_h = min(LANE_H, MAX_ROW_H / count) if count else LANE_H
        height = max(lane_h * count, LANE_H)
        marks = []
        for span, lane in list(zip(spans, lanes, strict=True))[:MAX_MARKS]:
            x = _x(span.created, start, end)
            x_end = _x(span.gone or end, start, end)
            expires = span.expires
            held = expires is not None and expires < end and (span.gone is None or span.gone > expires)
            x_held = _x(expires, start, end) if held and expires is not None else None
            marks.append(
                Mark(
                    x=round(x, 2),
                    width=round(max((x_held if x_held is not None else x_end) - x, 1.5), 2),
                    y=round(y + lane * lane_h, 2),
                    height=round(max(lane_h - 1, 0.5), 2),
                    held_x=round(x_held, 2) if x_held is not None else None,
                    held_width=round(max(x_end - x_held, 1.0), 2) if x_held is not None else 0.0,
                    locked=span.locked,
                    existing=span.existing,
                    title=_title(span, held),
                )
            )
        held_count = sum(1 for mark in marks if mark.held_x is not None)
        drawn.append(Row(label, y, height, marks, count, held_count, max(0, len(spans) - MAX_MARKS)))
        y += height + ROW_GAP
    now_x = _x(now, start, end) if now is not None and start <= now <= end else None
    return Drawing(WIDTH, y + 4, PLOT_X, drawn, _ticks(start, end), now_x, start, end)


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _title(span: Span, held: bool) -> str:
    """The words a mark's tooltip (and a screen reader) gives; made for the marks drawn only."""
    title = f"{span.name}: {'taken' if span.existing else 'to be taken'} {_when(span.created)}, "
    title += f"expires {_when(span.expires)}"
    if held:
        title += f", held until {_when(span.gone)}" if span.gone else ", held past its expiry"
    return title + (", locked" if span.locked else "")


def profile_drawing(profile: Profile, lives: Sequence[Lifetime], now: datetime, until: datetime) -> Drawing:
    """A profile's preview: a row per period (and one per period it no longer has, for snapshots taken)."""
    by_period: dict[str, list[Span]] = {period.name: [] for period in profile.periods}
    for life in lives:
        gone = life.gone_at if life.gone_at is None or life.gone_at < until else None
        by_period.setdefault(life.period, []).append(
            Span(life.name, life.created_at, life.expires_at, gone, life.immutable, life.existing)
        )
    start = min([now, *(life.created_at for life in lives)])
    return drawing(by_period.items(), start, until, now)


class Snapshotish(Protocol):
    """What the subject timeline reads of a snapshot (the model's ``Snapshot``, or the API's view of one)."""

    @property
    def name(self) -> str: ...
    @property
    def origin(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def immutable(self) -> bool: ...
    @property
    def unlocked_at(self) -> datetime | None: ...
    @property
    def status(self) -> str: ...


def snapshot_drawing(snapshots: Sequence[Snapshotish], now: datetime | None = None) -> Drawing:
    """A subject's snapshots: a row per origin (taken by hand, before a restore, by a profile's period),
    each from its creation to its expiry; one held past it reaches to now, marked held."""
    now = now or datetime.now(UTC)
    start = min([snap.created_at for snap in snapshots], default=now - timedelta(days=7))
    start = min(start, now - timedelta(days=1))
    expiries = [snap.expires_at for snap in snapshots if snap.expires_at is not None and snap.expires_at > now]
    end = min(max([now + timedelta(days=1), *expiries]), now + max(now - start, timedelta(days=7)))
    rows: dict[str, list[Span]] = {}
    for snap in sorted(snapshots, key=lambda s: s.created_at):
        held = snap.status == SnapshotStatus.HELD
        gone = None if held or snap.expires_at is None or snap.expires_at >= end else snap.expires_at
        locked = snap.immutable and snap.unlocked_at is None
        span = Span(snap.name, snap.created_at, snap.expires_at, gone, locked, True)
        rows.setdefault(snap.origin, []).append(span)
    return drawing(rows.items(), start, end, now)
