"""Logging in to the web UI, in a real browser and over plain HTTP: sessions, CSRF, rate limits.

The browser test goes through the pages as a person would; the HTTP tests send what a browser would not
(a forged token, a cookie after logout) and check each refusal changed nothing.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Mounted, Server, log_in, make_traversable_tmp, start_server, stop_server

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # logins do not depend on the driver
PASSWORD = "a long password 1"


def _login_token(client: httpx.Client) -> str:
    form = client.get("/login")
    match = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert match, form.text
    return match.group(1)


def _logged_in(server: Server, name: str = "admin", password: str | None = None) -> tuple[httpx.Client, str]:
    """A client with a session cookie, and the session's CSRF token read off a page."""
    client = httpx.Client(base_url=server.url, timeout=60)
    answer = client.post(
        "/login",
        data={"login_token": _login_token(client), "name": name, "password": password or server.admin_password},
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text
    return client, match.group(1)


def test_log_in_and_out_in_a_real_browser(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    log_in(page, server.url, "admin", "not the password")
    expect(page.get_by_role("alert")).to_contain_text("wrong user name or password")
    log_in(page, server.url, "admin", server.admin_password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "snapkeep_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto(f"{server.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))


def test_a_cookie_stops_working_at_logout(server: Server) -> None:
    client, csrf = _logged_in(server)
    assert client.get("/").status_code == 200
    cookie = client.cookies["snapkeep_session"]
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    replay = httpx.Client(base_url=server.url, cookies={"snapkeep_session": cookie})
    answer = replay.get("/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_a_forged_or_replayed_csrf_token_is_refused(server: Server) -> None:
    client, csrf = _logged_in(server)
    other, other_csrf = _logged_in(server)
    for sent in ("", "forged", other_csrf):
        answer = client.post("/logout", data={"csrf": sent})
        assert answer.status_code == 403, (sent, answer.text)
    assert client.get("/", follow_redirects=False).status_code == 200  # still logged in: nothing happened
    other.post("/logout", data={"csrf": other_csrf})
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303


def test_a_login_form_without_its_own_token_is_refused(server: Server) -> None:
    client = httpx.Client(base_url=server.url, timeout=60)
    _login_token(client)
    answer = client.post("/login", data={"login_token": "forged", "name": "admin", "password": server.admin_password})
    assert answer.status_code == 403 and "snapkeep_session" not in client.cookies


def _user(server: Server, role: str = "viewer") -> str:
    """A user of this test alone (failing its logins locks out no other test)."""
    name = f"login-{uuid.uuid4().hex[:8]}"
    with server.client() as api:
        made = api.post("/api/v1/users", json={"name": name, "password": PASSWORD, "role": role})
        assert made.status_code == 201, made.text
    return name


def _try(server: Server, name: str, password: str) -> httpx.Response:
    client = httpx.Client(base_url=server.url, timeout=60)
    return client.post("/login", data={"login_token": _login_token(client), "name": name, "password": password})


def _ended(client: httpx.Client) -> bool:
    answer = client.get("/", follow_redirects=False)
    return answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_wrong_passwords_are_limited_per_user_and_the_refusal_is_audited(server: Server) -> None:
    name = _user(server)
    for _ in range(5):
        assert _try(server, name, "not the password").status_code == 401
    refused = _try(server, name, PASSWORD)  # the right one, the sixth time
    assert refused.status_code == 429 and "too many failed logins" in refused.text
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert "snapkeep_session" not in refused.cookies
    with server.client() as api:
        entries = api.get("/api/v1/audit", params={"target": f"user:{name}", "action": "login"}).json()
    assert [e["outcome"] for e in entries] == ["refused"] * 6
    assert "too many failed logins" in entries[0]["detail"] and "wrong name or password" in entries[1]["detail"]
    assert _try(server, _user(server), PASSWORD).status_code == 303  # another user is not locked out


def test_a_cookie_of_a_changed_or_deleted_user_stops_working(server: Server) -> None:
    name = _user(server, role="operator")
    by_password, _csrf = _logged_in(server, name, PASSWORD)
    by_role, _csrf = _logged_in(server, name, PASSWORD)
    with server.client() as api:
        assert api.patch(f"/api/v1/users/{name}", json={"password": PASSWORD + "!"}).status_code == 200
        assert _ended(by_password) and _ended(by_role)  # every session of the user
        by_role, _csrf = _logged_in(server, name, PASSWORD + "!")
        deleted, _csrf = _logged_in(server, name, PASSWORD + "!")
        assert api.patch(f"/api/v1/users/{name}", json={"role": "viewer"}).status_code == 200
        assert _ended(by_role)
        deleted, _csrf = _logged_in(server, name, PASSWORD + "!")
        cookie = deleted.cookies["snapkeep_session"]
        assert api.delete(f"/api/v1/users/{name}").status_code == 204
    assert _ended(deleted)
    replay = httpx.Client(base_url=server.url, cookies={"snapkeep_session": cookie})
    assert _ended(replay)


@pytest.fixture
def own_server(fs: Mounted) -> Iterator[Server]:
    """A service of its own: its login limits are used up on purpose, and its sessions idle out in 6 s."""
    data_dir = make_traversable_tmp("snapkeep-login-")
    srv = start_server(data_dir, fs.new_dir("login-pool"), session_idle_minutes="0.1")
    yield srv
    stop_server(srv)
    shutil.rmtree(data_dir, ignore_errors=True)


def test_an_idle_session_ends_and_one_address_is_limited_for_every_name(own_server: Server) -> None:
    client, _csrf = _logged_in(own_server)
    time.sleep(7)  # longer than the idle time, without a request
    assert _ended(client)
    for i in range(20):  # twenty names from one address (loopback), none of them real
        assert _try(own_server, f"nobody-{i}", "not the password").status_code == 401
    refused = _try(own_server, "admin", own_server.admin_password)
    assert refused.status_code == 429
    with own_server.client() as api:
        entries = api.get("/api/v1/audit", params={"actor": "admin", "action": "login", "limit": 1}).json()
    assert entries[0]["outcome"] == "refused" and "too many failed logins; from 127.0.0.1" in entries[0]["detail"]
