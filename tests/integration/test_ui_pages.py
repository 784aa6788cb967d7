"""The web UI's reading pages: dashboard, volumes, VMs, tenants, networks, snapshots, jobs.

A few tests in a real Chromium (the dashboard's numbers against the API's, a volume's snapshots, a job's
live progress; every page's fit at phone width is test_ui_every_page's); plain HTTP for the rest (every list
and detail page answers and lists what it should; a tenant user sees only its subtree). Test data is made
through the API with the admin token.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Mounted, Server, log_in

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # the pages do not depend on the driver


@dataclass(frozen=True)
class World:
    """Objects made for these tests, named uniquely (the server is shared by the session)."""

    tag: str
    volume: dict[str, Any]
    snapshot: dict[str, Any]
    tenant: dict[str, Any]
    child: dict[str, Any]
    sibling: dict[str, Any]
    tenant_volume: dict[str, Any]
    sibling_volume: dict[str, Any]
    network: dict[str, Any]
    system_snapshot: dict[str, Any]
    profile: dict[str, Any]


def _ok(answer: httpx.Response) -> Any:
    assert answer.status_code < 300, answer.text
    return answer.json()


def _job(api: httpx.Client, answer: httpx.Response) -> dict[str, Any]:
    job = _ok(answer)
    job = _ok(api.get(f"/api/v1/jobs/{job['id']}", params={"wait": 60}))
    assert job["status"] == "succeeded", job
    return dict(job)


def _snapshot(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    job = _job(api, api.post("/api/v1/snapshots", json=body))
    return dict(_ok(api.get(f"/api/v1/snapshots/{job['result']['snapshot']['id']}")))


@pytest.fixture(scope="module")
def world(server: Server) -> World:
    tag = uuid.uuid4().hex[:8]
    with server.client() as api:
        volume = _ok(api.post("/api/v1/volumes", json={"name": f"docs-{tag}", "size_limit": "64M"}))
        snapshot = _snapshot(api, {"volume": volume["id"], "name": f"first-{tag}", "expires": "7d"})
        tenant = _ok(api.post("/api/v1/tenants", json={"name": f"acme-{tag}"}))
        child = _ok(api.post("/api/v1/tenants", json={"name": f"dev-{tag}", "parent": tenant["id"]}))
        sibling = _ok(api.post("/api/v1/tenants", json={"name": f"other-{tag}"}))
        tenant_volume = _ok(
            api.post("/api/v1/volumes", json={"name": f"web-{tag}", "size_limit": "64M", "tenant": child["id"]})
        )
        sibling_volume = _ok(
            api.post("/api/v1/volumes", json={"name": f"hidden-{tag}", "size_limit": "64M", "tenant": sibling["id"]})
        )
        octet = int(tag[:2], 16)
        network = _ok(
            api.post(
                "/api/v1/networks", json={"name": f"lan-{tag}", "cidr": f"10.{octet}.7.0/24", "tenant": tenant["id"]}
            )
        )
        user = {"name": f"ann-{tag}", "password": "ann's long password", "role": "operator", "tenant": tenant["id"]}
        _ok(api.post("/api/v1/users", json=user))  # recorded by the system snapshot, shown by its contents
        system_snapshot = _snapshot(api, {"system": True, "name": f"whole-{tag}"})
        far = (datetime.now(UTC).hour + 12) % 24  # no run during the tests
        period = {"name": "nightly", "frequency": "daily", "hour": far, "retention": "2d"}
        profile = _ok(api.post("/api/v1/profiles", json={"name": f"keep-{tag}", "periods": [period]}))
        assignment = {"subject_type": "volume", "subject": volume["id"]}
        _ok(api.post(f"/api/v1/profiles/{profile['id']}/assignments", json=assignment))
    return World(
        tag, volume, snapshot, tenant, child, sibling, tenant_volume, sibling_volume, network, system_snapshot, profile
    )


def _login_token(client: httpx.Client) -> str:
    match = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text)
    assert match
    return match.group(1)


def _session(server: Server, name: str = "admin", password: str | None = None) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=60)
    answer = client.post(
        "/login",
        data={"login_token": _login_token(client), "name": name, "password": password or server.admin_password},
    )
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    client = _session(server)
    yield client
    client.close()


def _count_all(api: httpx.Client, path: str, **params: Any) -> int:
    """How many rows a listing of the API has, following its pages."""
    total, cursor = 0, None
    while True:
        answer = api.get(path, params={**params, "limit": 1000, **({"cursor": cursor} if cursor else {})})
        total += len(_ok(answer))
        cursor = answer.headers.get("X-Next-Cursor")
        if cursor is None:
            return total


# --- in a real browser ----------------------------------------------------------------------------


def _api_counts(server: Server) -> dict[str, int]:
    with server.client() as api:
        return {
            "volumes": _count_all(api, "/api/v1/volumes"),
            "vms": _count_all(api, "/api/v1/vms"),
            "tenants": _count_all(api, "/api/v1/tenants"),
            "networks": _count_all(api, "/api/v1/networks"),
            "snapshots": _count_all(api, "/api/v1/snapshots"),
            "snapshots-ready": _count_all(api, "/api/v1/snapshots", status="ready"),
            "snapshots-failed": _count_all(api, "/api/v1/snapshots", status="failed"),
        }


def test_dashboard_numbers_match_the_api(page: Page, server: Server, world: World) -> None:
    log_in(page, server.url, "admin", server.admin_password)
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    for _attempt in range(5):  # the shared server's scheduler may take a snapshot meanwhile: read when still
        before = _api_counts(server)
        page.goto(f"{server.url}/")
        if _api_counts(server) == before:
            break
    assert before["volumes"] >= 3 and before["snapshots"] >= 2
    for name, count in before.items():
        expect(page.locator(f'[data-count="{name}"]')).to_have_text(str(count))
    expect(page.get_by_role("progressbar", name="Pool usage")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Volumes").click()
    expect(page.get_by_role("link", name="Volumes", exact=True)).to_have_attribute("aria-current", "page")


def test_a_volume_page_shows_its_snapshots(page: Page, server: Server, world: World) -> None:
    log_in(page, server.url, "admin", server.admin_password)
    page.goto(f"{server.url}/volumes")
    page.get_by_role("link", name=world.volume["name"]).click()
    expect(page.get_by_role("heading", name=f"Volume {world.volume['name']}")).to_be_visible()
    table = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Expires"))
    row = table.get_by_role("row").filter(has=page.get_by_role("link", name=world.snapshot["name"]))
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text("manual")
    row.get_by_role("link", name=world.snapshot["name"]).click()
    expect(page.get_by_role("heading", name=f"Snapshot {world.snapshot['name']}")).to_be_visible()
    expect(page.get_by_text(world.snapshot["id"])).to_be_visible()


def test_a_job_page_shows_live_progress(page: Page, server: Server, fs: Mounted, world: World) -> None:
    """The pool's filesystem is frozen (FIFREEZE) while a restore runs, so the job is still running when
    its page opens, whatever the machine's speed; thawed, it ends, and the page shows it without a reload."""
    log_in(page, server.url, "admin", server.admin_password)
    with server.client() as api:
        snap = _snapshot(api, {"volume": world.volume["id"], "name": f"for-restore-{uuid.uuid4().hex[:6]}"})
        subprocess.run(["fsfreeze", "--freeze", fs.mountpoint], check=True)
        try:
            job = _ok(api.post(f"/api/v1/snapshots/{snap['id']}/restore", json={}))
            page.goto(f"{server.url}/jobs/{job['id']}")
            expect(page.locator("#job-status")).to_have_text(re.compile("queued|running"))
            with page.expect_response(re.compile(rf"/jobs/{job['id']}/progress$")) as polled:
                pass
            assert polled.value.status == 200
            expect(page.get_by_role("progressbar", name="Job progress")).to_have_attribute("value", "0.1")
            expect(page.locator("#job-message")).to_have_text("taking the pre-restore snapshot")
        finally:
            subprocess.run(["fsfreeze", "--unfreeze", fs.mountpoint], check=True)
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.get_by_role("progressbar", name="Job progress")).to_have_attribute("value", "1.0")
    expect(page.locator("#job-progress")).not_to_have_attribute("hx-trigger", re.compile("."))


