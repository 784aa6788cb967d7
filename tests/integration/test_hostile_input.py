"""Hostile and odd input to a real ``snapkeep serve`` (issue 6, defects 3, 7 and 9): every one is refused with
a clear 4xx in the project's error body, changes nothing, and leaves the service working for everyone."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from typing import Any

import httpx
import pytest

from snapkeep.catalog.db import Database, make_engine
from snapkeep.model.principal import Role
from snapkeep.model.timespec import utcnow
from snapkeep.services.tokens import Tokens
from tests.conftest import Server


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def api(server: Server) -> httpx.Client:
    return server.client()


@pytest.fixture
def volume(api: httpx.Client) -> dict[str, Any]:
    created = api.post("/api/v1/volumes", json={"name": unique("hostile"), "size_limit": "1G"})
    assert created.status_code == 201, created.text
    return dict(created.json())


def refused(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is a refusal with ``status`` in the project's error body (and optionally ``code``)."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "retryable", "details"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def raw(api: httpx.Client, method: str, path: str, text: str | bytes) -> httpx.Response:
    """Send ``text`` as a JSON body exactly as given (httpx's ``json=`` could not send these)."""
    content = text.encode() if isinstance(text, str) else text
    return api.request(method, path, content=content, headers={"Content-Type": "application/json"})


def take(api: httpx.Client, volume: str, name: str) -> httpx.Response:
    return api.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": volume, "name": name})


# --- defect 3: one PATCH must not break a volume for everyone --------------------------------------------
def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"settings": nested(260)}),
        json.dumps({"settings": {"big": "x" * 70_000}}),
        json.dumps({"settings": {"n": 2**70}}),
        '{"settings": {"\\ud800": 1}}',
        '{"settings": {"k": "\\udfff"}}',
        '{"settings": {"x": NaN}}',
        '{"settings": {"x": [Infinity]}}',
        '{"settings": {"x": -Infinity}}',
    ],
    ids=["260-deep", "70k", "int-beyond-64-bits", "surrogate-key", "surrogate-value", "nan", "infinity", "-infinity"],
)
def test_settings_that_cannot_be_kept_are_refused_before_commit(
    api: httpx.Client, volume: dict[str, Any], body: str
) -> None:
    name = volume["name"]
    response = raw(api, "PATCH", f"/api/v1/volumes/{name}", body)
    assert response.status_code in (400, 422)
    refused(response, response.status_code)
    assert api.get(f"/api/v1/volumes/{name}").json()["settings"] == {}
    assert api.get("/api/v1/volumes").status_code == 200
    assert take(api, name, "after").json()["status"] == "succeeded"


