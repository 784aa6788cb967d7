"""Scoped access on every route (SPEC §5), API and web UI, generated from the application's own route table.

Every route x every role (admin, operator, viewer) x {own scope, parent scope, sibling tenant}, against
objects owned by tenant A: A is a child of tenant P and a sibling of B; the callers are an admin, an
operator and a viewer of A (own), of P and the system's admin (parent), and of B (sibling), plus an
operator of A's child. A scope sees its own subtree only: B and the child are answered 404 for anything of
A, as if it did not exist (A's own system snapshot, exposed to its child, excepted); a viewer may read and is
refused (403) every change; an admin-only operation is refused (403) to every other role, and an operation
of the system's alone to every tenant's caller. Each refused request is checked to have changed nothing
(every table of the catalog, read beside the running service, and the pool on disk) and to be in the audit
log, once. Requests that are allowed are sent too, and must succeed (a job they start included); those that
destroy or power their target (``fresh`` in the table) are sent against a new object of A made for the case.

``ROUTES`` must name every operation of the OpenAPI document, and ``UI_ROUTES`` every other route of the
application (the web UI's pages and forms, static files, the API's documentation pages): a new route fails
this test until it says who may call it. In the web UI the callers are users logged in with a session (one
of each role and scope, and a browser that is not logged in); every change is sent without the session's
CSRF token first (refused 403, nothing changed) and then with it; no page answered may name an object
outside the caller's subtree (each scope has objects with unique names to look for).
"""

from __future__ import annotations

import os
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from snapkeep.api.app import create_app
from snapkeep.config import Settings
from snapkeep.services.container import Services
from tests.conftest import Server

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # scope does not depend on the driver

PUBLIC, VIEWER, OPERATOR, ADMIN = -1, 0, 1, 2  # PUBLIC: a web UI route for anyone, logged in or not
ROLE_NAMES = {VIEWER: "viewer", OPERATOR: "operator", ADMIN: "admin"}
PARENTS: dict[str, str | None] = {"p": None, "a": "p", "b": "p", "child": "a"}  # the tenants, by key
MATRIX_PASSWORD = "matrix-password-1"
OWN = "own"  # the owner of no object: the route acts on the caller's own scope, whichever it is


@dataclass(frozen=True)
class Caller:
    name: str
    role: int
    tenant: str | None  # a key of PARENTS; None: the system
    scope: str  # own, parent or sibling (of A), or child

    @property
    def id(self) -> str:
        return f"{self.name} ({self.scope})"


CALLERS = [
    Caller("system-admin", ADMIN, None, "parent"),
    *(
        Caller(f"{tenant}-{ROLE_NAMES[role]}", role, tenant, scope)
        for tenant, scope in (("p", "parent"), ("a", "own"), ("b", "sibling"))
        for role in (ADMIN, OPERATOR, VIEWER)
    ),
    Caller("child-operator", OPERATOR, "child", "child"),
]


def visible(caller: Caller, owner: str | None, exposed: bool) -> bool:
    """Whether a route's object (of ``owner``; ``exposed``: A's system snapshot) is in ``caller``'s sight."""
    return owner == OWN or sees(caller, owner) or (exposed and caller.tenant == "child")


def sees(caller: Caller | None, owner: str | None) -> bool:
    """Whether ``caller``'s scope holds something owned by ``owner`` (a tenant key; None: the system)."""
    if caller is None:
        return False
    if caller.tenant is None:
        return True
    while owner is not None and owner != caller.tenant:
        owner = PARENTS[owner]
    return owner is not None


@dataclass
class Session:
    """A user logged in to the web UI: a client holding the session's cookie, and its CSRF token."""

    client: httpx.Client
    csrf: str
    user: str


@dataclass
class World:
    server: Server
    admin: httpx.Client
    tenants: dict[str, dict[str, Any]]  # p, a, b, child
    objects: dict[str, str]  # what of A the paths name: volume, vm, snapshot, job, network, token, tenant
    clients: dict[str, httpx.Client]
    token_names: dict[str, str]
    sessions: dict[str, Session]  # each caller's user, logged in to the web UI
    markers: dict[str | None, list[str]]  # names of objects of each owner: a page must not name another scope's
    names: dict[str, str]  # the names of A's objects, by the kind of World.objects
    cidrs: int = 0  # networks made for cases so far (each needs a range of its own)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


Body = Callable[[World], dict[str, Any] | None]


@dataclass(frozen=True)
class Route:
    """Who may call one operation on an object of A (``owner`` "a"), of the system (``owner`` None), or on
    the caller's own scope, whichever it is (``OWN``)."""

    needs: int
    owner: str | None = "a"  # or OWN
    body: Body = lambda _w: None
    fresh: bool = False  # when allowed, sent against a new object of A made for the case (it destroys it)
    system_only: bool = False  # not an object of anyone's: a tenant's caller is refused (403), not misled
    snapshot: str = "snapshot"  # which snapshot of A the path names: a volume's, or A's own system snapshot
    exposed: bool = False  # A's child reads it too: A's own system snapshots are exposed to it (SPEC §5)
    query: dict[str, str] | None = None  # the query string a GET needs


def next_cidr(w: World) -> str:
    """A range no network of the matrix has had yet."""
    w.cidrs += 1
    return f"10.214.{w.cidrs}.0/24"


def a_path(w: World) -> str:
    """How a body names tenant A: by id, which every scope that sees A resolves (a path of names starts at
    the top of the caller's own scope, so A's own callers would not know A by its path from the system)."""
    return str(w.tenants["a"]["id"])


