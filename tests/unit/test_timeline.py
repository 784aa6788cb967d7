"""The timeline of a profile (``lifetimes``) is the preview at every point at once: what the profile page draws.

Checked against :func:`preview` itself at many instants, for periods whose snapshots expire, are held past
their expiry by a minimum count, never expire, and for snapshots taken already; and the drawing built from
it has one row per period with a mark per snapshot.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from snapkeep.model.profile import Frequency, Period, Profile
from snapkeep.model.schedule import Existing, lifetimes, preview
from snapkeep.model.types import Snapshot, SnapshotKind, SnapshotStatus
from snapkeep.ui.templating import environment
from snapkeep.ui.timeline import Span, _lanes, profile_drawing

NOW = datetime(2026, 3, 20, 10, 17, tzinfo=UTC)  # the days before Europe/Berlin's spring-forward


def _profile(*periods: Period, zone: str = "Europe/Berlin") -> Profile:
    return Profile(id="p", name="p", description="", owner_tenant_id=None, timezone=zone, periods=periods)


PERIODS = st.sampled_from(
    [
        Period("hourly", Frequency.HOURLY, minute=5, retention=timedelta(hours=3), min_snapshots=5),
        Period("daily", Frequency.DAILY, hour=2, minute=30, retention=timedelta(days=2), min_snapshots=1),
        Period("weekly", Frequency.WEEKLY, day_of_week=1, retention=timedelta(days=10), min_snapshots=3),
        Period("quarter", Frequency.INTERVAL, interval_minutes=15, retention=timedelta(hours=1), min_snapshots=0),
        Period("forever", Frequency.DAILY, hour=12, retention=None),
        Period("once", Frequency.ONCE, at=NOW + timedelta(days=3), retention=timedelta(days=1), min_snapshots=2),
    ]
)


def _existing() -> list[Existing]:
    """Snapshots taken already: some expired and held, one of a period the profile no longer has."""
    return [
        Existing("hourly_old", "hourly", NOW - timedelta(hours=5), NOW - timedelta(hours=2)),
        Existing("hourly_recent", "hourly", NOW - timedelta(hours=1), NOW + timedelta(hours=2), immutable=True),
        Existing("weekly_old", "weekly", NOW - timedelta(days=12), NOW - timedelta(days=2)),
        Existing("gone_period", "removed", NOW - timedelta(days=1), NOW + timedelta(days=1)),
    ]


@settings(max_examples=25, deadline=None)
@given(st.lists(PERIODS, min_size=1, max_size=4, unique_by=lambda p: p.name), st.integers(0, 14 * 24 * 4 - 1))
def test_the_timeline_at_any_instant_is_the_preview_then(periods: list[Period], quarter: int) -> None:
    profile = _profile(*periods)
    until = NOW + timedelta(days=14)
    lives = lifetimes(profile, _existing(), NOW, until)
    at = NOW + timedelta(minutes=15 * quarter + 7)
    alive = {
        (life.period, life.name, life.created_at)
        for life in lives
        if life.created_at <= at and (life.gone_at is None or at < life.gone_at)
    }
    expected = {(p.period, p.name, p.created_at) for p in preview(profile, _existing(), NOW, at)}
    assert alive == expected


def test_a_held_snapshot_lives_until_enough_newer_ones_exist() -> None:
    weekly = Period("weekly", Frequency.WEEKLY, day_of_week=1, retention=timedelta(days=1), min_snapshots=2)
    lives = lifetimes(_profile(weekly, zone="UTC"), [], NOW, NOW + timedelta(days=28))
    created = [life.created_at for life in lives]
    assert len(lives) == 4 and all(later - earlier == timedelta(days=7) for earlier, later in pairwise(created))
    assert lives[0].gone_at == created[2]  # expired after a day, held until the second newer one came
    assert lives[-1].gone_at is None and lives[-2].gone_at is None  # still the two newest at the end


def test_the_drawing_has_a_row_per_period_and_a_mark_per_snapshot() -> None:
    hourly = Period("hourly", Frequency.HOURLY, retention=timedelta(hours=3), min_snapshots=1, immutable=True)
    daily = Period("daily", Frequency.DAILY, retention=timedelta(days=2), min_snapshots=4)
    profile = _profile(hourly, daily, zone="UTC")
    until = NOW + timedelta(days=7)
    drawing = profile_drawing(profile, lifetimes(profile, [], NOW, until), NOW, until)
    rows = {row.label: row for row in drawing.rows}
    assert list(rows) == ["hourly", "daily"]
    assert len(rows["hourly"].marks) == 7 * 24 and len(rows["daily"].marks) == 7
    assert all(mark.locked for mark in rows["hourly"].marks)
    assert any(mark.held_x is not None for mark in rows["daily"].marks)  # held past their two days
    assert all(0 <= mark.x <= mark.x + mark.width <= drawing.width for row in drawing.rows for mark in row.marks)


def _snap(name: str, origin: str, created: datetime, expires: datetime | None, **extra: object) -> Snapshot:
    values: dict[str, object] = {
        "id": name,
        "kind": SnapshotKind.VOLUME,
        "subject_type": "volume",
        "subject_id": "v",
        "subject_name": "docs",
        "owner_tenant_id": None,
        "name": name,
        "description": "",
        "created_at": created,
        "expires_at": expires,
        "origin": origin,
        "quiesce_requested": False,
        "quiesced": False,
        "quiesce_note": None,
        "quiesce_window_ms": None,
        "paused_window_ms": None,
        "immutable": False,
        "unlocked_at": None,
        "private": False,
        "status": SnapshotStatus.READY,
        "status_reason": None,
        "exclusive_bytes": None,
        "shared_bytes": None,
        **extra,
    }
    return Snapshot(**values)  # type: ignore[arg-type]  # the fields above, of their types


def test_a_subjects_snapshots_render_as_a_timeline_from_the_macro_the_detail_pages_include() -> None:
    day = timedelta(days=1)
    snaps = [
        _snap("manual-1", "manual", NOW - 3 * day, None, immutable=True),
        _snap("daily_1", "p/daily", NOW - 2 * day, NOW + day),
        _snap("daily_0", "p/daily", NOW - 5 * day, NOW - day, status=SnapshotStatus.HELD),
        _snap("<b>x</b>", "pre-restore", NOW - day, NOW + 6 * day, immutable=True, unlocked_at=NOW),
    ]
    template = '{% from "timeline.html" import snapshot_timeline %}{{ snapshot_timeline(snaps) }}'
    html = environment.from_string(template).render(snaps=snaps)
    assert re.search(r'<svg [^>]*role="img"', html)
    rows = dict(re.findall(r'<g class="period" data-period="([^"]+)">(.*?)</g>', html, re.S))
    assert set(rows) == {"manual", "p/daily", "pre-restore"}
    assert rows["p/daily"].count('class="mark') == 2 and rows["p/daily"].count('class="held"') == 1
    assert 'mark existing locked"' in rows["manual"]  # never expires, locked
    assert "locked" not in rows["pre-restore"] and "&lt;b&gt;x&lt;/b&gt;" in rows["pre-restore"]
    assert "<b>x</b>" not in html
    assert environment.from_string(template).render(snaps=[]).count('class="mark') == 0  # no snapshots yet


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 500), st.one_of(st.none(), st.integers(1, 200))), max_size=60))
def test_spans_in_one_lane_never_overlap_and_lanes_are_as_few_as_can_be(raw: list[tuple[int, int | None]]) -> None:
    spans = [
        Span(
            "s",
            NOW + timedelta(minutes=start),
            None,
            None if length is None else NOW + timedelta(minutes=start + length),
            False,
            False,
        )
        for start, length in sorted(raw, key=lambda r: r[0])
    ]
    lanes = _lanes(spans)
    end = NOW + timedelta(days=30)
    for lane in set(lanes):
        mine = [s for s, lane_of in zip(spans, lanes, strict=True) if lane_of == lane]
        assert all((a.gone or end) <= b.created for a, b in pairwise(mine))
    most = max((sum(1 for s in spans if s.created <= t.created < (s.gone or end)) for t in spans), default=0)
    assert len(set(lanes)) == most  # as many lanes as snapshots alive at once, no more