def test_settings_are_a_merge_patch_and_null_removes_a_key(api: httpx.Client, volume: dict[str, Any]) -> None:
    path = f"/api/v1/volumes/{volume['name']}"
    api.patch(path, json={"settings": {"nfs": {"on": True, "ro": False}, "smb": "on", "deep": nested(15)}})
    patched = api.patch(path, json={"settings": {"nfs": {"ro": None}, "smb": None, "quota": 1.5}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"] == {"nfs": {"on": True}, "deep": nested(15), "quota": 1.5}
    assert take(api, volume["name"], "with-settings").json()["status"] == "succeeded"


# --- defect 7: bad input gives a clear 4xx, never 500 ---------------------------------------------------
@pytest.mark.parametrize(
    "size",
    [
        10**30,
        2**63,
        "99999999999999999999P",
        "9" * 400,
        True,
        False,
        0,
        -5,
        "\uff11G",
        "\u0665G",
        "7\u2009G",
        1.5,
        "1e3",
    ],
)
def test_sizes_out_of_range_or_not_ascii_are_refused(api: httpx.Client, size: object) -> None:
    name = unique("size")
    refused(api.post("/api/v1/volumes", json={"name": name, "size_limit": size}), 422)
    assert api.get(f"/api/v1/volumes/{name}").status_code == 404


def test_size_update_out_of_range_is_refused(api: httpx.Client, volume: dict[str, Any]) -> None:
    for size in (2**63, "99999999999999999999P", True):
        refused(api.patch(f"/api/v1/volumes/{volume['name']}", json={"size_limit": size}), 422)
    assert api.get(f"/api/v1/volumes/{volume['name']}").json()["size_limit"] == 1 << 30
    assert api.patch(f"/api/v1/volumes/{volume['name']}", json={"size_limit": "2 GiB"}).json()["size_limit"] == 2 << 30


@pytest.mark.parametrize(
    "expires",
    [
        "9999999d",
        "99999999999999y",
        "9999-12-31T23:59:59-14:00",
        "7" * 10_000 + "d",
        "\uff17d",
        "\u0667d",
        "2030-01-\u06601",
    ],
)
def test_expiries_too_far_or_not_ascii_are_refused(api: httpx.Client, volume: dict[str, Any], expires: str) -> None:
    response = api.post("/api/v1/snapshots", json={"volume": volume["name"], "name": "x", "expires": expires})
    refused(response, 422)
    assert api.get("/api/v1/snapshots", params={"volume": volume["name"]}).json() == []


@pytest.mark.parametrize("path", ["/api/v1/audit", "/api/v1/jobs"])
def test_huge_listing_limits_are_refused(api: httpx.Client, path: str) -> None:
    for limit in (10**20, 0, -1):
        refused(api.get(path, params={"limit": limit}), 422, "invalid_input")
    assert api.get(path, params={"limit": 5}).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/volumes", '{"name": "\\ud800", "size_limit": "1G"}'),
        ("POST", "/api/v1/volumes", '{"name": "ok-name", "size_limit": "1G", "description": "\\udc80"}'),
        ("POST", "/api/v1/volumes", '{"name": "ok-name", "size_limit": "\\ud800"}'),
        ("POST", "/api/v1/snapshots", '{"volume": "\\ud800", "name": "x"}'),
        ("POST", "/api/v1/snapshots", '{"volume": "v", "name": "x", "expires": "\\ud83d"}'),
        ("POST", "/api/v1/snapshots/x/extract", '{"path": "\\ud800"}'),
        ("POST", "/api/v1/snapshots/x/restore", '{"as_new": true, "name": "\\ude00"}'),
        ("POST", "/api/v1/vms", '{"name": "\\ud800"}'),
        ("PATCH", "/api/v1/volumes/x", '{"description": "\\ud800"}'),
    ],
)
def test_a_lone_surrogate_in_any_string_field_is_refused(api: httpx.Client, method: str, path: str, body: str) -> None:
    error = refused(raw(api, method, path, body), 400, "malformed_body")
    assert "surrogate" in error["message"]


def test_malformed_bodies_answer_the_project_error_body(api: httpx.Client, volume: dict[str, Any]) -> None:
    path = f"/api/v1/volumes/{volume['name']}"
    for text in ('{"description": ', "[1, 2", "not json", b'{"description": "\xff\xfe"}', '{"a": 1e999999}'):
        response = raw(api, "PATCH", path, text)
        assert "detail" not in response.json()
        refused(response, 400, "malformed_body")
    huge_int = '{"size_limit": ' + "1" * 5000 + "}"
    refused(raw(api, "PATCH", path, huge_int), 400, "malformed_body")
    assert api.get(path).json()["description"] == ""


def test_bodies_over_a_mebibyte_are_refused_and_not_stored(api: httpx.Client, volume: dict[str, Any]) -> None:
    path = f"/api/v1/volumes/{volume['name']}"
    refused(api.patch(path, json={"description": "d" * 10_000_000}), 413, "body_too_large")

    def chunks() -> Any:  # no Content-Length: the limit holds for a streamed body too
        yield b'{"description": "'
        for _ in range(20):
            yield b"d" * 100_000
        yield b'"}'

    streamed = api.request("PATCH", path, content=chunks(), headers={"Content-Type": "application/json"})
    refused(streamed, 413, "body_too_large")
    refused(api.patch(path, json={"description": "d" * 5000}), 422)
    refused(api.post("/api/v1/volumes", json={"name": unique("v"), "size_limit": "1G", "description": "d" * 5000}), 422)
    assert api.get(path).json()["description"] == ""
    assert api.patch(path, json={"description": "d" * 4096}).status_code == 200