# --- over plain HTTP -----------------------------------------------------------------------------


def test_every_list_and_detail_page_shows_its_objects(admin: httpx.Client, world: World) -> None:
    # The server is shared by the whole test session: lists are asked for in pages big enough, or filtered,
    # so that this module's objects are on them whatever ran before.
    expected = {
        "/": ["Scheduled runs"],
        "/volumes?limit=1000": [world.volume["name"], world.tenant_volume["name"]],
        f"/volumes/{world.volume['id']}": [world.snapshot["name"], "64.0 MiB"],
        "/vms": [],
        "/tenants": [world.tenant["name"], world.child["name"], world.sibling["name"]],
        f"/tenants/{world.tenant['id']}": [world.child["name"], world.network["name"]],
        f"/tenants/{world.child['id']}": [world.tenant_volume["name"]],
        "/networks?limit=1000": [world.network["name"]],
        f"/networks/{world.network['id']}": [world.network["cidr"]],
        f"/snapshots?subject_type=volume&subject={world.volume['id']}": [world.snapshot["name"]],
        "/snapshots?kind=system&limit=1000": [world.system_snapshot["name"]],
        f"/snapshots/{world.snapshot['id']}": [world.snapshot["id"], "manual"],
        f"/snapshots/{world.system_snapshot['id']}/contents": [
            world.volume["name"],
            world.child["name"],
            world.network["name"],
            f"ann-{world.tag}",
        ],
        "/jobs": ["snapshot.take"],
    }
    for path, names in expected.items():
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.text)
        for name in names:
            assert name in answer.text, (path, name)
        assert "$argon2" not in answer.text, path