ROUTES: dict[tuple[str, str], Route] = {
    # service
    ("get", "/api/v1/audit"): Route(VIEWER, owner=OWN),  # each scope reads its own subtree's entries
    # volumes
    ("get", "/api/v1/volumes"): Route(VIEWER),
    ("post", "/api/v1/volumes"): Route(
        OPERATOR, body=lambda w: {"name": unique("mx"), "size_limit": "16M", "tenant": a_path(w)}
    ),
    ("get", "/api/v1/volumes/{ref}"): Route(VIEWER),
    ("patch", "/api/v1/volumes/{ref}"): Route(OPERATOR, body=lambda _w: {"description": "changed by the matrix"}),
    ("delete", "/api/v1/volumes/{ref}"): Route(OPERATOR, fresh=True),
    # VMs
    ("get", "/api/v1/vms"): Route(VIEWER),
    ("post", "/api/v1/vms"): Route(
        OPERATOR, body=lambda w: {"name": unique("mx"), "disks": ["8M"], "nics": 0, "tenant": a_path(w)}
    ),
    ("get", "/api/v1/vms/{ref}"): Route(VIEWER),
    ("post", "/api/v1/vms/{ref}/start"): Route(OPERATOR, fresh=True),
    ("post", "/api/v1/vms/{ref}/stop"): Route(OPERATOR, body=lambda _w: {"force": True}, fresh=True),
    ("post", "/api/v1/vms/{ref}/clone"): Route(OPERATOR, body=lambda _w: {"name": unique("mx")}, fresh=True),
    ("delete", "/api/v1/vms/{ref}"): Route(OPERATOR, fresh=True),
    # snapshots
    ("get", "/api/v1/snapshots"): Route(VIEWER),
    ("post", "/api/v1/snapshots"): Route(
        OPERATOR, body=lambda w: {"volume": w.objects["volume"], "name": unique("mx")}
    ),
    ("post", "/api/v1/snapshots/sweep"): Route(ADMIN, owner=OWN),  # each admin sweeps its own scope
    ("get", "/api/v1/snapshots/{snap_id}"): Route(VIEWER),
    ("delete", "/api/v1/snapshots/{snap_id}"): Route(OPERATOR, fresh=True),
    ("post", "/api/v1/snapshots/{snap_id}/unlock"): Route(ADMIN),
    ("post", "/api/v1/snapshots/{snap_id}/space"): Route(OPERATOR),
    ("get", "/api/v1/snapshots/{snap_id}/files"): Route(VIEWER),
    ("post", "/api/v1/snapshots/{snap_id}/extract"): Route(OPERATOR, body=lambda _w: {"path": "f.txt"}, fresh=True),
    ("post", "/api/v1/snapshots/{snap_id}/restore"): Route(
        OPERATOR, body=lambda _w: {"pre_restore": False}, fresh=True
    ),
    ("get", "/api/v1/snapshots/{snap_id}/contents"): Route(VIEWER, snapshot="system-snapshot", exposed=True),
    ("post", "/api/v1/snapshots/{snap_id}/import"): Route(
        OPERATOR, body=lambda w: {"volume": w.objects["volume"], "name": unique("mx")}, snapshot="system-snapshot"
    ),
    # jobs
    ("get", "/api/v1/jobs"): Route(VIEWER),
    ("get", "/api/v1/jobs/{job_id}"): Route(VIEWER),
    # tenants
    ("get", "/api/v1/tenants"): Route(VIEWER),
    ("post", "/api/v1/tenants"): Route(OPERATOR, body=lambda w: {"name": unique("mx"), "parent": a_path(w)}),
    ("get", "/api/v1/tenants/{ref}"): Route(VIEWER),
    ("patch", "/api/v1/tenants/{ref}"): Route(OPERATOR, body=lambda _w: {"description": "changed by the matrix"}),
    ("post", "/api/v1/tenants/{ref}/start"): Route(OPERATOR, fresh=True),
    ("post", "/api/v1/tenants/{ref}/stop"): Route(OPERATOR, body=lambda _w: {"force": True}, fresh=True),
    ("delete", "/api/v1/tenants/{ref}"): Route(OPERATOR, fresh=True),
    ("get", "/api/v1/tenants/{ref}/settings"): Route(VIEWER),
    ("patch", "/api/v1/tenants/{ref}/settings"): Route(OPERATOR, body=lambda _w: {"matrix": 1}),
    # the system's settings
    ("get", "/api/v1/settings"): Route(VIEWER, owner=None),
    ("patch", "/api/v1/settings"): Route(ADMIN, owner=None, body=lambda _w: {"matrix": 1}),
    # networks
    ("get", "/api/v1/networks"): Route(VIEWER),
    ("post", "/api/v1/networks"): Route(
        OPERATOR, body=lambda w: {"name": unique("mx"), "cidr": next_cidr(w), "tenant": a_path(w)}
    ),
    ("get", "/api/v1/networks/{ref}"): Route(VIEWER),
    ("patch", "/api/v1/networks/{ref}"): Route(OPERATOR, body=lambda _w: {"description": "changed by the matrix"}),
    ("delete", "/api/v1/networks/{ref}"): Route(OPERATOR, fresh=True),
    # tags (of A's volume)
    ("get", "/api/v1/tags/{kind}/{ref}"): Route(VIEWER),
    ("put", "/api/v1/tags/{kind}/{ref}/{tag}"): Route(OPERATOR),
    ("delete", "/api/v1/tags/{kind}/{ref}/{tag}"): Route(OPERATOR),
    # tokens (of A): an operator makes, sees and revokes those of its subtree, of at most its own role
    ("get", "/api/v1/tokens"): Route(VIEWER),
    ("post", "/api/v1/tokens"): Route(
        OPERATOR, body=lambda w: {"name": unique("mx"), "role": "viewer", "tenant": a_path(w)}
    ),
    ("delete", "/api/v1/tokens/{ref}"): Route(OPERATOR, fresh=True),
    # users (of A): an admin makes, changes and removes those of its subtree; any role reads them
    ("get", "/api/v1/users"): Route(VIEWER),
    ("post", "/api/v1/users"): Route(
        ADMIN, body=lambda w: {"name": unique("mx"), "password": MATRIX_PASSWORD, "role": "viewer", "tenant": a_path(w)}
    ),
    ("get", "/api/v1/users/{ref}"): Route(VIEWER),
    ("patch", "/api/v1/users/{ref}"): Route(ADMIN, body=lambda _w: {"password": MATRIX_PASSWORD}),
    ("delete", "/api/v1/users/{ref}"): Route(ADMIN, fresh=True),
    # profiles (A's own, with period "d", assigned to A's volume)
    ("get", "/api/v1/profiles"): Route(VIEWER),
    ("post", "/api/v1/profiles"): Route(OPERATOR, body=lambda w: {"name": unique("mx"), "tenant": a_path(w)}),
    ("get", "/api/v1/profiles/{ref}"): Route(VIEWER),
    ("patch", "/api/v1/profiles/{ref}"): Route(OPERATOR, body=lambda _w: {"description": "changed by the matrix"}),
    ("delete", "/api/v1/profiles/{ref}"): Route(OPERATOR, fresh=True),
    ("post", "/api/v1/profiles/{ref}/periods"): Route(
        OPERATOR, body=lambda _w: {"name": unique("mx"), "frequency": "daily", "retention": "2d"}
    ),
    ("patch", "/api/v1/profiles/{ref}/periods/{name}"): Route(OPERATOR, body=lambda _w: {"retention": "3d"}),
    ("delete", "/api/v1/profiles/{ref}/periods/{name}"): Route(OPERATOR, fresh=True),
    ("get", "/api/v1/profiles/{ref}/preview"): Route(VIEWER, query={"at": "2099-01-01T00:00:00+00:00"}),
    ("get", "/api/v1/profiles/{ref}/assignments"): Route(VIEWER),
    ("get", "/api/v1/scheduler"): Route(VIEWER),
    ("post", "/api/v1/profiles/{ref}/assignments"): Route(
        OPERATOR, body=lambda w: {"subject_type": "volume", "subject": w.objects["volume"]}
    ),
    ("delete", "/api/v1/assignments/{subject_type}/{subject}"): Route(OPERATOR),
}
LISTINGS = {  # a listing is never refused: it shows the caller's scope only (the field that names A's object)
    "/api/v1/volumes": ("volume", "id"),
    "/api/v1/vms": ("vm", "id"),
    "/api/v1/snapshots": ("snapshot", "id"),
    "/api/v1/jobs": ("job", "id"),
    "/api/v1/tenants": ("tenant", "id"),
    "/api/v1/networks": ("network", "id"),
    "/api/v1/tokens": ("token", "id"),
    "/api/v1/users": ("user", "id"),
    "/api/v1/profiles": ("profile", "id"),
    "/api/v1/scheduler": ("volume", "subject_id"),
}
PARAMS = {  # path parameter -> the object of A it names
    ("/api/v1/volumes", "ref"): "volume",
    ("/api/v1/vms", "ref"): "vm",
    ("/api/v1/snapshots", "snap_id"): "snapshot",
    ("/api/v1/jobs", "job_id"): "job",
    ("/api/v1/tenants", "ref"): "tenant",
    ("/api/v1/networks", "ref"): "network",
    ("/api/v1/tokens", "ref"): "token",
    ("/api/v1/users", "ref"): "user",
    ("/api/v1/profiles", "ref"): "profile",
    ("/api/v1/profiles", "name"): "period",
}


