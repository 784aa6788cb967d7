"""The REST API of a real running ``snapkeep serve``: every volume and snapshot operation over HTTP."""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Server


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def done(response: httpx.Response) -> dict[str, Any]:
    """A job answer (202) that the caller asked to wait for; its result."""
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    assert job["status"] == "succeeded", job
    return job["result"] or {}


@pytest.fixture
def api(server: Server) -> httpx.Client:
    return server.client()


def test_health_needs_no_token_and_everything_else_does(server: Server) -> None:
    assert httpx.get(f"{server.url}/api/v1/health").json()["status"] == "ok"
    refused = httpx.get(f"{server.url}/api/v1/volumes")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    bad = httpx.get(f"{server.url}/api/v1/volumes", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert "/api/v1/snapshots" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert oct(os.stat(os.path.join(server.data_dir, "admin.token")).st_mode & 0o777) == "0o600"


def test_volume_lifecycle_and_snapshot_restore_over_http(api: httpx.Client) -> None:
    name = unique("vol")
    created = api.post("/api/v1/volumes", json={"name": name, "size_limit": "2G", "description": "d"})
    assert created.status_code == 201, created.text
    vol = created.json()
    assert vol["size_limit"] == 2 << 30
    with open(os.path.join(vol["path"], "report.txt"), "w") as f:
        f.write("quarterly numbers\n")

    result = done(
        api.post(
            "/api/v1/snapshots",
            params={"wait": 30},
            json={"volume": name, "name": "before", "expires": "7d", "quiesce": True},
        )
    )
    snap = result["snapshot"]
    assert snap["quiesced"] is True and snap["quiesce_window_ms"] is not None and snap["expires_at"]

    with open(os.path.join(vol["path"], "report.txt"), "w") as f:
        f.write("overwritten by mistake\n")
    listing = api.get("/api/v1/snapshots/{}/files".format(snap["id"])).json()
    assert [e["name"] for e in listing] == ["report.txt"]
    done(api.post(f"/api/v1/snapshots/{snap['id']}/extract", params={"wait": 30}, json={"path": "report.txt"}))
    with open(os.path.join(vol["path"], "report.txt")) as f:
        assert f.read() == "quarterly numbers\n"

    with open(os.path.join(vol["path"], "report.txt"), "w") as f:
        f.write("overwritten again\n")
    restored = done(api.post(f"/api/v1/snapshots/{snap['id']}/restore", params={"wait": 30}, json={}))
    assert restored["pre_restore_snapshot_id"]
    with open(os.path.join(vol["path"], "report.txt")) as f:
        assert f.read() == "quarterly numbers\n"

    as_new = done(api.post(f"/api/v1/snapshots/{snap['id']}/restore", params={"wait": 30}, json={"as_new": True}))
    assert as_new["volume"] == f"{name}_restored"

    updated = api.patch(f"/api/v1/volumes/{name}", json={"description": "changed", "settings": {"nfs": "on"}})
    assert updated.json()["settings"] == {"nfs": "on"}
    space = done(api.post(f"/api/v1/snapshots/{snap['id']}/space", params={"wait": 30}))
    assert space["shared_bytes"] + space["exclusive_bytes"] > 0

    done(api.delete(f"/api/v1/volumes/{name}", params={"wait": 30}))
    assert api.get(f"/api/v1/volumes/{name}").status_code == 404
    assert api.get(f"/api/v1/snapshots/{snap['id']}").status_code == 404
    jobs = api.get("/api/v1/jobs").json()
    assert {"snapshot.take", "snapshot.restore", "volume.delete"} <= {j["kind"] for j in jobs}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "a/b"}, "invalid_name"),
        ({"name": ".."}, "invalid_name"),
        ({"name": "x" * 300}, "invalid_name"),
        ({"name": "ok", "expires": "2001-01-01"}, "invalid_expiry"),
        ({"name": "ok", "expires": "soon"}, "invalid_expiry"),
        ({"name": "ok", "surprise": 1}, "invalid_input"),
    ],
)
def test_bad_snapshot_requests_are_refused_and_change_nothing(
    api: httpx.Client, body: dict[str, Any], code: str
) -> None:
    name = unique("bad")
    api.post("/api/v1/volumes", json={"name": name, "size_limit": "1G"})
    response = api.post("/api/v1/snapshots", json={"volume": name, **body})
    assert response.status_code == 422 and response.json()["error"]["code"] == code, response.text
    assert api.get("/api/v1/snapshots", params={"volume": name}).json() == []


def test_clash_immutable_and_path_escape_are_refused(api: httpx.Client) -> None:
    name = unique("lock")
    vol = api.post("/api/v1/volumes", json={"name": name, "size_limit": "1G"}).json()
    os.symlink("/etc", os.path.join(vol["path"], "etc"))
    snap = done(
        api.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": name, "name": "keep", "immutable": True})
    )["snapshot"]
    clash = api.post("/api/v1/snapshots", json={"volume": name, "name": "keep"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "name_clash"
    clash_vol = api.post("/api/v1/volumes", json={"name": name, "size_limit": "1G"})
    assert clash_vol.status_code == 409

    refused = api.delete(f"/api/v1/snapshots/{snap['id']}")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "snapshot_locked"
    assert api.get(f"/api/v1/snapshots/{snap['id']}").json()["status"] == "ready"
    audit = api.get("/api/v1/audit").json()
    assert any(e["outcome"] == "refused" and e["action"] == "snapshot.delete" and name in e["target"] for e in audit)

    for path in ("../../etc/passwd", "/etc/passwd", "etc/passwd"):
        escape = api.post(f"/api/v1/snapshots/{snap['id']}/extract", json={"path": path})
        assert escape.status_code == 422 and escape.json()["error"]["code"] == "invalid_path", path
        browse = api.get(f"/api/v1/snapshots/{snap['id']}/files", params={"path": path})
        assert browse.status_code == 422, path
    unlocked = api.post(f"/api/v1/snapshots/{snap['id']}/unlock").json()
    assert unlocked["unlocked_at"] and unlocked["deletable_at"]


def test_list_show_delete_and_sweep_over_http(api: httpx.Client) -> None:
    name = unique("misc")
    api.post("/api/v1/volumes", json={"name": name, "size_limit": 1 << 30})
    assert name in [v["name"] for v in api.get("/api/v1/volumes").json()]
    taken = done(api.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": name, "name": "a"}))
    snap = taken["snapshot"]
    by_name = api.get("/api/v1/snapshots", params={"volume": name, "name": "a"}).json()
    assert [s["id"] for s in by_name] == [snap["id"]]
    assert api.get(f"/api/v1/snapshots/{snap['id']}").json()["name"] == "a"

    job = api.delete(f"/api/v1/snapshots/{snap['id']}").json()
    finished = api.get(f"/api/v1/jobs/{job['id']}", params={"wait": 30}).json()
    assert finished["status"] == "succeeded"
    assert api.get(f"/api/v1/snapshots/{snap['id']}").status_code == 404
    missing = api.get("/api/v1/snapshots", params={"volume": name, "name": "a"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert done(api.post("/api/v1/snapshots/sweep", params={"wait": 30})) == {"deleted": []}