def test_the_tenant_tree_nests_children_under_parents(admin: httpx.Client, world: World) -> None:
    html = admin.get("/tenants").text
    parent = html.index(f">{world.tenant['name']}</a>")
    child = html.index(f">{world.child['name']}</a>")
    assert parent < child and "<ul" in html[parent:child], "the child is in a list inside its parent's item"


def test_snapshot_filters_and_paging(admin: httpx.Client, world: World) -> None:
    by_volume = admin.get("/snapshots", params={"subject_type": "volume", "subject": world.volume["name"]}).text
    assert world.snapshot["name"] in by_volume and world.system_snapshot["name"] not in by_volume
    by_kind = admin.get("/snapshots", params={"kind": "system"}).text
    assert world.system_snapshot["name"] in by_kind and world.snapshot["name"] not in by_kind
    by_status = admin.get("/snapshots", params={"status": "failed", "origin": "manual"}).text
    assert world.snapshot["name"] not in by_status
    first = admin.get("/snapshots", params={"limit": 1, "kind": "volume"})
    assert first.status_code == 200
    links = re.findall(r'href="(/snapshots\?[^"]*cursor=[^"]+)"', first.text)
    if links:  # more than one page: the link keeps the filters and leads on
        assert "kind=volume" in links[0]
        assert admin.get(links[0].replace("&amp;", "&")).status_code == 200
    for bad in ({"status": "nonsense"}, {"cursor": "garbage"}, {"subject": "x"}):
        assert admin.get("/snapshots", params=bad).status_code == 422, bad  # invalid_input


def test_a_missing_object_is_a_404_page(admin: httpx.Client) -> None:
    for path in ("/volumes/nope", "/vms/nope", "/tenants/nope", "/networks/nope", "/snapshots/nope", "/jobs/nope"):
        answer = admin.get(path)
        assert answer.status_code == 404, path
        assert 'role="alert"' in answer.text