def target(template: str) -> str:
    """What kind of A's objects a path names (its last parameter's)."""
    prefix = template.split("/{")[0]
    return PARAMS[(prefix, template.split("{")[-1].split("}")[0])]


def concrete(template: str, objects: dict[str, str]) -> str:
    if template.startswith("/api/v1/tags/"):
        return template.format(kind="volume", ref=objects["volume"], tag="matrix")
    if template.startswith("/api/v1/assignments/"):
        return template.format(subject_type="volume", subject=objects["volume"])
    prefix = template.split("/{")[0]
    names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
    return template.format(**{name: objects[PARAMS[(prefix, name)]] for name in names})


def ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, response.text
    return response.json()


def fresh_object(w: World, kind: str) -> str:
    """A new object of A (made by the system's admin) for a case that destroys or powers its target."""
    api, a = w.admin, w.tenants["a"]["id"]
    if kind in ("volume", "snapshot"):
        volume = ok(api.post("/api/v1/volumes", json={"name": unique("mx"), "size_limit": "16M", "tenant": a}))
        with open(os.path.join(volume["path"], "f.txt"), "w") as f:
            f.write("made for one case\n")
        if kind == "volume":
            return str(volume["id"])
        taken = ok(api.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": volume["id"], "name": "s"}))
        return str(taken["result"]["snapshot"]["id"])
    if kind == "vm":
        body = {"name": unique("mx"), "disks": ["8M"], "nics": 0, "tenant": a}
        return str(ok(api.post("/api/v1/vms", json=body))["id"])
    if kind == "tenant":
        return str(ok(api.post("/api/v1/tenants", json={"name": unique("mx"), "parent": a}))["id"])
    if kind == "network":
        body = {"name": unique("mx"), "cidr": next_cidr(w), "tenant": a}
        return str(ok(api.post("/api/v1/networks", json=body))["id"])
    if kind == "profile":
        return str(ok(api.post("/api/v1/profiles", json={"name": unique("mx"), "tenant": a}))["id"])
    if kind == "period":
        name = unique("mx")
        ok(api.post(f"/api/v1/profiles/{w.objects['profile']}/periods", json={"name": name, "frequency": "daily"}))
        return name
    if kind == "user":
        body = {"name": unique("mx"), "password": MATRIX_PASSWORD, "role": "viewer", "tenant": a}
        return str(ok(api.post("/api/v1/users", json=body))["id"])
    assert kind == "token", kind
    return str(ok(api.post("/api/v1/tokens", json={"name": unique("mx"), "role": "viewer", "tenant": a}))["id"])


MOVING = {("web_sessions", "seen_at"), ("web_sessions", "expires_at")}  # a logged-in user's visit moves them


def catalog(w: World) -> sqlite3.Connection:
    """The running service's catalog, read-only (SQLite in WAL mode: a reader beside the server's writer)."""
    path = Settings(data_dir=w.server.data_dir, pool_dir=w.server.pool_dir).catalog_url.removeprefix("sqlite:///")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def snapshot_of_state(w: World) -> dict[str, Any]:
    """Everything a refused request must leave as it was: every table of the catalog (so a table added later
    is compared too) but the audit log, where the refusal is written; and the pool on disk."""
    state: dict[str, Any] = {}
    with closing(catalog(w)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            if table == "audit_log" or table.startswith("sqlite_"):
                continue
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            kept = ", ".join(f'"{column}"' for column in columns if (table, column) not in MOVING)
            state[table] = sorted(db.execute(f'SELECT {kept} FROM "{table}"').fetchall(), key=repr)
    pool = w.server.pool_dir
    state["pool"] = {d: sorted(os.listdir(os.path.join(pool, d))) for d in ("datasets", "snapshots")}
    return state


def newest_audit_id(w: World) -> int:
    with closing(catalog(w)) as db:
        return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM audit_log").fetchone()[0])


def refusals_since(w: World, actor: str, since: int) -> int:
    """How many refusals of ``actor`` the audit log gained after entry ``since``."""
    with closing(catalog(w)) as db:
        query = "SELECT COUNT(*) FROM audit_log WHERE id > ? AND actor = ? AND outcome = 'refused'"
        return int(db.execute(query, (since, actor)).fetchone()[0])


def make_user(w: World, caller: Caller) -> str:
    """A web UI user of ``caller``'s role and scope, made by the system's admin; its name."""
    name = unique(f"mxu-{caller.name}")
    tenant = None if caller.tenant is None else w.tenants[caller.tenant]["id"]
    role = ROLE_NAMES[caller.role]
    ok(w.admin.post("/api/v1/users", json={"name": name, "password": MATRIX_PASSWORD, "role": role, "tenant": tenant}))
    return name


def login_token(client: httpx.Client) -> str:
    """The login form's own CSRF token (and its cookie, which the client keeps)."""
    form = client.get("/login")
    match = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert match, form.text
    return match.group(1)


def log_in(server: Server, user: str) -> Session:
    client = httpx.Client(base_url=server.url, timeout=60)
    answer = client.post("/login", data={"login_token": login_token(client), "name": user, "password": MATRIX_PASSWORD})
    assert answer.status_code == 303, answer.text
    match = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)
    assert match, "no CSRF token on the dashboard"
    return Session(client, match.group(1), user)


@pytest.fixture(scope="module")
def world(server: Server, libvirtd: None) -> Iterator[World]:
    admin = server.client()

    p = ok(admin.post("/api/v1/tenants", json={"name": unique("mx-p")}))
    a = ok(admin.post("/api/v1/tenants", json={"name": unique("mx-a"), "parent": p["id"]}))
    b = ok(admin.post("/api/v1/tenants", json={"name": unique("mx-b"), "parent": p["id"]}))
    child = ok(admin.post("/api/v1/tenants", json={"name": unique("mx-child"), "parent": a["id"]}))
    tenants = {"p": p, "a": a, "b": b, "child": child}
    markers: dict[str | None, list[str]] = {}
    for owner in (None, *PARENTS):  # a volume, its snapshot and a profile of every scope: only it may see them
        tenant = tenants[owner]["id"] if owner else None
        made = ok(admin.post("/api/v1/volumes", json={"name": unique("mxv"), "size_limit": "16M", "tenant": tenant}))
        took = {"volume": made["id"], "name": unique("mxs")}
        took = ok(admin.post("/api/v1/snapshots", params={"wait": 30}, json=took))["result"]["snapshot"]
        kept = ok(admin.post("/api/v1/profiles", json={"name": unique("mxp"), "tenant": tenant}))
        markers[owner] = [made["name"], took["name"], kept["name"]]
    volume = ok(admin.post("/api/v1/volumes", json={"name": unique("mxv"), "size_limit": "32M", "tenant": a["id"]}))
    with open(os.path.join(volume["path"], "f.txt"), "w") as f:
        f.write("tenant a's file\n")
    taken = ok(
        admin.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": volume["id"], "name": unique("mxs")})
    )
    vm = ok(admin.post("/api/v1/vms", json={"name": unique("mxvm"), "disks": ["8M"], "nics": 0, "tenant": a["id"]}))
    net = {"name": unique("mxn"), "cidr": "10.213.9.0/24", "tenant": a["id"]}
    network = ok(admin.post("/api/v1/networks", json=net))
    daily = {"name": "d", "frequency": "daily", "retention": "2d"}
    profile = ok(admin.post("/api/v1/profiles", json={"name": unique("mxp"), "tenant": a["id"], "periods": [daily]}))
    assigned = {"subject_type": "volume", "subject": volume["id"]}
    ok(admin.post(f"/api/v1/profiles/{profile['id']}/assignments", json=assigned))
    # A's own system snapshot, not private: its child sees it (exposed), and may restore only its own from it
    own = {"system": True, "tenant": a["id"], "name": "sys", "private": False}
    system_snapshot = ok(admin.post("/api/v1/snapshots", params={"wait": 30}, json=own))["result"]["snapshot"]
    a_token = ok(admin.post("/api/v1/tokens", json={"name": unique("mx-a-token"), "role": "viewer", "tenant": a["id"]}))
    snapshot = taken["result"]["snapshot"]
    names = {"volume": volume["name"], "vm": vm["name"], "network": network["name"], "profile": profile["name"]}
    names |= {"snapshot": snapshot["name"], "token": a_token["name"]}
    markers["a"] += names.values()
    a_user = {"name": unique("mx-a-user"), "password": MATRIX_PASSWORD, "role": "viewer", "tenant": a["id"]}
    a_user = ok(admin.post("/api/v1/users", json=a_user))
    names["user"] = a_user["name"]
    markers["a"].append(a_user["name"])
    objects = {
        "volume": volume["id"],
        "vm": vm["id"],
        "snapshot": snapshot["id"],
        "system-snapshot": system_snapshot["id"],
        "job": taken["id"],
        "network": network["id"],
        "token": a_token["id"] if "id" in a_token else a_token["token"]["id"],
        "user": a_user["id"],
        "tenant": a["id"],
        "profile": profile["id"],
        "period": "d",
        "static-file": "snapkeep.css",
    }
    w = World(server, admin, tenants, objects, {}, {}, {}, markers, names)
    for caller in CALLERS:
        if caller.tenant is None:
            w.clients[caller.name], w.token_names[caller.name] = admin, _actor(admin, "tenant.create")
        else:
            name = unique(f"mx-{caller.name}")
            role, tenant = ROLE_NAMES[caller.role], tenants[caller.tenant]["id"]
            issued = ok(admin.post("/api/v1/tokens", json={"name": name, "role": role, "tenant": tenant}))
            headers = {"Authorization": f"Bearer {issued['secret']}"}
            w.clients[caller.name] = httpx.Client(base_url=server.url, headers=headers, timeout=60)
            w.token_names[caller.name] = name
            markers[caller.tenant].append(name)
        w.sessions[caller.name] = log_in(server, make_user(w, caller))
        markers[caller.tenant].append(w.sessions[caller.name].user)
    yield w
    for client in w.clients.values():
        if client is not admin:
            client.close()
    for session in w.sessions.values():
        session.client.close()
    admin.delete(f"/api/v1/tenants/{p['id']}", params={"force": True, "wait": 60})  # A, B, the child, their users
    admin.delete(f"/api/v1/volumes/{markers[None][0]}", params={"wait": 60})  # with its snapshot
    admin.delete(f"/api/v1/profiles/{markers[None][2]}")
    admin.close()


def _actor(admin: httpx.Client, action: str) -> str:
    """Who the audit log says did ``action`` last: the name the admin client's token goes by."""
    entries = admin.get("/api/v1/audit", params={"limit": 1000}).json()
    return str(next(e["actor"] for e in entries if e["action"] == action and e["outcome"] == "done"))


def test_every_route_is_in_the_matrix(world: World) -> None:
    document = world.admin.get("/openapi.json").json()
    operations = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"} and path != "/api/v1/health"
    }
    assert operations - set(ROUTES) == set(), "a route without its row in ROUTES"
    assert set(ROUTES) - operations == set(), "a row in ROUTES for a route that does not exist"


