"""Every page of the web UI, read off the application's route table, in a real Chromium at phone width and on
a wide screen (issue 10): it answers 200, is no wider than the window, names every control it shows, asks
nothing of another site and breaks none of its own content security policy.

The GET routes outside the OpenAPI document are listed from ``create_app`` as the scope matrix lists them;
each is either in ``VISITS`` (the pages to open for it: its path filled with objects made through the API,
and the query string its normal page needs) or in ``NOT_PAGES`` with the reason, so a new page fails this
test until it is added. Every problem of every page is collected and reported at once.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import CDPSession, ConsoleMessage, Page, Request, ViewportSize

from snapkeep.model.names import MAX_NAME_LENGTH
from snapkeep.model.settings import MAX_DEPTH as SETTINGS_DEPTH
from snapkeep.model.settings import MAX_KEY_LENGTH
from snapkeep.services.container import Services
from tests.conftest import Server, log_in
from tests.integration.test_scope_matrix import undocumented_routes

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # the pages do not depend on the driver

PHONE: ViewportSize = {"width": 375, "height": 740}
WIDE: ViewportSize = {"width": 1920, "height": 1080}
STICKING_OUT = """() => {
    const width = document.documentElement.clientWidth;
    const out = new Set([...document.body.querySelectorAll('*')].filter(
        e => e.getBoundingClientRect().right > width || e.scrollWidth > e.clientWidth + 1));
    return [...out].filter(e => ![...e.children].some(c => out.has(c))).slice(0, 3).map(e => e.outerHTML.slice(0, 150));
}"""  # the innermost elements past the window's right edge: what makes a page too wide
CONTROLS = "a, button, input:not([type=hidden]), select, textarea, progress, summary"  # each needs a name


@dataclass(frozen=True)
class World:
    """What the pages' paths name, made through the API (named uniquely: the server is shared)."""

    volume: str
    snapshot: str  # of the volume, holding f.txt and a folder with a file
    job: str  # the snapshot's take
    folder: str  # the folder's name
    vm: str  # defined, never started
    vm_snapshot: str
    tenant: str
    child: str
    tenant_snapshot: str  # of the child, taken by its parent
    network: str
    system_snapshot: str  # of the whole system
    profile: str  # with one period, assigned to the volume
    period: str
    token: str
    user: str


def _ok(answer: httpx.Response) -> Any:
    assert answer.status_code < 300, answer.text
    return answer.json()


def _taken(api: httpx.Client, body: dict[str, Any]) -> tuple[str, str]:
    """A snapshot taken through the API: (its id, its job's id)."""
    job = _ok(api.post("/api/v1/snapshots", params={"wait": 60}, json=body))
    assert job["status"] == "succeeded", job
    return str(job["result"]["snapshot"]["id"]), str(job["id"])


Undo = list[tuple[str, dict[str, Any]]]  # deletes to send at the end (path, query), in order


@pytest.fixture(scope="module")
def world(server: Server, libvirtd: None) -> Iterator[World]:
    undo: Undo = []
    with server.client() as api:
        try:
            yield _made(api, undo)
        finally:  # everything made goes, its VM from libvirt too, even when making the rest failed
            failed = []
            for path, params in reversed(undo):
                answer = api.delete(path, params=params)
                if answer.status_code >= 300 or (answer.status_code == 202 and answer.json()["status"] != "succeeded"):
                    failed.append(f"DELETE {path}: {answer.text}")
            assert failed == []


