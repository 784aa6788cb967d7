"""The web UI's defences, attacked over plain HTTP against a real ``snapkeep serve``.

Each test sends what a hostile client would (concurrent guesses, a flood of unauthenticated logins, a
page framed by another site) and checks the service holds. The login limits count per process, so the
tests that use them up start a service of their own.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from playwright.sync_api import Page, expect

from snapkeep.catalog.db import Database, make_engine
from snapkeep.model.principal import SYSTEM, Role
from snapkeep.model.timespec import utcnow
from snapkeep.services.audit import Audit
from snapkeep.services.users import Users
from snapkeep.ui.site import PAGES
from tests.conftest import Mounted, Server, log_in, make_traversable_tmp, start_server, stop_server

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # logins do not depend on the driver

ARGON2_MIB = 64  # what one password check allocates (argon2-cffi's RFC 9106 low-memory profile)


@pytest.fixture
def own_server(fs: Mounted) -> Iterator[Server]:
    """A service of its own, with login limits no other test has used up."""
    data_dir = make_traversable_tmp("snapkeep-security-")
    srv = start_server(data_dir, fs.new_dir("security-pool"))
    yield srv
    stop_server(srv)
    shutil.rmtree(data_dir, ignore_errors=True)


def _login_token(client: httpx.Client) -> str:
    match = re.search(r'name="login_token" value="([^"]+)"', client.get("/login").text)
    assert match
    return match.group(1)


def _try_login(server: Server, name: str, password: str) -> int:
    """One login attempt by a fresh browser: the status it got."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        data = {"login_token": _login_token(client), "name": name, "password": password}
        return client.post("/login", data=data).status_code


def _peak_rss_mib(server: Server) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) // 1024


def test_concurrent_guesses_cannot_pass_the_per_user_limit(own_server: Server) -> None:
    """Guesses sent at once are all counted: no more than the limit (5) are ever checked."""
    statuses: list[int] = []
    for wave in range(5):  # a dozen guesses at once, again and again, until the limit refuses them
        guesses = [f"guess {wave}.{i}" for i in range(12)]
        with ThreadPoolExecutor(12) as pool:
            statuses += pool.map(lambda guess: _try_login(own_server, "admin", guess), guesses)
        if 429 in statuses:
            break
    assert statuses.count(401) <= 5, statuses
    assert set(statuses) <= {401, 429, 503}, statuses
    assert _try_login(own_server, "admin", own_server.admin_password) == 429  # admin's limit is reached


def test_a_flood_of_logins_is_not_a_flood_of_64_mib_hashes(own_server: Server) -> None:
    """Unauthenticated logins (each argon2 check costs 64 MiB) are checked a few at a time, not all at once."""
    before = _peak_rss_mib(own_server)
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: _try_login(own_server, f"nobody-{i}", "wrong password"), range(16)))
    grown = _peak_rss_mib(own_server) - before
    assert grown < 8 * ARGON2_MIB, (grown, statuses)
    assert set(statuses) <= {401, 503}, statuses
    assert httpx.get(f"{own_server.url}/api/v1/health").status_code == 200


def _logged_in(server: Server, name: str = "admin", password: str | None = None) -> tuple[httpx.Client, str]:
    """A client with a session cookie (admin's by default), and the session's CSRF token read off a page."""
    client = httpx.Client(base_url=server.url, timeout=60, follow_redirects=False)
    data = {"login_token": _login_token(client), "name": name, "password": password or server.admin_password}
    assert client.post("/login", data=data).status_code == 303
    match = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert match
    return client, match.group(1)


def test_pages_cannot_be_framed_sniffed_cached_or_run_foreign_scripts(server: Server) -> None:
    client, _csrf = _logged_in(server)
    answers = {
        "login page": httpx.get(f"{server.url}/login"),
        "dashboard": client.get("/"),
        "error page": client.get("/no-such-page"),
        "API reference": httpx.get(f"{server.url}/docs"),
        "API": server.client().get("/api/v1/volumes"),
    }
    for what, answer in answers.items():
        headers = answer.headers
        csp = headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp and headers.get("x-frame-options") == "DENY", what
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0], what
        assert headers.get("x-content-type-options") == "nosniff", what
        assert headers.get("referrer-policy") == "same-origin", what
        assert headers.get("cache-control") == "no-store", what