def test_the_job_fragment_stops_polling_once_finished(admin: httpx.Client, world: World) -> None:
    job_id = re.search(r'href="/jobs/([0-9a-f-]+)"', admin.get("/jobs").text)
    assert job_id
    fragment = admin.get(f"/jobs/{job_id.group(1)}/progress", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert 'data-status="succeeded"' in fragment.text and "hx-trigger" not in fragment.text


def test_a_tenant_user_sees_only_its_subtree(server: Server, admin: httpx.Client, world: World) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    name = f"acme-admin-{world.tag}"
    with server.client() as api:
        made = api.post(
            "/api/v1/users", json={"name": name, "password": password, "role": "admin", "tenant": world.tenant["id"]}
        )
    assert made.status_code == 201, made.text
    user = _session(server, name, password)
    try:
        assert world.tenant_volume["name"] in user.get("/volumes").text
        assert world.sibling_volume["name"] not in user.get("/volumes").text
        tree = user.get("/tenants").text
        assert world.child["name"] in tree and world.sibling["name"] not in tree
        assert user.get(f"/volumes/{world.sibling_volume['id']}").status_code == 404
        assert user.get(f"/tenants/{world.sibling['id']}").status_code == 404
        assert user.get(f"/volumes/{world.volume['id']}").status_code == 404  # the system's own
        assert world.snapshot["name"] not in user.get("/snapshots").text
        assert world.system_snapshot["name"] not in user.get("/snapshots").text  # private to the system
        dashboard = user.get("/").text
        assert 'aria-label="Pool usage"' not in dashboard, "the host's disk is the system's"
        for counted, number in (("volumes", 1), ("tenants", 2), ("networks", 1), ("snapshots", 0)):
            assert f'data-count="{counted}">{number}<' in dashboard, counted
    finally:
        user.close()


def test_a_viewer_is_not_offered_what_it_would_be_refused(server: Server, admin: httpx.Client, world: World) -> None:
    """A viewer's pages leave out the take, restore and profile-editing controls an operator gets on the same
    pages (the service would refuse them); the operator's pages are checked too, so the test can fail."""
    password = f"pw-{uuid.uuid4().hex}"
    with server.client() as api:
        for role in ("viewer", "operator"):
            _ok(api.post("/api/v1/users", json={"name": f"{role}-{world.tag}", "password": password, "role": role}))
        Path(world.volume["path"], "offered.txt").write_bytes(b"x")
        snap = _snapshot(api, {"volume": world.volume["id"], "name": f"offered-{world.tag}", "expires": "1d"})["id"]
    pages = [
        (f"/volumes/{world.volume['id']}", f'href="/volumes/{world.volume["id"]}/snapshot"'),
        (f"/snapshots/{snap}", f'href="/snapshots/{snap}/restore"'),
        (f"/snapshots/{snap}", f'href="/snapshots/{snap}/delete"'),
        (f"/snapshots/{snap}", f'action="/snapshots/{snap}/space"'),
        (f"/snapshots/{snap}/files", f'href="/snapshots/{snap}/files/restore?'),
        (f"/profiles/{world.profile['id']}", f'href="/profiles/{world.profile["id"]}/edit"'),
        ("/profiles", 'href="/profiles/new"'),
        ("/", 'href="/system/snapshot"'),
    ]
    for role, offered in (("viewer", False), ("operator", True)):
        user = _session(server, f"{role}-{world.tag}", password)
        try:
            for path, control in pages:
                html = user.get(path).text
                assert (control in html) == offered, f"{role} on {path}: {control} {'missing' if offered else 'shown'}"
        finally:
            user.close()


def test_a_tenant_user_in_the_browser_sees_its_subtree_and_logs_out(page: Page, server: Server, world: World) -> None:
    """The same rule as above, as the person sees it: lists, the tree, a sibling's page hidden, logging out."""
    name, password = f"acme-viewer-{world.tag}", f"pw-{uuid.uuid4().hex}"
    with server.client() as api:
        body = {"name": name, "password": password, "role": "viewer", "tenant": world.tenant["id"]}
        _ok(api.post("/api/v1/users", json=body))
    log_in(page, server.url, name, password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Volumes").click()
    expect(page.get_by_role("link", name=world.tenant_volume["name"])).to_be_visible()
    expect(page.get_by_text(world.sibling_volume["name"])).to_have_count(0)
    expect(page.get_by_text(world.volume["name"])).to_have_count(0)  # the system's own
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tenants").click()
    expect(page.get_by_role("link", name=world.child["name"])).to_be_visible()
    expect(page.get_by_text(world.sibling["name"])).to_have_count(0)
    answer = page.goto(f"{server.url}/volumes/{world.sibling_volume['id']}")
    assert answer is not None and answer.status == 404
    page.goto(f"{server.url}/snapshots")
    expect(page.get_by_text(world.system_snapshot["name"])).to_have_count(0)  # the system's private one
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(f"{server.url}/volumes")
    expect(page).to_have_url(re.compile(r"/login\?next=/volumes$"))
