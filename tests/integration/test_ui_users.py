"""Users, API tokens and the audit log in the web UI, against a real ``snapkeep serve``: the flows in a real
browser, the refusals over plain HTTP (each one changed nothing)."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server, log_in
from tests.integration.test_ui_login import _logged_in

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # the pages do not depend on the driver

PASSWORD = "a long password 1"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_manage_a_user_in_a_real_browser(page: Page, server: Server) -> None:
    name = unique("ui-user")
    log_in(page, server.url, "admin", server.admin_password)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    page.get_by_role("link", name="New user").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Role").select_option("operator")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD + "typo")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("alert")).to_contain_text("the two passwords differ")
    expect(page.get_by_label("Name")).to_have_value(name)  # what was typed is kept
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("heading", name=f"User {name}")).to_be_visible()
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Change role").click()
    expect(page.get_by_text("viewer", exact=True).first).to_be_visible()
    with server.client() as api:
        assert api.get(f"/api/v1/users/{name}").json()["role"] == "viewer"
    page.get_by_role("link", name=f"Delete user {name}").click()
    expect(page.get_by_role("heading", name=f"Delete user {name}?")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("every session they have open ends")
    page.get_by_role("button", name=f"Delete user {name}").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    expect(page.get_by_role("link", name=name)).to_have_count(0)
    # the audit log, filtered on the user's name, shows what was done
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    page.get_by_label("Target contains").fill(name)
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("row")
    expect(rows).to_have_count(4)  # the header, create, update, delete
    expect(rows.nth(1)).to_contain_text("user.delete")
    expect(rows.nth(3)).to_contain_text("user.create")


def test_make_and_revoke_a_token_in_a_real_browser(page: Page, server: Server) -> None:
    name = unique("ui-token")
    log_in(page, server.url, "admin", server.admin_password)
    page.goto(f"{server.url}/tokens")
    page.get_by_role("link", name="New token").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Role (at most your own)").select_option("viewer")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name=f"Token {name} created")).to_be_visible()
    secret = page.get_by_label(f"Secret of token {name}").input_value()
    assert secret.startswith("sk_")
    bearer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"})
    assert bearer.get("/api/v1/volumes").status_code == 200
    page.goto(f"{server.url}/tokens")
    assert secret not in page.content()  # shown that once only
    page.get_by_role("link", name=f"Revoke token {name}").click()
    expect(page.get_by_role("main")).to_contain_text("stops working at once")
    page.get_by_role("button", name=f"Revoke token {name}").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    expect(page.get_by_text(name)).to_have_count(0)
    assert bearer.get("/api/v1/volumes").status_code == 401


def test_refused_changes_in_the_pages_change_nothing(server: Server) -> None:
    client, csrf = _logged_in(server)
    with server.client() as api:
        before = api.get("/api/v1/users", params={"limit": 1000}).json()
        name = unique("ui-user")
        fields = {"name": name, "role": "viewer", "password": PASSWORD, "password_again": PASSWORD}
        assert client.post("/users/new", data=fields).status_code == 403  # no CSRF token
        assert client.post("/users/new", data={**fields, "csrf": "forged"}).status_code == 403
        short = client.post("/users/new", data={**fields, "password": "short", "password_again": "short", "csrf": csrf})
        assert short.status_code == 422 and "at least 10 characters" in short.text
        assert name in short.text and "short" not in re.sub(r"at least 10 characters", "", short.text).split("<main")[1]
        bad_role = client.post("/users/new", data={**fields, "role": "root", "csrf": csrf})
        assert bad_role.status_code == 422 and "the role must be one of" in bad_role.text
        assert client.post("/users/admin/delete", data={"csrf": csrf}).status_code == 403  # not oneself
        assert client.post("/tokens/new", data={"name": "x y/z", "role": "viewer", "csrf": csrf}).status_code == 422
        assert api.get("/api/v1/users", params={"limit": 1000}).json() == before
        # a viewer of a tenant reads its own users, changes none, and reads its tenant's audit log only
        tenant = api.post("/api/v1/tenants", json={"name": unique("ui-tenant")}).json()
        try:
            viewer = {"name": unique("ui-viewer"), "password": PASSWORD, "role": "viewer", "tenant": tenant["id"]}
            assert api.post("/api/v1/users", json=viewer).status_code == 201
            as_viewer, viewer_csrf = _logged_in(server, viewer["name"], PASSWORD)
            listed = as_viewer.get("/users")
            assert listed.status_code == 200 and viewer["name"] in listed.text and ">admin<" not in listed.text
            assert as_viewer.get("/users/admin").status_code == 404
            more = {**fields, "name": unique("ui-user"), "csrf": viewer_csrf}
            assert as_viewer.post("/users/new", data=more).status_code == 403
            audit = as_viewer.get("/audit")
            assert audit.status_code == 200 and f"user:{viewer['name']}" in audit.text
            assert "user:admin" not in audit.text and ">admin<" not in audit.text  # nothing of the system's
            assert as_viewer.get("/tokens").status_code == 200
        finally:
            api.delete(f"/api/v1/tenants/{tenant['id']}", params={"force": True, "wait": 60})
        assert client.get("/audit", params={"since": "yesterday"}).status_code == 422
        assert client.get("/audit", params={"cursor": "forged"}).status_code == 422


def test_the_audit_page_pages_with_its_filters_kept(server: Server) -> None:
    tag = uuid.uuid4().hex[:8]
    client, _csrf = _logged_in(server)
    with server.client() as api:
        for i in range(2):
            body = {"name": f"ui-audit-{tag}-{i}", "password": PASSWORD, "role": "viewer"}
            assert api.post("/api/v1/users", json=body).status_code == 201
    first = client.get("/audit", params={"target": tag, "action": "user.create", "limit": 1})
    assert first.status_code == 200 and f"user:ui-audit-{tag}-1" in first.text and f"{tag}-0" not in first.text
    link = re.search(r'<a href="([^"]+)" rel="next">Next page</a>', first.text)
    assert link, first.text
    second = client.get(link.group(1).replace("&amp;", "&"))
    assert f"user:ui-audit-{tag}-0" in second.text and f"{tag}-1" not in second.text
    assert "Next page" not in second.text
    assert f'value="{tag}"' in second.text  # the form shows the filter it was read with


def test_the_pages_fit_a_phone(page: Page, server: Server) -> None:
    page.set_viewport_size({"width": 375, "height": 800})
    log_in(page, server.url, "admin", server.admin_password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    for path, heading in (
        ("/users", "Users"),
        ("/users/new", "New user"),
        ("/tokens", "API tokens"),
        ("/audit", "Audit log"),
    ):
        page.goto(f"{server.url}{path}")
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, (path, width)  # wide tables scroll inside their own box, not the page