def refusal(caller: Caller, needs: int, seen: bool, system_only: bool) -> set[int]:
    """The statuses SPEC §5 allows a refusal of ``caller``; an empty set: allowed (any success)."""
    if system_only and caller.tenant is not None:
        return {403}
    role_ok = caller.role >= needs
    if seen and role_ok:
        return set()
    if seen:
        return {403}
    if role_ok:
        return {404}
    return {403, 404}  # refused twice over: either answer says no


def expected(caller: Caller, route: Route) -> set[int]:
    return refusal(caller, route.needs, visible(caller, route.owner, route.exposed), route.system_only)


CASES = [(key, caller) for key in ROUTES for caller in CALLERS]


@pytest.mark.parametrize(("key", "caller"), CASES, ids=[f"{m} {p} as {c.id}" for (m, p), c in CASES])
def test_scope(world: World, key: tuple[str, str], caller: Caller) -> None:
    method, template = key
    route = ROUTES[key]
    refused = expected(caller, route)
    objects = dict(world.objects, snapshot=world.objects[route.snapshot])
    if route.fresh and not refused:
        objects[target(template)] = fresh_object(world, target(template))
    path = concrete(template, objects)
    client = world.clients[caller.name]
    if method == "get" and template in LISTINGS:
        listed = client.request(method, path, params={"limit": 1000} if template.endswith("jobs") else None)
        assert listed.status_code == 200, listed.text
        kind, field_name = LISTINGS[template]
        ids = {item[field_name] for item in listed.json()}
        assert (world.objects[kind] in ids) == sees(caller, "a"), "a listing crossed a scope"
        return
    if not refused:
        answer = client.request(
            method, path, json=route.body(world), params={"wait": 30} if method != "get" else route.query
        )
        assert answer.status_code < 300, f"{caller.name} was refused: {answer.text}"
        if answer.status_code == 202:  # a job: it succeeded, and its caller can follow it
            job = answer.json()
            assert job["status"] == "succeeded", f"{caller.name}'s job: {answer.text}"
            assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 200, f"{caller.name} cannot see its job"
        return
    before, since = snapshot_of_state(world), newest_audit_id(world)
    answer = client.request(
        method, path, json=route.body(world), params={"wait": 30} if method != "get" else route.query
    )
    assert answer.status_code in refused, f"{caller.name}: expected {refused}, got {answer.status_code} {answer.text}"
    if answer.status_code == 404:
        assert answer.json()["error"]["code"] == "not_found"
    assert snapshot_of_state(world) == before, "a refused request changed something"
    assert refusals_since(world, world.token_names[caller.name], since) == 1, "a refusal not audited (once)"


