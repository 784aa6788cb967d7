"""Users of the web UI through the API and the CLI, and the audit log's filters, against a real ``snapkeep serve``.

Passwords go in and never come out; a tenant's admin manages only its own subtree; the audit log is narrowed
by actor, action, target (a case-insensitive substring), outcome and time, page by page, in the API and the CLI.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.integration.test_cli import Cli

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # users do not depend on the driver

PASSWORD = "a long password 1"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def can_log_in(server: Server, name: str, password: str) -> bool:
    """Whether the login form takes this name and password (a fresh client, as a browser would be)."""
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        form = browser.get("/login")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token, form.text
        answer = browser.post("/login", data={"login_token": token.group(1), "name": name, "password": password})
        assert answer.status_code in (303, 401), answer.text
        return answer.status_code == 303


def no_secret(body: Any) -> None:
    text = repr(body)
    assert "password" not in text and "argon2" not in text, text


def test_users_through_the_api(server: Server) -> None:
    name = unique("api-user")
    with server.client() as api:
        made = ok(api.post("/api/v1/users", json={"name": name, "password": PASSWORD, "role": "viewer"}), 201)
        no_secret(made)
        assert made["name"] == name and made["role"] == "viewer" and made["tenant_id"] is None
        assert set(made) == {"id", "name", "role", "tenant_id", "created_at"}
        # refused input changes nothing
        clash = api.post("/api/v1/users", json={"name": name, "password": PASSWORD, "role": "admin"})
        assert clash.status_code == 409 and clash.json()["error"]["code"] == "name_clash"
        short = api.post("/api/v1/users", json={"name": unique("api-user"), "password": "short", "role": "viewer"})
        assert short.status_code == 422, short.text
        assert ok(api.get(f"/api/v1/users/{name}"))["role"] == "viewer"
        # show by name or id; listed a page at a time
        assert ok(api.get(f"/api/v1/users/{made['id']}")) == made
        seen, cursor = [], None
        while True:
            page = api.get("/api/v1/users", params={"limit": 1, **({"cursor": cursor} if cursor else {})})
            seen += ok(page)
            no_secret(page.json())
            cursor = page.headers.get("X-Next-Cursor")
            if cursor is None:
                break
        assert [u["name"] for u in seen].count(name) == 1 and "admin" in {u["name"] for u in seen}
        assert can_log_in(server, name, PASSWORD)
        # a new role and password: the old password stops working
        changed = ok(api.patch(f"/api/v1/users/{name}", json={"role": "operator", "password": PASSWORD + "x"}))
        no_secret(changed)
        assert changed["role"] == "operator"
        assert not can_log_in(server, name, PASSWORD) and can_log_in(server, name, PASSWORD + "x")
        ok(api.delete(f"/api/v1/users/{name}"), 204)
        assert api.get(f"/api/v1/users/{name}").status_code == 404
        assert not can_log_in(server, name, PASSWORD + "x")
        actions = ok(api.get("/api/v1/audit", params={"target": f"user:{name}", "outcome": "done"}))
        assert [e["action"] for e in actions][:4] == ["user.delete", "login", "user.update", "login"]
        assert actions[-1]["action"] == "user.create"


def test_a_tenant_admin_manages_its_own_subtree_only(server: Server) -> None:
    with server.client() as api:
        parent = ok(api.post("/api/v1/tenants", json={"name": unique("ua-parent")}), 201)
        own = ok(api.post("/api/v1/tenants", json={"name": "own", "parent": parent["id"]}), 201)
        child = ok(api.post("/api/v1/tenants", json={"name": "kid", "parent": own["id"]}), 201)
        sibling = ok(api.post("/api/v1/tenants", json={"name": "sibling", "parent": parent["id"]}), 201)
        try:
            issued = {"name": unique("ua-admin"), "role": "admin", "tenant": own["id"]}
            secret = ok(api.post("/api/v1/tokens", json=issued), 201)["secret"]
            op_issued = {"name": unique("ua-operator"), "role": "operator", "tenant": own["id"]}
            op_secret = ok(api.post("/api/v1/tokens", json=op_issued), 201)["secret"]
            before = ok(api.get("/api/v1/users"))
            with (
                httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"}) as tenant_admin,
                httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {op_secret}"}) as operator,
            ):
                for outside in (parent["id"], sibling["id"]):
                    body = {"name": unique("ua-user"), "password": PASSWORD, "role": "viewer", "tenant": outside}
                    assert tenant_admin.post("/api/v1/users", json=body).status_code == 404
                # the system's users are not in its scope: neither listed nor changed
                assert "admin" not in {u["name"] for u in ok(tenant_admin.get("/api/v1/users"))}
                assert tenant_admin.patch("/api/v1/users/admin", json={"password": PASSWORD}).status_code == 404
                assert tenant_admin.delete("/api/v1/users/admin").status_code == 404
                # an operator manages no user at all
                body = {"name": unique("ua-user"), "password": PASSWORD, "role": "viewer"}
                assert operator.post("/api/v1/users", json=body).status_code == 403
                assert ok(api.get("/api/v1/users")) == before  # every refusal changed nothing
                # in its own subtree it may, with its own role at most (admin is the top one)
                mine = {"name": unique("ua-user"), "password": PASSWORD, "role": "admin", "tenant": child["id"]}
                made = ok(tenant_admin.post("/api/v1/users", json=mine), 201)
                assert made["tenant_id"] == child["id"]
                assert ok(operator.get(f"/api/v1/users/{made['name']}"))["id"] == made["id"]
                assert operator.delete(f"/api/v1/users/{made['name']}").status_code == 403
                ok(tenant_admin.delete(f"/api/v1/users/{made['name']}"), 204)
        finally:
            api.delete(f"/api/v1/tenants/{parent['id']}", params={"force": True, "wait": 60})


def test_users_through_the_cli(server: Server) -> None:
    cli = Cli(server.cli_env())
    name = unique("cli-user")
    done = cli.run("user", "create", name, "--role", "operator", "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout)
    no_secret(made)
    assert made["role"] == "operator"
    assert can_log_in(server, name, PASSWORD)
    # never on the command line; and a prompt wants the same password twice
    assert cli.run("user", "create", unique("cli-user"), "--password", PASSWORD).returncode == 2
    mismatch = cli.run("user", "create", unique("cli-user"), stdin=f"{PASSWORD}\n{PASSWORD}y\n{PASSWORD}\n{PASSWORD}\n")
    assert mismatch.returncode == 0 and "do not match" in mismatch.stderr, mismatch.stderr
    listed = cli.ok("user", "list")
    assert re.search(rf"^\S+\s+{name}\s+operator\s+system\s", listed, re.MULTILINE), listed
    assert cli.json("user", "show", name)["id"] == made["id"]
    cli.refused("user", "update", name, code="invalid_input", exit_code=2)
    changed = cli.run("user", "update", name, "--role", "viewer", "--password-stdin", stdin=PASSWORD + "y\n")
    assert changed.returncode == 0 and "sessions have ended" in changed.stdout, changed.stderr
    assert cli.json("user", "show", made["id"])["role"] == "viewer"
    assert not can_log_in(server, name, PASSWORD) and can_log_in(server, name, PASSWORD + "y")
    assert cli.ok("user", "delete", name).strip() == f"user {name!r} deleted"
    cli.refused("user", "show", name, code="not_found", exit_code=3)


def test_the_audit_log_is_filtered_and_paged(server: Server) -> None:
    cli = Cli(server.cli_env())
    tag = uuid.uuid4().hex[:8]
    names = [f"audit-{tag}-{i}" for i in range(3)]
    start = datetime.now(UTC) - timedelta(seconds=1)
    with server.client() as api:
        for name in names:
            ok(api.post("/api/v1/users", json={"name": name, "password": PASSWORD, "role": "viewer"}), 201)
        assert not can_log_in(server, names[0], "not the password")
        mine = ok(api.get("/api/v1/audit", params={"target": f"AUDIT-{tag}"}))  # any case
        assert {(e["action"], e["outcome"]) for e in mine} == {("user.create", "done"), ("login", "refused")}
        actor = mine[-1]["actor"]
        created = ok(api.get("/api/v1/audit", params={"target": tag, "action": "user.create", "actor": actor}))
        assert [e["target"] for e in created] == [f"user:{n}" for n in reversed(names)]  # newest first
        refused = ok(api.get("/api/v1/audit", params={"target": tag, "outcome": "refused"}))
        assert [(e["actor"], e["action"]) for e in refused] == [(names[0], "login")]
        assert "wrong name or password" in refused[0]["detail"]
        # a time range; a target with LIKE's wildcards in it is taken literally
        later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        assert ok(api.get("/api/v1/audit", params={"target": tag, "since": later})) == []
        assert len(ok(api.get("/api/v1/audit", params={"target": tag, "since": start.isoformat()}))) == 4
        assert ok(api.get("/api/v1/audit", params={"target": tag, "until": start.isoformat()})) == []
        assert ok(api.get("/api/v1/audit", params={"target": f"audit-{tag}%"})) == []
        assert ok(api.get("/api/v1/audit", params={"target": f"audit_{tag}"})) == []
        wrong = api.get("/api/v1/audit", params={"since": later, "until": start.isoformat()})
        assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "invalid_input"
        assert api.get("/api/v1/audit", params={"since": "yesterday"}).status_code == 422
        assert api.get("/api/v1/audit", params={"outcome": "maybe"}).status_code == 422
        # a page at a time, the filters kept on every page
        pages, cursor = [], None
        while True:
            query = {"target": tag, "action": "user.create", "limit": 2, **({"cursor": cursor} if cursor else {})}
            answer = api.get("/api/v1/audit", params=query)
            pages.append([e["id"] for e in ok(answer)])
            cursor = answer.headers.get("X-Next-Cursor")
            if cursor is None:
                break
        assert pages == [[e["id"] for e in created[:2]], [created[2]["id"]]]
        # the CLI follows the pages with the same filters
        listed = cli.json("audit", "list", "--target", tag, "--action", "user.create", "--actor", actor)
        assert listed == created
        assert cli.json("audit", "list", "--target", tag, "--outcome", "refused") == refused
        assert len(cli.json("audit", "list", "--target", tag, "--limit", "1")) == 1
        assert cli.json("audit", "list", "--target", tag, "--since", later) == []
        table = cli.ok("audit", "list", "--target", tag, "--outcome", "refused")
        assert names[0] in table and "refused" in table
        cli.refused("audit", "list", "--since", "yesterday", code="invalid_input", exit_code=2)
        for name in names:
            ok(api.delete(f"/api/v1/users/{name}"), 204)