def _made(api: httpx.Client, undo: Undo) -> World:
    """The objects, each named as long as a name may be and in one word, so that a page that cannot wrap a
    name shows it: the worst a user may choose (MAX_NAME_LENGTH), not a short name that happens to fit."""
    tag = uuid.uuid4().hex[:8]

    def name(kind: str, length: int = MAX_NAME_LENGTH) -> str:
        return f"{kind}{tag}".ljust(length, "W")

    tenant = _ok(api.post("/api/v1/tenants", json={"name": name("tenant")}))["id"]
    undo.append((f"/api/v1/tenants/{tenant}", {"force": True, "wait": 60}))  # with all it holds
    child = _ok(api.post("/api/v1/tenants", json={"name": name("child"), "parent": tenant}))["id"]
    volume = _ok(api.post("/api/v1/volumes", json={"name": name("volume"), "size_limit": "32M", "tenant": tenant}))
    deepest: dict[str, Any] = {"k".ljust(MAX_KEY_LENGTH, "K"): "v" * 200}  # settings as deep as they may nest
    for _level in range(SETTINGS_DEPTH - 1):
        deepest = {"k".ljust(MAX_KEY_LENGTH, "K"): deepest}
    _ok(api.patch(f"/api/v1/volumes/{volume['id']}", json={"settings": deepest}))
    os.mkdir(os.path.join(volume["path"], name("dir")))
    for file in ("f.txt", f"{name('dir')}/{name('file')}"):
        with open(os.path.join(volume["path"], file), "w") as f:
            f.write(f"{file}\n")
    snapshot, job = _taken(api, {"volume": volume["id"], "name": name("snap"), "expires": "7d"})
    vm = _ok(api.post("/api/v1/vms", json={"name": name("vm"), "disks": ["8M"], "nics": 0, "tenant": tenant}))["id"]
    vm_snapshot, _job = _taken(api, {"vm": vm, "name": name("vmsnap")})
    tenant_snapshot, _job = _taken(api, {"tenant": child, "name": name("tenantsnap")})
    cidr = f"10.216.{int(tag[:2], 16)}.0/24"
    network = _ok(api.post("/api/v1/networks", json={"name": name("net"), "cidr": cidr, "tenant": tenant}))["id"]
    system_snapshot, _job = _taken(api, {"system": True, "name": name("whole")})
    undo.append((f"/api/v1/snapshots/{system_snapshot}", {"wait": 60}))
    far = (datetime.now(UTC).hour + 12) % 24  # no run during the test
    period = {"name": name("period", 64), "frequency": "daily", "hour": far, "retention": "2d"}  # at most 64
    profile = _ok(api.post("/api/v1/profiles", json={"name": name("profile"), "tenant": tenant, "periods": [period]}))
    undo.append((f"/api/v1/profiles/{profile['id']}", {}))
    assigned = {"subject_type": "volume", "subject": volume["id"]}
    _ok(api.post(f"/api/v1/profiles/{profile['id']}/assignments", json=assigned))
    undo.append((f"/api/v1/assignments/volume/{volume['id']}", {}))
    token = _ok(api.post("/api/v1/tokens", json={"name": name("token"), "role": "viewer", "tenant": tenant}))["id"]
    body = {"name": name("user"), "password": f"pw-{uuid.uuid4().hex}", "role": "viewer", "tenant": tenant}
    user = _ok(api.post("/api/v1/users", json=body))["id"]
    undo.append((f"/api/v1/users/{user}", {}))
    return World(
        volume["id"], snapshot, job, name("dir"), vm, vm_snapshot, tenant, child, tenant_snapshot, network,
        system_snapshot, profile["id"], period["name"], token, user,
    )  # fmt: skip


def _at(where: str, **query: str) -> str:
    return f"{where}?{urlencode(query)}"


Visits = Callable[[World], list[str]]

