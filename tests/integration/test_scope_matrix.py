"""Scoped access on every route (SPEC §5), generated from the running service's own route table.

Five callers — an admin of the system, an operator and a viewer of tenant A, an operator of A's sibling B
and an operator of A's child — against objects owned by A. A scope sees its own subtree only: B and the
child are answered 404 for anything of A, as if it did not exist; A's viewer may read and is refused
(403) every change; an admin-only operation is refused to everyone else. Each refused request is checked
to have changed nothing (catalog through the API, and the pool on disk) and to be in the audit log.
Requests that are allowed are sent too, and must succeed (a job they start included); those that destroy or
power their target (``fresh`` in the table) are sent against a new object of A made for the case.

``ROUTES`` must name every operation of the OpenAPI document: a new route fails this test until it says who
may call it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import Server

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # scope does not depend on the driver

VIEWER, OPERATOR, ADMIN = 0, 1, 2
ROLE_NAMES = {VIEWER: "viewer", OPERATOR: "operator", ADMIN: "admin"}


@dataclass(frozen=True)
class Caller:
    name: str
    role: int
    tenant: str | None  # a key of World.tenants; None: the system


CALLERS = [
    Caller("system-admin", ADMIN, None),
    Caller("a-operator", OPERATOR, "a"),
    Caller("a-viewer", VIEWER, "a"),
    Caller("b-operator", OPERATOR, "b"),
    Caller("child-operator", OPERATOR, "child"),
]


@dataclass
class World:
    server: Server
    admin: httpx.Client
    tenants: dict[str, dict[str, Any]]  # a, b, child
    objects: dict[str, str]  # what of A the paths name: volume, vm, snapshot, job, network, token, tenant
    clients: dict[str, httpx.Client]
    token_names: dict[str, str]
    cidrs: int = 0  # networks made for cases so far (each needs a range of its own)

    def sees(self, caller: Caller, owner: str | None) -> bool:
        """Whether ``caller``'s scope holds something owned by ``owner`` (a tenant key; None: the system)."""
        if caller.tenant is None:
            return True
        return owner is not None and (owner == caller.tenant or (caller.tenant, owner) == ("a", "child"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


Body = Callable[[World], dict[str, Any] | None]


@dataclass(frozen=True)
class Route:
    """Who may call one operation on an object of A (``owner`` "a") or of the system (``owner`` None)."""

    needs: int
    owner: str | None = "a"
    body: Body = lambda _w: None
    fresh: bool = False  # when allowed, sent against a new object of A made for the case (it destroys it)
    system_only: bool = False  # not an object of anyone's: a tenant's caller is refused (403), not misled
    snapshot: str = "snapshot"  # which snapshot of A the path names: a volume's, or A's own system snapshot
    exposed: bool = False  # A's child reads it too: A's own system snapshots are exposed to it (SPEC §5)
    query: dict[str, str] | None = None  # the query string a GET needs


MATRIX_PASSWORD = "matrix-password-1"


def next_cidr(w: World) -> str:
    """A range no network of the matrix has had yet."""
    w.cidrs += 1
    return f"10.214.{w.cidrs}.0/24"


def a_path(w: World) -> str:
    return str(w.tenants["a"]["path"])


ROUTES: dict[tuple[str, str], Route] = {
    # service
    ("get", "/api/v1/audit"): Route(VIEWER, owner=None, system_only=True),
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
    ("post", "/api/v1/snapshots/sweep"): Route(ADMIN, owner=None, system_only=True),
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
    ("patch", "/api/v1/settings"): Route(ADMIN, owner=None, body=lambda _w: {"matrix": 1}, system_only=True),
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


def snapshot_of_state(w: World) -> dict[str, Any]:
    """Everything a refused request must leave as it was: the catalog as the admin sees it, and the pool."""
    api = w.admin
    state: dict[str, Any] = {
        path: api.get(path).json()
        for path in ("/api/v1/volumes", "/api/v1/vms", "/api/v1/snapshots", "/api/v1/tenants", "/api/v1/networks")
    }
    state["tokens"] = sorted(t["id"] for t in api.get("/api/v1/tokens").json())
    state["users"] = api.get("/api/v1/users").json()
    state["settings"] = api.get("/api/v1/settings").json()
    state["a-settings"] = api.get(f"/api/v1/tenants/{w.objects['tenant']}/settings").json()
    state["jobs"] = sorted(j["id"] for j in api.get("/api/v1/jobs", params={"limit": 1000}).json())
    state["tags"] = api.get(f"/api/v1/tags/volume/{w.objects['volume']}").json()
    state["profiles"] = api.get("/api/v1/profiles").json()
    state["scheduler"] = api.get("/api/v1/scheduler").json()
    pool = w.server.pool_dir
    state["pool"] = {d: sorted(os.listdir(os.path.join(pool, d))) for d in ("datasets", "snapshots")}
    return state


def refusals(w: World, caller: Caller) -> int:
    """How many refusals of ``caller`` the audit log holds (its newest 1,000 entries)."""
    entries = w.admin.get("/api/v1/audit", params={"limit": 1000}).json()
    return sum(1 for e in entries if e["actor"] == w.token_names[caller.name] and e["outcome"] == "refused")


@pytest.fixture(scope="module")
def world(server: Server, libvirtd: None) -> Iterator[World]:
    admin = server.client()

    a = ok(admin.post("/api/v1/tenants", json={"name": unique("mx-a")}))
    b = ok(admin.post("/api/v1/tenants", json={"name": unique("mx-b")}))
    child = ok(admin.post("/api/v1/tenants", json={"name": "child", "parent": a["id"]}))
    volume = ok(admin.post("/api/v1/volumes", json={"name": "data", "size_limit": "32M", "tenant": a["id"]}))
    with open(os.path.join(volume["path"], "f.txt"), "w") as f:
        f.write("tenant a's file\n")
    taken = ok(admin.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": volume["id"], "name": "s1"}))
    vm = ok(admin.post("/api/v1/vms", json={"name": "vm", "disks": ["8M"], "nics": 0, "tenant": a["id"]}))
    network = ok(admin.post("/api/v1/networks", json={"name": "net", "cidr": "10.213.9.0/24", "tenant": a["id"]}))
    daily = {"name": "d", "frequency": "daily", "retention": "2d"}
    profile = ok(admin.post("/api/v1/profiles", json={"name": "p", "tenant": a["id"], "periods": [daily]}))
    assigned = {"subject_type": "volume", "subject": volume["id"]}
    ok(admin.post(f"/api/v1/profiles/{profile['id']}/assignments", json=assigned))
    # A's own system snapshot, not private: its child sees it (exposed), and may restore only its own from it
    own = {"system": True, "tenant": a["id"], "name": "sys", "private": False}
    system_snapshot = ok(admin.post("/api/v1/snapshots", params={"wait": 30}, json=own))["result"]["snapshot"]
    a_token = ok(admin.post("/api/v1/tokens", json={"name": unique("mx-a-token"), "role": "viewer", "tenant": a["id"]}))
    a_user = {"name": unique("mx-a-user"), "password": MATRIX_PASSWORD, "role": "viewer", "tenant": a["id"]}
    a_user = ok(admin.post("/api/v1/users", json=a_user))
    tenants = {"a": a, "b": b, "child": child}
    clients, token_names = {}, {}
    for caller in CALLERS:
        if caller.tenant is None:
            clients[caller.name], token_names[caller.name] = admin, _actor(admin, "tenant.create")
            continue
        name = unique(f"mx-{caller.name}")
        issued = ok(
            admin.post(
                "/api/v1/tokens",
                json={"name": name, "role": ROLE_NAMES[caller.role], "tenant": tenants[caller.tenant]["id"]},
            )
        )
        headers = {"Authorization": f"Bearer {issued['secret']}"}
        clients[caller.name] = httpx.Client(base_url=server.url, headers=headers, timeout=60)
        token_names[caller.name] = name
    objects = {
        "volume": volume["id"],
        "vm": vm["id"],
        "snapshot": taken["result"]["snapshot"]["id"],
        "system-snapshot": system_snapshot["id"],
        "job": taken["id"],
        "network": network["id"],
        "token": a_token["id"] if "id" in a_token else a_token["token"]["id"],
        "user": a_user["id"],
        "tenant": a["id"],
        "profile": profile["id"],
        "period": "d",
    }
    yield World(server, admin, tenants, objects, clients, token_names)
    for client in clients.values():
        if client is not admin:
            client.close()
    admin.delete(f"/api/v1/tenants/{a['id']}", params={"force": True, "wait": 60})
    admin.delete(f"/api/v1/tenants/{b['id']}", params={"force": True, "wait": 60})
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


def expected(world: World, caller: Caller, route: Route) -> set[int]:
    """The statuses SPEC §5 allows: None for "allowed" is any 2xx (an empty set here)."""
    if route.system_only and caller.tenant is not None:
        return {403}
    visible = world.sees(caller, route.owner) or (route.exposed and caller.tenant == "child")
    role_ok = caller.role >= route.needs
    if visible and role_ok:
        return set()
    if visible:
        return {403}
    if role_ok:
        return {404}
    return {403, 404}  # refused twice over: either answer says no


CASES = [(key, caller) for key in ROUTES for caller in CALLERS]


@pytest.mark.parametrize(("key", "caller"), CASES, ids=[f"{m} {p} as {c.name}" for (m, p), c in CASES])
def test_scope(world: World, key: tuple[str, str], caller: Caller) -> None:
    method, template = key
    route = ROUTES[key]
    refusal = expected(world, caller, route)
    objects = dict(world.objects, snapshot=world.objects[route.snapshot])
    if route.fresh and not refusal:
        objects[target(template)] = fresh_object(world, target(template))
    path = concrete(template, objects)
    client = world.clients[caller.name]
    if method == "get" and template in LISTINGS:
        listed = client.request(method, path, params={"limit": 1000} if template.endswith("jobs") else None)
        assert listed.status_code == 200, listed.text
        kind, field = LISTINGS[template]
        ids = {item[field] for item in listed.json()}
        assert (world.objects[kind] in ids) == world.sees(caller, "a"), "a listing crossed a scope"
        return
    before = snapshot_of_state(world) if refusal else None
    refused_before = refusals(world, caller) if refusal else 0
    answer = client.request(
        method, path, json=route.body(world), params={"wait": 30} if method != "get" else route.query
    )
    if not refusal:
        assert answer.status_code < 300, f"{caller.name} was refused: {answer.text}"
        if answer.status_code == 202:  # a job: it succeeded, and its caller can follow it
            job = answer.json()
            assert job["status"] == "succeeded", f"{caller.name}'s job: {answer.text}"
            assert client.get(f"/api/v1/jobs/{job['id']}").status_code == 200, f"{caller.name} cannot see its job"
        return
    assert answer.status_code in refusal, f"{caller.name}: expected {refusal}, got {answer.status_code} {answer.text}"
    if answer.status_code == 404:
        assert answer.json()["error"]["code"] == "not_found"
    assert snapshot_of_state(world) == before, "a refused request changed something"
    assert refusals(world, caller) == refused_before + 1, "a refusal that is not in the audit log (once)"


def test_host_paths_are_shown_to_system_admins_only(world: World) -> None:
    """Where a volume's files or a VM's disks lie on the host is for admins of the system: a tenant's
    users would otherwise know where to aim (hardening issue, defect 1)."""
    for caller in CALLERS:
        if not world.sees(caller, "a"):
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
