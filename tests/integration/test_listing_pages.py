"""Listings at the scale schedules make, against a real ``snapkeep serve``: every list route pages (``limit``,
an opaque cursor in ``X-Next-Cursor`` and ``Link``), pages stay whole while snapshots are taken between
them, bad cursors and filters are refused, the snapshot filters work over HTTP and in the CLI, and the CLI
prints every row of a listing longer than one page. The expiry sweep leaves ``held`` snapshots alone.

Snapshot rows beyond the few taken for real are written into the service's catalog directly, as a helper
may (taking a thousand real ones would cost minutes and say nothing about listing them); every read goes
through the public API or CLI. One driver only: what is checked is the catalog and the HTTP layer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from snapkeep.catalog.db import Database, make_engine
from snapkeep.catalog.tables import SnapshotRow
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import SnapshotStatus
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from tests.conftest import Mounted, Server, TestClock, make_traversable_tmp, start_server, stop_server

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)
CLI = [sys.executable, "-m", "snapkeep.cli.main"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def paged_server(fs: Mounted) -> Iterator[Server]:
    """A server of its own: its catalog gets rows the shared server's other tests must not see."""
    data_dir = make_traversable_tmp("snapkeep-pages-")
    server = start_server(data_dir, fs.new_dir("pages-pool"))
    try:
        yield server
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def api(paged_server: Server) -> Iterator[httpx.Client]:
    with paged_server.client() as client:
        yield client


def volume(api: httpx.Client, name: str) -> dict[str, Any]:
    created = api.post("/api/v1/volumes", json={"name": name, "size_limit": "64M"})
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


def take(api: httpx.Client, volume_name: str, name: str) -> str:
    job = api.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": volume_name, "name": name}).json()
    assert job["status"] == "succeeded", job
    return str(job["result"]["snapshot"]["id"])


def fill(server: Server, vol: dict[str, Any], count: int, start: datetime = T0, **values: Any) -> list[str]:
    """``count`` ready snapshot rows of ``vol``, a minute apart from ``start``, in the service's catalog."""
    engine = make_engine(f"sqlite:///{server.data_dir}/catalog.db")
    rows = [
        SnapshotRow(
            id=str(uuid.uuid4()),
            kind="volume",
            subject_type="volume",
            subject_id=vol["id"],
            subject_name=vol["name"],
            owner_tenant_id=None,
            name=f"filled-{uuid.uuid4().hex[:12]}",
            description="",
            created_at=start + timedelta(minutes=i),
            expires_at=None,
            origin=values.get("origin", "manual"),
            status=values.get("status", "ready"),
            period_id=values.get("period_id"),
        )
        for i in range(count)
    ]
    try:
        with Database(engine).unit() as uow:
            uow.snapshots._s.add_all(rows)  # a test helper filling the catalog
    finally:
        engine.dispose()
    return [row.id for row in rows]