def test_host_paths_are_shown_to_system_admins_only(world: World) -> None:
    """Where a volume's files or a VM's disks lie on the host is for admins of the system: a tenant's
    users would otherwise know where to aim (hardening issue, defect 1)."""
    for caller in CALLERS:
        if not sees(caller, "a"):
            continue
        client = world.clients[caller.name]
        vm = client.get(f"/api/v1/vms/{world.objects['vm']}").json()
        volume = client.get(f"/api/v1/volumes/{world.objects['volume']}").json()
        listed = {v["id"]: v for v in client.get("/api/v1/vms").json()}[world.objects["vm"]]
        shown = caller.tenant is None and caller.role == ADMIN
        assert vm["boot"] == "firmware" and vm["disks"], vm
        for seen in (vm, listed):
            assert all((disk["path"] is not None) == shown for disk in seen["disks"]), (caller.name, seen)
        assert (volume["path"] is not None) == shown, caller.name


# --- the web UI ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UiRoute:
    """Who may call one route of the application outside its OpenAPI document (the web UI's pages and forms).

    A page or form of a logged-in user needs a role (``needs``) and, when its path names an object of A
    (``owner`` "a", ``args``), a scope that holds A; without an object (``OWN``) it is the caller's own view
    of its scope (a dashboard, a list), allowed to every scope. ``PUBLIC`` routes need no login at all.
    """

    needs: int
    owner: str | None = OWN  # "a": the path names objects of A; None: the system's
    args: dict[str, str] = field(default_factory=dict)  # path parameter -> the key of World.objects it names
    form: Body = lambda _w: None  # the fields a POST sends (the form's token is added)
    fresh: bool = False  # when allowed, sent against a new object of A (its last parameter's) made for the case
    own_session: bool = False  # when allowed, sent from a browser of its own: it changes who is logged in
    token_from: str | None = None  # a public form's own token (``login_token``) is on this page; None: the CSRF's
    system_only: bool = False  # a page of the system's alone: a tenant's user is refused (403)
    exposed: bool = False  # A's child reads it too (A's own system snapshot)
    parents_only: bool = False  # a tenant snapshot of A: its parent's to take, refused (403) to A's own callers
    lists: str | None = None  # the kind of A's objects (a key of World.names) the page lists, by name
    query: Callable[[World], dict[str, str]] | None = None  # the query string sent (a page size, a filter)