def test_unknown_routes_and_methods_answer_the_error_body_with_a_true_allow(api: httpx.Client) -> None:
    refused(api.get("/api/v1/nothing-here"), 404, "not_found")
    wrong = api.put("/api/v1/volumes/some-volume", json={})
    refused(wrong, 405, "method_not_allowed")
    assert sorted(wrong.headers["allow"].split(", ")) == ["DELETE", "GET", "PATCH"]
    assert sorted(api.put("/api/v1/snapshots").headers["allow"].split(", ")) == ["GET", "POST"]
    assert sorted(api.delete("/api/v1/snapshots/x/restore").headers["allow"].split(", ")) == ["POST"]


# --- defect 9: odd inputs accepted ----------------------------------------------------------------------
def test_the_bearer_scheme_is_case_insensitive_and_required(server: Server) -> None:
    url = f"{server.url}/api/v1/volumes"
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        assert httpx.get(url, headers={"Authorization": f"{scheme} {server.token}"}).status_code == 200, scheme
    for header in (server.token, f"Token {server.token}", "Bearer", f"Basic {server.token}", f"Bearer{server.token}"):
        response = httpx.get(url, headers={"Authorization": header})
        refused(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_refused_tokens_and_roles_are_audited(server: Server, api: httpx.Client, volume: dict[str, Any]) -> None:
    engine = make_engine(f"sqlite:///{os.path.join(server.data_dir, 'catalog.db')}")
    try:
        viewer = Tokens(Database(engine), utcnow).create(unique("viewer"), Role.VIEWER)
    finally:
        engine.dispose()
    probe = unique("probe")
    refused(httpx.get(f"{server.url}/api/v1/volumes/{probe}", headers={"Authorization": "Bearer nope"}), 401)
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    refused(httpx.delete(f"{server.url}/api/v1/volumes/{volume['name']}", headers=as_viewer), 403, "forbidden")
    assert httpx.get(f"{server.url}/api/v1/volumes/{volume['name']}", headers=as_viewer).status_code == 200

    entries = api.get("/api/v1/audit", params={"limit": 50}).json()
    refusals = [e for e in entries if e["outcome"] == "refused" and e["action"] == "api.access"]
    assert any(probe in e["target"] and e["actor"] == "anonymous" and "unauthorized" in e["detail"] for e in refusals)
    assert any(
        e["target"] == f"DELETE /api/v1/volumes/{volume['name']}" and e["actor"].startswith("viewer-") for e in refusals
    )


def test_a_failed_snapshot_does_not_keep_its_name(server: Server, api: httpx.Client, volume: dict[str, Any]) -> None:
    """A capture that fails (the pool's staging folder made immutable, so nothing can be staged) leaves a failed
    row; a later take with the same name replaces it instead of answering name_clash forever."""
    staging = os.path.join(server.pool_dir, "staging")
    subprocess.run(["chattr", "+i", staging], check=True)
    try:
        failed = take(api, volume["name"], "nightly").json()
        assert failed["status"] == "failed", failed
    finally:
        subprocess.run(["chattr", "-i", staging], check=True)
    [row] = api.get("/api/v1/snapshots", params={"volume": volume["name"]}).json()
    assert row["name"] == "nightly" and row["status"] == "failed"

    retaken = take(api, volume["name"], "nightly")
    assert retaken.status_code == 202, retaken.text  # before the fix: 409 name_clash, forever
    again = retaken.json()
    assert again["status"] == "succeeded", again
    [row] = api.get("/api/v1/snapshots", params={"volume": volume["name"]}).json()
    assert row["status"] == "ready" and row["id"] == again["result"]["snapshot"]["id"]
    refused(take(api, volume["name"], "nightly"), 409, "name_clash")