# Every GET route of the UI that is a page: the pages opened for it (a route with several kinds of page, a
# volume's snapshot or a system snapshot, a file or a folder, is opened for each).
VISITS: dict[str, Visits] = {
    "/login": lambda _w: ["/login"],
    "/docs": lambda _w: ["/docs"],
    "/": lambda _w: ["/"],
    "/audit": lambda _w: ["/audit"],
    "/volumes": lambda _w: ["/volumes"],
    "/volumes/{ref}": lambda w: [f"/volumes/{w.volume}"],
    "/volumes/{ref}/snapshot": lambda w: [f"/volumes/{w.volume}/snapshot"],
    "/vms": lambda _w: ["/vms"],
    "/vms/{ref}": lambda w: [f"/vms/{w.vm}"],
    "/vms/{ref}/snapshot": lambda w: [f"/vms/{w.vm}/snapshot"],
    "/tenants": lambda _w: ["/tenants"],
    "/tenants/{ref}": lambda w: [f"/tenants/{w.tenant}"],
    "/tenants/{ref}/snapshot": lambda w: [f"/tenants/{w.child}/snapshot"],
    "/system/snapshot": lambda w: ["/system/snapshot", _at("/system/snapshot", tenant=w.tenant)],
    "/networks": lambda _w: ["/networks"],
    "/networks/{ref}": lambda w: [f"/networks/{w.network}"],
    "/snapshots": lambda _w: ["/snapshots"],
    "/snapshots/{snap_id}": lambda w: [
        f"/snapshots/{s}" for s in (w.snapshot, w.vm_snapshot, w.tenant_snapshot, w.system_snapshot)
    ],
    "/snapshots/{snap_id}/contents": lambda w: [f"/snapshots/{w.system_snapshot}/contents"],
    "/snapshots/{snap_id}/restore": lambda w: [
        f"/snapshots/{s}/restore" for s in (w.snapshot, w.vm_snapshot, w.tenant_snapshot, w.system_snapshot)
    ],
    "/snapshots/{snap_id}/restore/confirm": lambda w: [
        _at(f"/snapshots/{w.snapshot}/restore/confirm", mode="data", pre_restore="on"),
        _at(f"/snapshots/{w.system_snapshot}/restore/confirm", member_type="volume", member=w.volume),
    ],
    "/snapshots/{snap_id}/delete": lambda w: [f"/snapshots/{w.snapshot}/delete"],
    # not immutable: an immutable one would outlive the test (the shared server keeps it, and its tenant)
    "/snapshots/{snap_id}/unlock": lambda w: [f"/snapshots/{w.snapshot}/unlock"],
    "/snapshots/{snap_id}/files": lambda w: [
        f"/snapshots/{w.snapshot}/files",
        _at(f"/snapshots/{w.snapshot}/files", path=w.folder),
        f"/snapshots/{w.system_snapshot}/files",  # the volumes to choose from
        _at(f"/snapshots/{w.system_snapshot}/files", volume=w.volume),
    ],
    "/snapshots/{snap_id}/files/restore": lambda w: [
        _at(f"/snapshots/{w.snapshot}/files/restore", path="f.txt"),
        _at(f"/snapshots/{w.snapshot}/files/restore", path=w.folder),
    ],
    "/jobs": lambda _w: ["/jobs"],
    "/jobs/{job_id}": lambda w: [f"/jobs/{w.job}"],
    "/profiles": lambda _w: ["/profiles"],
    "/profiles/new": lambda _w: ["/profiles/new"],
    "/profiles/{ref}": lambda w: [f"/profiles/{w.profile}"],
    "/profiles/{ref}/edit": lambda w: [f"/profiles/{w.profile}/edit"],
    "/profiles/{ref}/delete": lambda w: [f"/profiles/{w.profile}/delete"],
    "/profiles/{ref}/periods/{name}": lambda w: [f"/profiles/{w.profile}/periods/{w.period}"],
    "/profiles/{ref}/periods/{name}/remove": lambda w: [f"/profiles/{w.profile}/periods/{w.period}/remove"],
    "/users": lambda _w: ["/users"],
    "/users/new": lambda _w: ["/users/new"],
    "/users/{ref}": lambda w: [f"/users/{w.user}"],
    "/users/{ref}/delete": lambda w: [f"/users/{w.user}/delete"],
    "/tokens": lambda _w: ["/tokens"],
    "/tokens/new": lambda _w: ["/tokens/new"],
    "/tokens/{ref}/revoke": lambda w: [f"/tokens/{w.token}/revoke"],
}
NOT_PAGES = {
    "/openapi.json",  # the API's document, JSON (its page is /docs)
    "/static/{path}",  # the stylesheet and htmx, loaded by every page
    "/snapshots/{snap_id}/files/download",  # a file of the snapshot, as an attachment
    "/jobs/{job_id}/progress",  # a fragment of the job's page, which polls it while the job runs
}