def every(api: httpx.Client, path: str, limit: int, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every row of a listing, following ``X-Next-Cursor``; and how many pages that took."""
    rows: list[dict[str, Any]] = []
    pages = 0
    query: dict[str, Any] = {**params, "limit": limit}
    while True:
        response = api.get(path, params=query)
        assert response.status_code == 200, response.text
        pages += 1
        page = response.json()
        assert len(page) <= limit
        rows += page
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            assert "link" not in response.headers
            return rows, pages
        assert response.headers["link"].endswith('>; rel="next"') and f"cursor={cursor}" in response.headers["link"]
        query["cursor"] = cursor


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(row["id"]) for row in rows]


def test_every_list_route_pages_through_the_same_rows_as_one_page(api: httpx.Client) -> None:
    for name in ("vol-c", "vol-a", "vol-b", "vol-e", "vol-d"):
        volume(api, name)
    for name in ("pa", "pb"):
        assert api.post("/api/v1/tenants", json={"name": name}).status_code == 201
    assert api.post("/api/v1/tenants", json={"name": "child", "parent": "pa"}).status_code == 201
    for name in ("t3", "t1", "t2"):
        assert api.post("/api/v1/tokens", json={"name": name, "role": "viewer"}).status_code == 201
    folder = volume(api, "vol-f")["path"]
    for i in range(5):
        with open(f"{folder}/file-{i}", "w") as f:
            f.write("x")
    files = take(api, "vol-f", "files")
    for name in ("one", "two", "three"):
        take(api, "vol-a", name)
    whole = api.get(f"/api/v1/snapshots/{files}/files").json()
    paged, pages = every(api, f"/api/v1/snapshots/{files}/files", limit=2)
    assert paged == whole and [e["name"] for e in paged] == [f"file-{i}" for i in range(5)] and pages == 3
    for path in ("volumes", "tenants", "tokens", "jobs", "audit", "snapshots", "vms", "networks"):
        whole = api.get(f"/api/v1/{path}", params={"limit": 1000})
        assert whole.status_code == 200 and "x-next-cursor" not in whole.headers, (path, whole.text)
        paged, pages = every(api, f"/api/v1/{path}", limit=2)
        assert ids(paged) == ids(whole.json()), path
        assert pages == max(1, -(-len(paged) // 2)), path  # no empty last page
    tenants, _ = every(api, "/api/v1/tenants", limit=1)
    assert [t["path"] for t in tenants] == ["pa", "pa/child", "pb"]  # still a tree, parents first


def test_pages_lose_and_repeat_nothing_while_snapshots_are_taken_between_them(
    paged_server: Server, api: httpx.Client
) -> None:
    vol = volume(api, "busy")
    filled = fill(paged_server, vol, 30)
    seen: list[str] = []
    taken: list[str] = []
    query: dict[str, Any] = {"volume": "busy", "limit": 4}
    while True:
        response = api.get("/api/v1/snapshots", params=query)
        seen += ids(response.json())
        cursor = response.headers.get("x-next-cursor")
        if cursor is None:
            break
        taken.append(take(api, "busy", f"between-{len(taken)}"))  # a real take, newer than every filled row
        query["cursor"] = cursor
    assert len(seen) == len(set(seen))
    assert seen == filled + taken  # oldest first: the filled rows, then every snapshot taken meanwhile


def test_bad_cursors_limits_and_filters_are_refused_clearly(api: httpx.Client) -> None:
    volume(api, "v1")
    volume(api, "v2")
    volumes_cursor = api.get("/api/v1/volumes", params={"limit": 1}).headers["x-next-cursor"]
    refused = {
        "garbage": {"cursor": "not-a-cursor!"},
        "another listing's": {"cursor": volumes_cursor},
        "limit 0": {"limit": 0},
        "limit above the most": {"limit": 1001},
        "kind": {"kind": "galaxy"},
        "status": {"status": "asleep"},
        "time": {"created_after": "last tuesday"},
        "range": {"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"},
    }
    for what, params in refused.items():
        response = api.get("/api/v1/snapshots", params=params)
        assert response.status_code == 422, (what, response.text)
        assert response.json()["error"]["code"] == "invalid_input", what
    garbage = api.get("/api/v1/snapshots", params={"cursor": "not-a-cursor!"}).json()["error"]["message"]
    assert "invalid cursor" in garbage and "leave it out" in garbage
    elsewhere = api.get("/api/v1/snapshots", params={"cursor": volumes_cursor}).json()["error"]["message"]
    assert "'volumes' listing" in elsewhere


def test_snapshot_filters_compose_with_pages(paged_server: Server, api: httpx.Client) -> None:
    docs, logs = volume(api, "docs"), volume(api, "logs")
    manual = fill(paged_server, docs, 5)
    daily = fill(paged_server, docs, 7, start=T0 + timedelta(days=1), origin="daily", period_id="period-daily")
    held = fill(
        paged_server, docs, 2, start=T0 + timedelta(days=2), origin="daily", period_id="period-daily", status="held"
    )
    other = fill(
        paged_server, logs, 3, start=T0 + timedelta(days=1, seconds=30), origin="daily", period_id="period-other"
    )
    real = take(api, "logs", "by-hand")

    def listed(**params: Any) -> list[str]:
        return ids(every(api, "/api/v1/snapshots", limit=3, **params)[0])

    assert listed() == manual + [x for pair in zip(daily[:3], other, strict=True) for x in pair] + daily[3:] + held + [
        real
    ]
    assert listed(period="period-daily") == daily + held
    assert listed(period="period-daily", status="ready") == daily
    assert listed(status="held") == held
    assert listed(origin="manual", volume="docs") == manual
    assert listed(origin="manual", volume="logs") == [real]
    assert listed(kind="volume", volume="logs", origin="daily") == other
    assert listed(kind="system") == []
    day1 = T0 + timedelta(days=1)
    assert (
        listed(volume="docs", created_after=day1.isoformat(), created_before=(day1 + timedelta(minutes=4)).isoformat())
        == daily[:4]
    )
    assert listed(created_before="2026-01-01T00:03:00") == manual[:3]  # no offset: UTC
    assert api.get(f"/api/v1/snapshots/{daily[0]}").json()["period_id"] == "period-daily"
    assert api.get(f"/api/v1/snapshots/{real}").json()["period_id"] is None


def cli(server: Server, *args: str) -> str:
    done = subprocess.run([*CLI, *args], env=server.cli_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_cli_prints_every_row_of_a_listing_longer_than_a_page(paged_server: Server, api: httpx.Client) -> None:
    vol = volume(api, "many")
    filled = fill(paged_server, vol, 1100)  # a page holds at most 1,000
    held = fill(paged_server, vol, 3, start=T0 + timedelta(days=3), status="held", period_id="period-x", origin="x")
    lines = cli(paged_server, "snapshot", "list", "--volume", "many").splitlines()
    assert lines[0].split()[:3] == ["ID", "SUBJECT", "NAME"]
    assert [line.split()[0] for line in lines[1:]] == filled + held
    as_json = json.loads(cli(paged_server, "snapshot", "list", "--json"))
    assert ids(as_json) == filled + held
    assert len(cli(paged_server, "snapshot", "list", "--limit", "5").splitlines()) == 6  # the header and 5 rows
    assert ids(json.loads(cli(paged_server, "snapshot", "list", "--status", "held", "--json"))) == held
    assert ids(json.loads(cli(paged_server, "snapshot", "list", "--period", "period-x", "--json"))) == held
    since = (T0 + timedelta(days=3, minutes=1)).isoformat()
    assert (
        ids(json.loads(cli(paged_server, "snapshot", "list", "--since", since, "--origin", "x", "--json"))) == held[1:]
    )
    until = cli(paged_server, "snapshot", "list", "--until", "900y", "--json")  # 900 years ago
    assert json.loads(until) == []
    assert len(json.loads(cli(paged_server, "volume", "list", "--limit", "1", "--json"))) == 1


def test_the_expiry_sweep_deletes_expired_ready_snapshots_and_leaves_held_ones(
    services: Services, clock: TestClock
) -> None:
    vol = services.volumes.create("swept", 1 << 30, who=SYSTEM)
    soon = clock() + timedelta(hours=1)
    expired, held, later = (
        services.snapshots.take(TakeRequest(vol.id, name, expires_at=when), who=SYSTEM)
        for name, when in (("expired", soon), ("held", soon), ("later", soon + timedelta(days=1)))
    )
    with services.db.unit() as uow:  # its period's minimum count holds it (the scheduler's to release)
        uow.snapshots.update(held.id, status=SnapshotStatus.HELD)
    clock.advance(timedelta(hours=2))
    assert services.snapshots.sweep_expired(SYSTEM) == [expired.id]
    assert {s.id for s in services.snapshots.listing(vol.id, who=SYSTEM)} == {held.id, later.id}
    assert services.pool.has_snapshot(held.id) and not services.pool.has_snapshot(expired.id)
    assert services.snapshots.sweep_expired(SYSTEM) == []
