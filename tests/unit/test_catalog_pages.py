"""Keyset pages and the expiry sweep's query on a real SQLite catalog: pages neither lose nor repeat a row
when rows are inserted between them, the sweep reads only ready snapshots that are due (a tenant's only its
own), and both are answered through the indexes of migration 0005, not by reading the whole table. The
API's cursors (api/paging.py) and the CLI's tables are checked here too, without a server."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from snapkeep.api.paging import Listing
from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.cli import render
from snapkeep.errors import InvalidInput
from snapkeep.model.filters import SnapshotFilter
from snapkeep.model.paging import Window, page_of
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import Snapshot, SnapshotKind, SnapshotStatus, Tenant

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    database = Database(engine)
    with database.unit() as uow:
        uow.tenants.insert(Tenant("t-a", "a", None, "", T0))
    yield database
    engine.dispose()


def snapshot(created_at: datetime, **values: Any) -> Snapshot:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "kind": SnapshotKind.VOLUME,
        "subject_type": "volume",
        "subject_id": "vol-1",
        "subject_name": "docs",
        "owner_tenant_id": None,
        "name": f"s-{uuid.uuid4().hex[:8]}",
        "description": "",
        "created_at": created_at,
        "expires_at": None,
        "origin": "manual",
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
    }
    return Snapshot(**(fields | values))


def insert(db: Database, *snaps: Snapshot) -> list[str]:
    with db.unit() as uow:
        return [uow.snapshots.insert(s).id for s in snaps]


def test_pages_neither_lose_nor_repeat_rows_inserted_between_them(db: Database) -> None:
    # ties on created_at (five rows per minute) are ordered by id
    first = insert(db, *(snapshot(T0 + timedelta(minutes=i // 5)) for i in range(53)))
    seen: list[str] = []
    window = Window(limit=7)
    added_later: list[str] = []
    while True:
        with db.unit() as uow:
            page = uow.snapshots.page(SnapshotFilter(), window)
        seen += [s.id for s in page.items]
        if page.next is None:
            break
        # between pages: a row before the position (not to be seen) and one after it (to be seen), as a clock
        # that moves on makes them
        insert(db, snapshot(T0 - timedelta(days=1)))
        added_later += insert(db, snapshot(T0 + timedelta(days=1, minutes=len(added_later))))
        window = Window(limit=7, after=page.next)
    assert len(seen) == len(set(seen))
    assert set(first) <= set(seen) and set(added_later) <= set(seen)
    assert len(seen) == len(first) + len(added_later)


def test_snapshot_filters_compose_in_sql(db: Database) -> None:
    manual = insert(db, *(snapshot(T0 + timedelta(hours=i)) for i in range(4)))
    scheduled = insert(
        db,
        *(snapshot(T0 + timedelta(hours=i), origin="daily", period_id="p-daily", subject_id="vol-2") for i in range(4)),
    )
    held = insert(db, snapshot(T0, status=SnapshotStatus.HELD, period_id="p-daily", origin="daily"))

    def ids(**where: Any) -> list[str]:
        with db.unit() as uow:
            return [s.id for s in uow.snapshots.page(SnapshotFilter(**where), Window(limit=100)).items]

    assert ids(period_id="p-daily", status=SnapshotStatus.READY) == scheduled
    assert ids(origin="manual") == manual
    assert ids(status=SnapshotStatus.HELD) == held
    assert ids(subject_type="volume", subject_id="vol-2") == scheduled
    assert (
        ids(created_after=T0 + timedelta(hours=1), created_before=T0 + timedelta(hours=3), origin="daily")
        == (scheduled[1:3])
    )
    assert ids(kind=SnapshotKind.SYSTEM) == []


def test_the_sweep_reads_only_due_ready_snapshots_of_its_own_scope(db: Database) -> None:
    now = T0 + timedelta(days=10)
    due = insert(db, snapshot(T0, expires_at=now - timedelta(hours=1)))
    insert(
        db,
        snapshot(T0, expires_at=now - timedelta(hours=1), status=SnapshotStatus.HELD),  # its period decides
        snapshot(T0, expires_at=now - timedelta(hours=1), status=SnapshotStatus.CREATING),
        snapshot(T0, expires_at=now + timedelta(hours=1)),
        snapshot(T0),  # never expires
    )
    tenants = insert(db, snapshot(T0, expires_at=now - timedelta(days=1), owner_tenant_id="t-a"))
    with db.unit() as uow:
        assert [s.id for s in uow.snapshots.due(now)] == tenants + due  # soonest expired first
    with db.unit(Principal("a-admin", Role.ADMIN, "t-a")) as uow:
        assert [s.id for s in uow.snapshots.due(now)] == tenants


def plans(db: Database, run: Any) -> list[str]:
    """The query plans (SQLite's EXPLAIN QUERY PLAN) of the statements ``run`` sends to the catalog."""
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    with db.engine.connect() as conn:
        return [" | ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", p)) for s, p in sent]