def test_the_api_reference_shows_every_operation_with_no_request_elsewhere(page: Page, server: Server) -> None:
    """``/docs`` is this service's own page (FastAPI's loads scripts from a CDN, and ReDoc is not served)."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    answer = page.goto(f"{server.url}/docs")
    assert answer is not None and answer.status == 200
    document = httpx.get(f"{server.url}/openapi.json").json()
    shown = {text.strip() for text in page.get_by_role("heading", level=2).all_inner_texts()}
    listed = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    assert listed and listed <= shown, listed - shown
    expect(page.get_by_role("heading", name="VolumeCreate", exact=True)).to_be_visible()  # a schema with its fields
    assert requested and all(url.startswith(server.url) for url in requested), requested
    assert httpx.get(f"{server.url}/redoc").status_code == 404


def test_the_vendored_htmx_runs_under_the_content_security_policy(page: Page, server: Server) -> None:
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text) if "Content Security" in message.text else None)
    log_in(page, server.url, "admin", server.admin_password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert page.evaluate("typeof window.htmx") == "object"
    config = page.evaluate("[htmx.config.historyCacheSize, htmx.config.allowEval, htmx.config.allowScriptTags]")
    assert config == [0, False, False]  # no page (nor CSRF token) kept in localStorage past logout; no eval
    page.goto(f"{server.url}/no-such-page")
    page.get_by_role("link", name="Back to the dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert refused == []


def test_an_error_page_still_logs_out(server: Server) -> None:
    """A refusal's page keeps the session's CSRF token in its Log out form (and its htmx headers)."""
    client, csrf = _logged_in(server)
    refused = client.post("/logout", data={"csrf": "forged"})
    assert refused.status_code == 403 and "Log out" in refused.text
    assert f'name="csrf" value="{csrf}"' in refused.text and f'"X-CSRF-Token": "{csrf}"' in refused.text
    match = re.search(r'name="csrf" value="([^"]*)"', refused.text)
    assert match and client.post("/logout", data={"csrf": match.group(1)}).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303  # logged out


def _add_user(server: Server, role: Role = Role.ADMIN, tenant: str | None = None) -> tuple[str, str]:
    """A new user written straight into the running service's catalog: its name and password."""
    name, password = f"user-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    engine = make_engine(f"sqlite:///{server.data_dir}/catalog.db")
    db = Database(engine)
    try:
        Users(db, Audit(db, utcnow), utcnow).create(SYSTEM, name, password, role, tenant)
    finally:
        engine.dispose()
    return name, password


def test_a_deleted_tenants_users_are_logged_out(server: Server) -> None:
    api = server.client()
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    assert api.post("/api/v1/tenants", json={"name": tenant}).status_code == 201
    name, password = _add_user(server, Role.ADMIN, tenant)
    client, _csrf = _logged_in(server, name, password)
    assert client.get("/", follow_redirects=False).status_code == 200
    job = api.delete(f"/api/v1/tenants/{tenant}", params={"wait": 60}).json()
    assert job["status"] == "succeeded", job
    assert client.get("/", follow_redirects=False).status_code == 303  # to the login page


def test_a_session_cookie_is_no_api_credential_and_a_token_opens_no_page(server: Server) -> None:
    client, _csrf = _logged_in(server)
    assert client.get("/api/v1/volumes").status_code == 401
    token_only = httpx.get(f"{server.url}/", headers={"Authorization": f"Bearer {server.token}"})
    assert token_only.status_code == 303 and token_only.headers["location"].startswith("/login")


# the login form has a CSRF token of its own; the API reference describes the API, as /openapi.json does
PUBLIC_PAGES = {("GET", "/login"), ("POST", "/login"), ("GET", "/docs")}


def _ui_routes() -> list[tuple[str, str]]:
    """Every page route of the web UI (method, path with each parameter as ``x``), from its route table."""
    routes = [route for router in PAGES for route in router.routes if isinstance(route, APIRoute)]
    found = {(method, re.sub(r"\{[^}]+\}", "x", route.path)) for route in routes for method in route.methods}
    return sorted(found - PUBLIC_PAGES)


def test_every_page_wants_a_session_and_every_change_its_csrf_token(server: Server) -> None:
    """Generated from the route table, so a new page cannot forget the Visitor dependency."""
    client, _csrf = _logged_in(server)
    anonymous = httpx.Client(base_url=server.url, timeout=60, follow_redirects=False)
    for method, path in _ui_routes():
        answer = anonymous.request(method, path, data={"csrf": "forged"} if method != "GET" else None)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login"), (method, path)
        if method not in ("GET", "HEAD"):
            for sent in ({}, {"csrf": "forged"}):
                answer = client.request(method, path, data=sent)
                assert answer.status_code == 403, (method, path, sent, answer.text[:300])
            answer = client.request(method, path, json={"csrf": "forged"}, headers={"HX-Request": "true"})
            assert answer.status_code == 403, (method, path, "htmx")
    assert client.get("/").status_code == 200  # nothing above logged the session out


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "/\t/evil.example",
        "/\r\n/evil.example",
        "/%2F/evil.example",
        "javascript:alert(1)",
        " //evil.example",
    ],
)
def test_after_login_the_browser_stays_on_this_site(server: Server, target: str) -> None:
    client = httpx.Client(base_url=server.url, timeout=60, follow_redirects=False)
    data = {"login_token": _login_token(client), "name": "admin", "password": server.admin_password, "next": target}
    answer = client.post("/login", data=data)
    assert answer.status_code == 303
    location = answer.headers["location"]
    resolved = httpx.URL(server.url).join(location)
    assert resolved.host == "127.0.0.1" and resolved.scheme == "http", location
    assert not re.match(r"^[/\\\s]{2}", location), location  # a browser drops tabs and newlines: //evil


def test_a_client_cannot_choose_the_address_its_failures_count_against(server: Server) -> None:
    """X-Forwarded-For is believed only from a configured proxy: else one client could spread its guesses over
    as many addresses as it likes, and write any address into the audit log."""
    name = f"nobody-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=server.url, timeout=60, headers={"X-Forwarded-For": "203.0.113.7"}) as client:
        data = {"login_token": _login_token(client), "name": name, "password": "wrong password"}
        assert client.post("/login", data=data).status_code == 401
    entries = server.client().get("/api/v1/audit", params={"limit": 50}).json()
    refusal = next(e for e in entries if e["action"] == "login" and e["target"] == f"user:{name}")
    assert refusal["detail"].endswith("from 127.0.0.1"), refusal