def take_form(_w: World) -> dict[str, str]:
    """A take form's fields: a new name, kept forever (a take is cheap: A's objects are small, the VM stopped)."""
    return {"name": unique("mx"), "never": "on"}


PERIOD = {"frequency": "daily", "retention": "2d", "min_snapshots": "1"}  # a period form's fields, but its name


def assigned(w: World) -> dict[str, str]:
    """The unassign form's fields, A's volume assigned to A's profile again first: an unassign refused after
    one allowed must still find something to (not) remove."""
    ok(
        w.admin.post(
            f"/api/v1/profiles/{w.objects['profile']}/assignments",
            json={"subject_type": "volume", "subject": w.objects["volume"]},
        )
    )
    return {"subject_type": "volume", "subject": w.objects["volume"]}


UI_ROUTES: dict[tuple[str, str], UiRoute] = {
    # the API's documentation and the UI's static files: for anyone
    ("get", "/openapi.json"): UiRoute(PUBLIC),
    ("get", "/docs"): UiRoute(PUBLIC),
    ("get", "/static/{path}"): UiRoute(PUBLIC, args={"path": "static-file"}),
    # logging in and out
    ("get", "/login"): UiRoute(PUBLIC),
    ("post", "/login"): UiRoute(
        PUBLIC,
        form=lambda w: {"name": w.sessions["a-viewer"].user, "password": MATRIX_PASSWORD},
        own_session=True,
        token_from="/login",
    ),
    ("post", "/logout"): UiRoute(VIEWER, own_session=True),
    # pages
    ("get", "/"): UiRoute(VIEWER),
    ("get", "/volumes"): UiRoute(VIEWER, lists="volume", query=lambda _w: {"limit": "1000"}),
    ("get", "/volumes/{ref}"): UiRoute(VIEWER, owner="a", args={"ref": "volume"}),
    ("get", "/vms"): UiRoute(VIEWER, lists="vm", query=lambda _w: {"limit": "1000"}),
    ("get", "/vms/{ref}"): UiRoute(VIEWER, owner="a", args={"ref": "vm"}),
    ("get", "/tenants"): UiRoute(VIEWER),
    ("get", "/tenants/{ref}"): UiRoute(VIEWER, owner="a", args={"ref": "tenant"}),
    ("get", "/networks"): UiRoute(VIEWER, lists="network", query=lambda _w: {"limit": "1000"}),
    ("get", "/networks/{ref}"): UiRoute(VIEWER, owner="a", args={"ref": "network"}),
    ("get", "/snapshots"): UiRoute(VIEWER, lists="snapshot", query=lambda _w: {"limit": "1000"}),
    ("get", "/snapshots/{snap_id}"): UiRoute(VIEWER, owner="a", args={"snap_id": "snapshot"}),
    ("get", "/snapshots/{snap_id}/contents"): UiRoute(
        VIEWER, owner="a", args={"snap_id": "system-snapshot"}, exposed=True
    ),
    ("get", "/jobs"): UiRoute(VIEWER),
    ("get", "/jobs/{job_id}"): UiRoute(VIEWER, owner="a", args={"job_id": "job"}),
    ("get", "/jobs/{job_id}/progress"): UiRoute(VIEWER, owner="a", args={"job_id": "job"}),
    # taking snapshots (each allowed take is a job of its own, followed on its page)
    ("get", "/volumes/{ref}/snapshot"): UiRoute(VIEWER, owner="a", args={"ref": "volume"}),
    ("post", "/volumes/{ref}/snapshot"): UiRoute(OPERATOR, owner="a", args={"ref": "volume"}, form=take_form),
    ("get", "/vms/{ref}/snapshot"): UiRoute(VIEWER, owner="a", args={"ref": "vm"}),
    ("post", "/vms/{ref}/snapshot"): UiRoute(OPERATOR, owner="a", args={"ref": "vm"}, form=take_form),
    ("get", "/tenants/{ref}/snapshot"): UiRoute(VIEWER, owner="a", args={"ref": "tenant"}, parents_only=True),
    ("post", "/tenants/{ref}/snapshot"): UiRoute(
        OPERATOR, owner="a", args={"ref": "tenant"}, form=take_form, parents_only=True
    ),
    ("get", "/system/snapshot"): UiRoute(VIEWER, owner="a", query=lambda w: {"tenant": a_path(w)}),
    ("post", "/system/snapshot"): UiRoute(
        OPERATOR, owner="a", query=lambda w: {"tenant": a_path(w)}, form=lambda w: take_form(w) | {"private": "on"}
    ),
    # restoring (over A's volume: from a snapshot of a volume made for the case)
    ("get", "/snapshots/{snap_id}/restore"): UiRoute(  # what it holds, as its child sees it
        VIEWER, owner="a", args={"snap_id": "system-snapshot"}, exposed=True
    ),
    ("post", "/snapshots/{snap_id}/restore"): UiRoute(
        OPERATOR, owner="a", args={"snap_id": "snapshot"}, form=lambda _w: {"name": unique("mx")}
    ),
    ("get", "/snapshots/{snap_id}/restore/confirm"): UiRoute(  # checked as the restore: operator
        OPERATOR, owner="a", args={"snap_id": "snapshot"}
    ),
    ("post", "/snapshots/{snap_id}/restore/confirm"): UiRoute(
        OPERATOR, owner="a", args={"snap_id": "snapshot"}, form=lambda _w: {"mode": "data"}, fresh=True
    ),
    ("post", "/snapshots/{snap_id}/import"): UiRoute(
        OPERATOR,
        owner="a",
        args={"snap_id": "system-snapshot"},
        form=lambda w: {"member_type": "volume", "member": w.objects["volume"], "name": unique("mx")},
    ),
    # deleting, unlocking and measuring one snapshot (a fresh one to delete: each allowed delete takes it)
    ("get", "/snapshots/{snap_id}/delete"): UiRoute(OPERATOR, owner="a", args={"snap_id": "snapshot"}),
    ("post", "/snapshots/{snap_id}/delete"): UiRoute(OPERATOR, owner="a", args={"snap_id": "snapshot"}, fresh=True),
    ("get", "/snapshots/{snap_id}/unlock"): UiRoute(ADMIN, owner="a", args={"snap_id": "snapshot"}),
    ("post", "/snapshots/{snap_id}/unlock"): UiRoute(ADMIN, owner="a", args={"snap_id": "snapshot"}),
    ("post", "/snapshots/{snap_id}/space"): UiRoute(OPERATOR, owner="a", args={"snap_id": "snapshot"}),
    # the file browser
    ("get", "/snapshots/{snap_id}/files"): UiRoute(  # the volumes to browse, as its child sees them
        VIEWER, owner="a", args={"snap_id": "system-snapshot"}, exposed=True
    ),
    ("get", "/snapshots/{snap_id}/files/download"): UiRoute(
        VIEWER, owner="a", args={"snap_id": "snapshot"}, query=lambda _w: {"path": "f.txt"}
    ),
    ("get", "/snapshots/{snap_id}/files/restore"): UiRoute(  # it reads the live volume: operator, as the restore
        OPERATOR, owner="a", args={"snap_id": "snapshot"}, query=lambda _w: {"path": "f.txt"}
    ),
    ("post", "/snapshots/{snap_id}/files/restore"): UiRoute(
        OPERATOR, owner="a", args={"snap_id": "snapshot"}, form=lambda _w: {"path": "f.txt"}, fresh=True
    ),
    # profiles (A's own, with period "d", assigned to A's volume)
    ("get", "/profiles"): UiRoute(VIEWER, lists="profile"),
    ("get", "/profiles/new"): UiRoute(VIEWER),
    ("post", "/profiles/new"): UiRoute(
        OPERATOR, owner="a", form=lambda w: {"name": unique("mx"), "timezone": "UTC", "tenant": a_path(w)}
    ),
    ("get", "/profiles/{ref}"): UiRoute(VIEWER, owner="a", args={"ref": "profile"}),
    ("get", "/profiles/{ref}/edit"): UiRoute(VIEWER, owner="a", args={"ref": "profile"}),
    ("post", "/profiles/{ref}/edit"): UiRoute(
        OPERATOR,
        owner="a",
        args={"ref": "profile"},
        form=lambda w: {"name": w.names["profile"], "description": "changed by the matrix", "timezone": "UTC"},
    ),
    ("get", "/profiles/{ref}/delete"): UiRoute(VIEWER, owner="a", args={"ref": "profile"}),
    ("post", "/profiles/{ref}/delete"): UiRoute(OPERATOR, owner="a", args={"ref": "profile"}, fresh=True),
    ("post", "/profiles/{ref}/periods"): UiRoute(
        OPERATOR, owner="a", args={"ref": "profile"}, form=lambda _w: PERIOD | {"name": unique("mx")}
    ),
    ("get", "/profiles/{ref}/periods/{name}"): UiRoute(VIEWER, owner="a", args={"ref": "profile", "name": "period"}),
    ("post", "/profiles/{ref}/periods/{name}"): UiRoute(
        OPERATOR, owner="a", args={"ref": "profile", "name": "period"}, form=lambda _w: PERIOD | {"name": "d"}
    ),
    ("get", "/profiles/{ref}/periods/{name}/remove"): UiRoute(
        VIEWER, owner="a", args={"ref": "profile", "name": "period"}
    ),
    ("post", "/profiles/{ref}/periods/{name}/remove"): UiRoute(
        OPERATOR, owner="a", args={"ref": "profile", "name": "period"}, fresh=True
    ),
    ("post", "/profiles/{ref}/assign"): UiRoute(
        OPERATOR,
        owner="a",
        args={"ref": "profile"},
        form=lambda w: {"subject_type": "volume", "subject": w.objects["volume"]},
    ),
    ("post", "/profiles/{ref}/unassign"): UiRoute(OPERATOR, owner="a", args={"ref": "profile"}, form=assigned),
    # users and API tokens (of A)
    ("get", "/users"): UiRoute(VIEWER, lists="user"),
    ("get", "/users/new"): UiRoute(VIEWER),
    ("post", "/users/new"): UiRoute(
        ADMIN,
        owner="a",
        form=lambda w: {
            "name": unique("mx"),
            "password": MATRIX_PASSWORD,
            "password_again": MATRIX_PASSWORD,
            "role": "viewer",
            "tenant": a_path(w),
        },
    ),
    ("get", "/users/{ref}"): UiRoute(VIEWER, owner="a", args={"ref": "user"}),
    ("post", "/users/{ref}/role"): UiRoute(ADMIN, owner="a", args={"ref": "user"}, form=lambda _w: {"role": "viewer"}),
    ("post", "/users/{ref}/password"): UiRoute(
        ADMIN,
        owner="a",
        args={"ref": "user"},
        form=lambda _w: {"password": MATRIX_PASSWORD, "password_again": MATRIX_PASSWORD},
    ),
    ("get", "/users/{ref}/delete"): UiRoute(VIEWER, owner="a", args={"ref": "user"}),
    ("post", "/users/{ref}/delete"): UiRoute(ADMIN, owner="a", args={"ref": "user"}, fresh=True),
    ("get", "/tokens"): UiRoute(VIEWER, lists="token"),
    ("get", "/tokens/new"): UiRoute(VIEWER),
    ("post", "/tokens/new"): UiRoute(
        OPERATOR, owner="a", form=lambda w: {"name": unique("mx"), "role": "viewer", "tenant": a_path(w)}
    ),
    ("get", "/tokens/{ref}/revoke"): UiRoute(VIEWER, owner="a", args={"ref": "token"}),
    ("post", "/tokens/{ref}/revoke"): UiRoute(OPERATOR, owner="a", args={"ref": "token"}, fresh=True),
    # the audit log
    ("get", "/audit"): UiRoute(VIEWER),  # each scope its own subtree's entries (actors above it: "parent")
}
UI_CALLERS: list[Caller | None] = [*CALLERS, None]  # None: a browser that is not logged in