def test_the_sweep_and_pages_read_through_indexes_not_the_whole_table(db: Database) -> None:
    insert(db, *(snapshot(T0 + timedelta(minutes=i), expires_at=T0 + timedelta(days=i)) for i in range(20)))
    cases = {
        "due": lambda uow: uow.snapshots.due(T0 + timedelta(days=3)),
        "page": lambda uow: uow.snapshots.page(SnapshotFilter(), Window(5, (T0, "x"))),
        "subject": lambda uow: uow.snapshots.page(SnapshotFilter("volume", "vol-1"), Window(5, (T0, "x"))),
        "period": lambda uow: uow.snapshots.page(SnapshotFilter(period_id="p"), Window(5, (T0, "x"))),
        "jobs": lambda uow: uow.jobs.page(Window(5, (T0, "x"))),
    }
    for name, read in cases.items():

        def run(read: Any = read) -> None:
            with db.unit() as uow:
                read(uow)

        found = [plan for plan in plans(db, run) if "snapshots" in plan or "jobs" in plan or "INDEX" in plan]
        assert found, name
        for plan in found:
            assert "USING INDEX ix_" in plan and "SCAN" not in plan and "TEMP B-TREE" not in plan, (name, plan)


def test_a_cursor_continues_its_own_listing_only() -> None:
    snapshots = Listing("snapshots", (datetime, str))
    key = (T0, "abc")
    assert snapshots.decode(snapshots.encode(key)) == key
    volumes_cursor = Listing("volumes", (str, str)).encode(("docs", "abc"))
    for bad, why in [
        ("garbage!", "not a cursor"),
        ("", "not a cursor"),
        (volumes_cursor, "'volumes' listing"),
        (Listing("snapshots", (str,)).encode(("x",)), "not a cursor"),
        (Listing("snapshots", (str, str)).encode(("yesterday", "abc")), "not a cursor"),
        (Listing("snapshots", (str, str)).encode(("2026-03-01T12:00:00", "abc")), "not a cursor"),  # no offset
    ]:
        with pytest.raises(InvalidInput, match=why):
            snapshots.decode(bad)
    audit = Listing("audit", (int,))
    assert audit.decode(audit.encode((42,))) == (42,)
    with pytest.raises(InvalidInput):
        audit.decode(Listing("audit", (str,)).encode(("42",)))


def test_a_listing_made_in_memory_pages_by_its_order() -> None:
    paths = ["b", "a/z", "a", "a-c", "a/b"]  # tree order: a parent before its children, siblings by name
    order = lambda key: str(key[0]).split("/")  # noqa: E731
    seen: list[str] = []
    window = Window(limit=2)
    while True:
        page = page_of(paths, window, lambda p: (p,), order)
        seen += page.items
        if page.next is None:
            break
        window = Window(2, page.next)
    assert seen == ["a", "a/b", "a/z", "a-c", "b"]


def test_tables_line_up_one_row_per_line() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        render.table(["ID", "NAME"], [["1", "wide 名前"], ["22", "two\nlines"]])
    assert out.getvalue().splitlines() == ["ID  NAME", "1   wide 名前", "22  two lines"]


# Lists that do not page, each with its reason (none today: a new one must say why here).
NOT_PAGED_YET: set[str] = set()


def test_every_list_route_documents_its_paging() -> None:
    from snapkeep.api.app import create_app

    document = create_app(None).openapi()  # type: ignore[arg-type]  (the document needs no services)
    listed = []
    for path, item in document["paths"].items():
        operation = item.get("get")
        ok = (operation or {}).get("responses", {}).get("200", {})
        if ok.get("content", {}).get("application/json", {}).get("schema", {}).get("type") != "array":
            continue
        listed.append(path)
        if path in NOT_PAGED_YET:
            continue
        assert {"limit", "cursor"} <= {p["name"] for p in operation["parameters"]}, path
        assert {"X-Next-Cursor", "Link"} <= set(ok["headers"]), path
    assert {"/api/v1/snapshots", "/api/v1/volumes", "/api/v1/jobs", "/api/v1/audit", "/api/v1/tenants"} <= set(listed)
