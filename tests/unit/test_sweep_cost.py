"""The expiry sweep's hold check costs what is due, not the number of subjects on a period.

Measured as the SQLite virtual-machine steps of the statements ``expired_unheld`` sends (a progress handler
counts them), so the test does not depend on the machine's speed: with one snapshot due, a period on 20 times
more subjects must not cost many times more steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.catalog.tables import PeriodRow, ProfileRow, ScheduleRow, SnapshotRow
from snapkeep.services.retention import expired_unheld

NOW = datetime(2027, 1, 10, tzinfo=UTC)


def catalog(path: Path, subjects: int) -> Database:
    """One daily period on ``subjects`` volumes, a week of its snapshots each; one (the oldest of the
    volume in the middle of their order) has expired."""
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    ids = [f"vol-{i:06d}" for i in range(subjects)]
    with engine.begin() as conn:
        conn.execute(
            insert(ProfileRow),
            [
                {
                    "id": "prof",
                    "name": "p",
                    "description": "",
                    "owner_tenant_id": None,
                    "timezone": "UTC",
                    "ignore_warning": False,
                    "created_at": NOW,
                }
            ],
        )
        rule = {"frequency": "daily", "min_snapshots": 1, "retention_seconds": 7 * 86400}
        conn.execute(insert(PeriodRow), [{"id": "per", "profile_id": "prof", "name": "daily", "rule": rule}])
        conn.execute(
            insert(ScheduleRow),
            [
                {
                    "period_id": "per",
                    "subject_type": "volume",
                    "subject_id": s,
                    "slot": NOW,
                    "next_due": NOW,
                    "failures": 0,
                }
                for s in ids
            ],
        )
        rows = []
        for n, subject in enumerate(ids):
            for day in range(7):
                expired = n == subjects // 2 and day == 0
                rows.append(
                    {
                        "id": f"snap-{day}-{n:06d}",
                        "kind": "volume",
                        "subject_type": "volume",
                        "subject_id": subject,
                        "subject_name": subject,
                        "owner_tenant_id": None,
                        "name": f"daily_{day}",
                        "description": "",
                        "created_at": NOW - timedelta(days=7 - day),
                        "expires_at": NOW - timedelta(hours=1) if expired else NOW + timedelta(days=day + 1),
                        "origin": "p/daily",
                        "quiesce_requested": False,
                        "quiesced": False,
                        "immutable": False,
                        "private": False,
                        "status": "ready",
                        "period_id": "per",
                    }
                )
        conn.execute(insert(SnapshotRow), rows)
    return Database(engine)


def steps(db: Database) -> int:
    """SQLite VM steps (in hundreds) of the hold check's reads, replayed on their own connection."""
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        with db.unit() as uow:
            assert len(expired_unheld(uow, NOW)) == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    raw = db.engine.raw_connection()
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    try:
        raw.driver_connection.set_progress_handler(tick, 100)  # type: ignore[union-attr]
        cursor = raw.cursor()
        for statement, parameters in sent:
            cursor.execute(statement, parameters)
            cursor.fetchall()
    finally:
        raw.close()
    return counted[0]


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Database]:
    db = catalog(tmp_path / "small.db", 200)
    yield db
    db.engine.dispose()


@pytest.fixture
def large(tmp_path: Path) -> Iterator[Database]:
    db = catalog(tmp_path / "large.db", 4000)
    yield db
    db.engine.dispose()


def test_the_hold_check_costs_what_is_due_not_the_subjects_of_the_period(small: Database, large: Database) -> None:
    few, many = steps(small), steps(large)
    assert many <= 2 * few + 5, (few, many)  # an index on the period alone walks every subject of it