def undocumented_routes(services: Services) -> set[tuple[str, str]]:
    """The application's routes outside its OpenAPI document, (method, path template), read off the same
    ``create_app`` that ``snapkeep serve`` runs (built on ``services``, only to list its routes), walked as
    FastAPI walks them to write that document."""
    app = create_app(services)
    documented = {(method, path) for path, item in app.openapi()["paths"].items() for method in item}
    routes: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, Mount):  # static files: every path beneath it
            routes.add(("get", f"{context.path}/{{path}}"))
        else:
            routes |= {(method.lower(), str(context.path)) for method in context.methods or () if method != "HEAD"}
    return routes - documented


def test_every_ui_route_is_in_the_matrix(services: Services) -> None:
    routes = undocumented_routes(services)  # on the test's own pool
    assert routes - set(UI_ROUTES) == set(), "a route without its row in UI_ROUTES"
    assert set(UI_ROUTES) - routes == set(), "a row in UI_ROUTES for a route that does not exist"


def ui_expected(caller: Caller | None, route: UiRoute) -> set[int]:
    """The statuses a refusal may have (303: sent to the login page); an empty set: allowed."""
    if route.needs == PUBLIC:
        return set()
    if caller is None:
        return {303}
    if route.parents_only and caller.tenant == route.owner:
        return {403}
    return refusal(caller, route.needs, visible(caller, route.owner, route.exposed), route.system_only)


