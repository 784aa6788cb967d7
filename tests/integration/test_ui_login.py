"""Logging in to the web UI, in a real browser and over plain HTTP: sessions, CSRF, rate limits.

The browser test goes through the pages as a person would; the HTTP tests send what a browser would not
(a forged token, a cookie after logout) and check each refusal changed nothing.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server, log_in

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # logins do not depend on the driver


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