def test_every_get_route_is_visited_or_excluded(services: Services) -> None:
    gets = {path for method, path in undocumented_routes(services) if method == "get"}
    assert gets - VISITS.keys() - NOT_PAGES == set(), "a page this test does not open (add it to VISITS)"
    assert (VISITS.keys() | NOT_PAGES) - gets == set(), "no such route"
    assert VISITS.keys() & NOT_PAGES == set()


def _unnamed(cdp: CDPSession) -> tuple[int, list[str]]:
    """How many controls the page shows (in the accessibility tree, not ignored), and each whose accessible
    name, as Chromium computes it (label, aria-labelledby, aria-label, title, text), is empty or only its
    placeholder."""
    root = cdp.send("DOM.getDocument", {"depth": 0})["root"]
    found = cdp.send("DOM.querySelectorAll", {"nodeId": root["nodeId"], "selector": CONTROLS})["nodeIds"]
    shown, problems = 0, []
    for node_id in found:
        nodes = cdp.send("Accessibility.getPartialAXTree", {"nodeId": node_id, "fetchRelatives": False})["nodes"]
        if not nodes or nodes[0].get("ignored"):  # not rendered: hidden
            continue
        shown += 1
        name = nodes[0].get("name", {})
        sources = [s for s in name.get("sources", ()) if "value" in s and not s.get("superseded")]
        if str(name.get("value", "")).strip() and not any(s.get("attribute") == "placeholder" for s in sources):
            continue
        html = cdp.send("DOM.getOuterHTML", {"nodeId": node_id})["outerHTML"]
        problems.append(f"control without an accessible name: {html[:200]}")
    return shown, problems


def test_every_page_fits_names_its_controls_and_stays_home(page: Page, server: Server, world: World) -> None:
    """Each page as the system's admin sees it (every control offered), its <details> opened (what they hide
    must fit and be named too), its objects' names as long as names go."""
    home = urlsplit(server.url)
    failures: list[str] = []
    checked = 0  # controls whose names were read: the check itself works
    where = ["login"]  # the page being opened, for the listeners

    def on_request(request: Request) -> None:
        url = urlsplit(request.url)
        if url.scheme != "data" and (url.scheme, url.netloc) != (home.scheme, home.netloc):  # data: is no request
            failures.append(f"{where[0]}: a request to another site: {request.url}")

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            failures.append(f"{where[0]}: {message.text}")

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda error: failures.append(f"{where[0]}: a script failed: {error}"))
    log_in(page, server.url, "admin", server.admin_password)
    cdp = page.context.new_cdp_session(page)
    paths = [path for visits in VISITS.values() for path in visits(world)]
    for size in (PHONE, WIDE):
        page.set_viewport_size(size)
        for path in paths:
            where[0] = f"{path} at {size['width']} px"
            answer = page.goto(f"{server.url}{path}")
            if answer is None or answer.status != 200:
                failures.append(f"{where[0]}: status {answer.status if answer else None}")
                continue
            page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true })")  # all it can show
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if overflow > 0:
                failures.append(f"{where[0]}: {overflow} px wider than the window: {page.evaluate(STICKING_OUT)}")
            shown, unnamed = _unnamed(cdp)
            checked += shown
            failures += [f"{where[0]}: {problem}" for problem in unnamed]
    assert failures == [], "\n".join(failures)
    assert checked > 10 * len(paths), "the pages' links and buttons were not found"