UI_CASES = [(key, caller) for key in UI_ROUTES for caller in UI_CALLERS]


def assert_no_leak(w: World, caller: Caller | None, text: str) -> None:
    """A page names nothing of a scope the caller does not see."""
    for owner, names in w.markers.items():
        if not sees(caller, owner):
            shown = [name for name in names if name in text]
            assert not shown, f"{caller.name if caller else 'anonymous'} was shown {owner}'s {shown}"


def form_token(route: UiRoute, client: httpx.Client, session: Session | None) -> dict[str, str]:
    """The token a form of ``route`` carries, as the page that shows the form gives it to ``client``."""
    if route.token_from is not None:
        return {"login_token": login_token(client)}
    return {"csrf": session.csrf} if session is not None else {}


def ui_refused(
    w: World, route: UiRoute, caller: Caller | None, client: httpx.Client, method: str, path: str,
    form: dict[str, str], statuses: set[int],
) -> None:  # fmt: skip
    """Send one request that must be refused: with one of ``statuses``, changing nothing, the caller still
    logged in, and audited once when a user sent it (a browser sent to the login page is not a refusal, nor
    a login form without its own token: no one is identified)."""
    session = w.sessions[caller.name] if caller is not None else None
    before, since = snapshot_of_state(w), newest_audit_id(w)
    answer = client.request(method, path, data=form or None, params=route.query(w) if route.query else None)
    assert answer.status_code in statuses, f"expected {statuses}, got {answer.status_code}: {answer.text[:2000]}"
    if answer.status_code == 303:
        assert answer.headers["location"].startswith("/login"), answer.headers["location"]
    assert_no_leak(w, caller, answer.text)
    assert snapshot_of_state(w) == before, "a refused request changed something"
    if session is not None:
        assert session.client.get("/").status_code == 200, "a refused request ended the session"
        if route.token_from is None and answer.status_code != 303:
            assert refusals_since(w, session.user, since) == 1, "a refusal not audited (once)"


@pytest.mark.parametrize(
    ("key", "caller"), UI_CASES, ids=[f"{m} {p} as {c.id if c else 'anonymous'}" for (m, p), c in UI_CASES]
)
def test_ui_scope(world: World, key: tuple[str, str], caller: Caller | None) -> None:
    method, template = key
    route = UI_ROUTES[key]
    refused = ui_expected(caller, route)
    objects = dict(world.objects)
    if route.fresh and not refused:
        kind = route.args[template.split("{")[-1].split("}")[0]]
        objects[kind] = fresh_object(world, kind)
    path = template.format(**{name: objects[kind] for name, kind in route.args.items()})
    session = world.sessions[caller.name] if caller is not None else None
    browser = httpx.Client(base_url=world.server.url, timeout=60)  # a browser of its own, not logged in
    opened = [browser]
    client = session.client if session is not None else browser
    fields = route.form(world) or {}
    try:
        if method != "get":  # a change without its form's token: refused, whoever sends it
            login_first = caller is None and route.needs != PUBLIC
            statuses = {303} if login_first else {403}
            ui_refused(world, route, caller, client, method, path, fields, statuses)
        if refused:
            if caller is not None or method == "get":
                token = form_token(route, client, session) if method != "get" else {}
                ui_refused(world, route, caller, client, method, path, fields | token, refused)
            return
        if route.own_session and (session is None or route.token_from is not None):
            client, session = browser, None
        elif route.own_session:
            session = log_in(world.server, session.user)  # a second session of the same user
            client = session.client
            opened.append(client)
        if method != "get":
            fields |= form_token(route, client, session)
        answer = client.request(method, path, data=fields or None, params=route.query(world) if route.query else None)
        assert answer.status_code == 200 if method == "get" else answer.status_code < 400, answer.text[:2000]
        location = answer.headers.get("location", "")
        if answer.status_code == 303 and location.startswith("/jobs/"):  # a job: it succeeded, its caller follows it
            job = ok(world.admin.get(f"/api/v1{location}", params={"wait": 30}))
            assert job["status"] == "succeeded", f"{caller.name if caller else 'anonymous'}'s job: {job}"
            assert client.get(location).status_code == 200, "the caller cannot see its job"
        assert_no_leak(world, caller, answer.text)
        if route.lists is not None:
            listed = world.names[route.lists] in answer.text
            assert listed == (caller is not None and visible(caller, "a", route.exposed)), f"A's {route.lists}"
    finally:
        for opened_client in opened:
            opened_client.close()
