"""Taking, restoring and browsing snapshots, and profiles, through the web UI: in a real browser for the flows
an operator goes through, over plain HTTP for the details (refusals, headers, what changed).

Test data is made through the API (fast); only the flow under test goes through the pages. Refused requests
are checked to have changed nothing: the volume's files (names and bytes) and the catalog's snapshots.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Mounted, Server, log_in, make_traversable_tmp, start_server, stop_server
from tests.integration.test_ui_login import _logged_in

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # the pages do not depend on the driver


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _volume(api: httpx.Client, files: dict[str, bytes], tags: tuple[str, ...] = ()) -> dict[str, Any]:
    """A new volume holding ``files`` (relative path → bytes)."""
    answer = api.post("/api/v1/volumes", json={"name": _name("flows"), "size_limit": "1G", "tags": list(tags)})
    assert answer.status_code == 201, answer.text
    vol: dict[str, Any] = answer.json()
    for rel, data in files.items():
        path = Path(vol["path"], rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return vol


def _snapshot(api: httpx.Client, vol: dict[str, Any], name: str = "s1") -> str:
    job = api.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": vol["id"], "name": name}).json()
    assert job["status"] == "succeeded", job
    return str(job["result"]["snapshot"]["id"])


def _job(api: httpx.Client, location: str) -> dict[str, Any]:
    """The job a page redirected to (``/jobs/<id>``), once it has ended."""
    match = re.fullmatch(r"/jobs/([0-9a-f-]+)", location)
    assert match, location
    job: dict[str, Any] = api.get(f"/api/v1/jobs/{match.group(1)}", params={"wait": 60}).json()
    assert job["status"] in ("succeeded", "failed"), job
    return job


def _latest_job(api: httpx.Client) -> str:
    return str(api.get("/api/v1/jobs", params={"limit": 1}).json()[0]["id"])


def _tree(root: str) -> dict[str, bytes | None]:
    """Every entry under ``root``: files with their bytes, folders as None."""
    found: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            found[os.path.relpath(os.path.join(folder, d), root)] = None
        for f in files:
            found[os.path.relpath(os.path.join(folder, f), root)] = Path(folder, f).read_bytes()
    return found


def _snapshots(api: httpx.Client, vol: dict[str, Any]) -> list[str]:
    return sorted(s["name"] for s in api.get("/api/v1/snapshots", params={"volume": vol["id"]}).json())


# --- over HTTP -----------------------------------------------------------------------------------------------


def test_take_form_takes_and_a_refused_take_shows_the_form_again(server: Server) -> None:
    api = server.client()
    vol = _volume(api, {"a.txt": b"a"})
    client, csrf = _logged_in(server)
    form = client.get(f"/volumes/{vol['id']}/snapshot")
    assert form.status_code == 200 and f"Take a snapshot of volume {vol['name']}" in form.text
    sent = {"csrf": csrf, "name": "by-ui", "description": "from the form", "expires": "7d", "immutable": "on"}
    answer = client.post(f"/volumes/{vol['id']}/snapshot", data=sent)
    assert answer.status_code == 303, answer.text
    job = _job(api, answer.headers["location"])
    assert job["status"] == "succeeded", job
    snap = job["result"]["snapshot"]
    assert snap["description"] == "from the form" and snap["immutable"] and snap["expires_at"]

    again = client.post(f"/volumes/{vol['id']}/snapshot", data={**sent, "description": "kept"})
    assert again.status_code == 409 and 'role="alert"' in again.text and "by-ui" in again.text
    assert ">kept</textarea>" in again.text  # what was typed is kept
    past = client.post(f"/volumes/{vol['id']}/snapshot", data={"csrf": csrf, "name": "x", "expires": "2001-01-01"})
    assert past.status_code == 422 and "in the past" in past.text
    assert _snapshots(api, vol) == ["by-ui"]
    assert client.post(f"/volumes/{vol['id']}/snapshot", data={"name": "no-csrf"}).status_code == 403
    assert _snapshots(api, vol) == ["by-ui"]


@pytest.mark.parametrize(
    "bad",
    [
        {"path": "../"},
        {"path": "../../etc/passwd"},
        {"path": "/etc/passwd"},
        {"path": "a/../../x"},
        {"path_b64": "Ly4uL2V0Yw=="},  # "/../etc"
    ],
)
def test_file_paths_that_climb_out_are_refused_and_change_nothing(server: Server, bad: dict[str, str]) -> None:
    api = server.client()
    vol = _volume(api, {"a/b.txt": b"inside"})
    snap_id = _snapshot(api, vol)
    Path(vol["path"], "a", "b.txt").write_bytes(b"changed since")
    before, jobs_before = _tree(vol["path"]), _latest_job(api)
    client, csrf = _logged_in(server)
    for url in ("files", "files/download", "files/restore"):
        answer = client.get(f"/snapshots/{snap_id}/{url}", params=bad)
        assert answer.status_code == 422, (url, answer.text)
        assert 'role="alert"' in answer.text and "invalid_path" in answer.text
    posted = client.post(f"/snapshots/{snap_id}/files/restore", data={"csrf": csrf, **bad})
    assert posted.status_code == 422, posted.text
    to = {"to_path": bad.get("path", "/x")} if "path" in bad else {"to_path_b64": bad["path_b64"]}
    onto = client.post(f"/snapshots/{snap_id}/files/restore", data={"csrf": csrf, "path": "a/b.txt", **to})
    assert onto.status_code == 422, onto.text
    assert _tree(vol["path"]) == before
    assert _latest_job(api) == jobs_before  # refused before any job started


def test_download_sends_the_exact_bytes_as_an_attachment_with_a_safe_name(server: Server) -> None:
    api = server.client()
    hostile = '<img src=x onerror=alert(1)>"; filename=evil.html'
    data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks
    vol = _volume(api, {"big.bin": data, hostile: b"<script>alert(1)</script>"})
    os.symlink("/etc/passwd", os.path.join(vol["path"], "link"))
    os.mkfifo(os.path.join(vol["path"], "fifo"))
    snap_id = _snapshot(api, vol)
    client, _csrf = _logged_in(server)
    big = client.get(f"/snapshots/{snap_id}/files/download", params={"path": "big.bin"})
    assert big.status_code == 200 and big.content == data
    assert big.headers["content-disposition"].startswith('attachment; filename="big.bin"')
    evil = client.get(f"/snapshots/{snap_id}/files/download", params={"path": hostile})
    assert evil.status_code == 200 and evil.content == b"<script>alert(1)</script>"
    assert evil.headers["content-type"] == "application/octet-stream"
    assert evil.headers["x-content-type-options"] == "nosniff"
    disposition = evil.headers["content-disposition"]
    fallback = re.fullmatch(r'attachment; filename="([^"]*)"; filename\*=UTF-8\'\'(\S+)', disposition)
    assert fallback, disposition
    assert re.fullmatch(r"[A-Za-z0-9._ -]+", fallback.group(1)), disposition
    for name in ("link", "fifo", ""):
        refused = client.get(f"/snapshots/{snap_id}/files/download", params={"path": name})
        assert refused.status_code == 422, (name, refused.text)
    listing = client.get(f"/snapshots/{snap_id}/files")
    assert listing.status_code == 200, listing.text
    assert "&lt;img src=x onerror=alert(1)&gt;&#34;" in listing.text and "<img" not in listing.text


def test_a_folder_downloads_as_a_tar_archive_of_what_the_snapshot_holds(server: Server, tmp_path: Path) -> None:
    api = server.client()
    data = os.urandom(3 * 1024 * 1024 + 17)
    vol = _volume(api, {"docs/a.txt": b"as in the snapshot", "docs/sub/big.bin": data, "docs/sub/linked": b"twice"})
    docs = Path(vol["path"], "docs")
    os.link(docs / "sub" / "linked", docs / "linked-too")
    os.symlink("/etc/shadow", docs / "evil")
    os.symlink("../../..", docs / "sub" / "up")
    os.mkfifo(docs / "fifo")
    (docs / "latin-\udcff.txt").write_bytes(b"not UTF-8")
    os.chmod(docs / "a.txt", 0o640)
    snap_id = _snapshot(api, vol)
    (docs / "a.txt").write_bytes(b"changed since")
    (docs / "sub" / "big.bin").unlink()
    client, _csrf = _logged_in(server)

    answer = client.get(f"/snapshots/{snap_id}/files/download", params={"path": "docs"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-tar"
    assert answer.headers["content-disposition"].startswith('attachment; filename="docs.tar"')
    assert answer.headers["x-content-type-options"] == "nosniff"
    archive = tmp_path / "docs.tar"
    archive.write_bytes(answer.content)
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert all(name == "docs" or name.startswith("docs/") for name in members), sorted(members)
    assert not any(".." in name.split("/") for name in members)
    assert members["docs/evil"].issym() and members["docs/evil"].linkname == "/etc/shadow"  # archived, not followed
    assert members["docs/sub/up"].issym() and members["docs/sub/up"].linkname == "../../.."
    assert "docs/fifo" not in members  # special files are left out, as extracts skip them
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(out)], check=True, capture_output=True)
    got = out / "docs"
    assert (got / "a.txt").read_bytes() == b"as in the snapshot" and (got / "sub" / "big.bin").read_bytes() == data
    assert os.stat(got / "a.txt").st_mode & 0o777 == 0o640
    assert os.stat(got / "linked-too").st_ino == os.stat(got / "sub" / "linked").st_ino  # one file, two names
    assert (got / "sub" / "linked").read_bytes() == b"twice"
    assert os.readlink(got / "evil") == "/etc/shadow"
    assert (got / "latin-\udcff.txt").read_bytes() == b"not UTF-8"
    root = client.get(f"/snapshots/{snap_id}/files/download", params={"path": ""})
    assert root.status_code == 422, root.text  # the whole snapshot is restored, not downloaded
    listing = client.get(f"/snapshots/{snap_id}/files")
    assert 'aria-label="Download docs as a tar archive"' in listing.text


def test_a_big_folder_is_browsed_a_page_at_a_time(server: Server) -> None:
    api = server.client()
    names = {f"f{i:04d}.txt" for i in range(1001)} | {"caf\u00e9-\u00fc.txt"}
    vol = _volume(api, {f"many/{name}": b"" for name in names})
    Path(vol["path"], "many", "latin-\udcff.txt").write_bytes(b"")  # a name that is not UTF-8
    snap_id = _snapshot(api, vol)
    client, _csrf = _logged_in(server)
    seen: list[str] = []
    url: str | None = f"/snapshots/{snap_id}/files?path=many"
    while url is not None:
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        seen += re.findall(r'aria-label="Restore ([^"]+)"', answer.text)
        more = re.search(r'<a href="([^"]+)">Next page</a>', answer.text)
        url = more.group(1).replace("&amp;", "&") if more else None
    assert len(seen) == len(set(seen)) == len(names) + 1
    assert set(seen) == names | {"latin-\\xff.txt"}  # shown with the byte escaped


def test_restore_confirmation_names_what_it_overwrites(server: Server) -> None:
    api = server.client()
    vol = _volume(api, {"doc.txt": b"v1"})
    snap_id = _snapshot(api, vol, "before")
    client, csrf = _logged_in(server)
    page = client.get(f"/snapshots/{snap_id}/restore")
    assert page.status_code == 200 and "As a new volume" in page.text
    confirm = client.get(f"/snapshots/{snap_id}/restore/confirm", params={"mode": "data", "pre_restore": "on"})
    assert confirm.status_code == 200
    text = re.sub(r"<[^>]+>", "", confirm.text)
    assert f"volume {vol['name']}" in text and "before" in text and "pre-restore snapshot" in text
    assert re.search(r"taken \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", text)
    assert _snapshots(api, vol) == ["before"]  # showing the confirmation changed nothing

    new_name = _name("copy")
    answer = client.post(f"/snapshots/{snap_id}/restore", data={"csrf": csrf, "name": new_name})
    job = _job(api, answer.headers["location"])
    assert job["status"] == "succeeded", job
    copy = api.get(f"/api/v1/volumes/{new_name}").json()
    assert Path(copy["path"], "doc.txt").read_bytes() == b"v1"
    clash = client.post(f"/snapshots/{snap_id}/restore", data={"csrf": csrf, "name": new_name})
    assert clash.status_code == 409 and new_name in clash.text


def test_delete_unlock_and_measure_a_snapshot_behind_their_confirmations(server: Server) -> None:
    api = server.client()
    vol = _volume(api, {"doc.txt": b"v1" * 100_000})
    plain = _snapshot(api, vol, "plain")
    Path(vol["path"], "doc.txt").write_bytes(b"v2")  # "plain" alone holds the old bytes
    os.sync()  # once btrfs has committed the rewrite
    taken = api.post(
        "/api/v1/snapshots",
        params={"wait": 30},
        json={"volume": vol["id"], "name": "locked", "immutable": True},
    ).json()
    locked = taken["result"]["snapshot"]["id"]
    client, csrf = _logged_in(server)

    page = client.get(f"/snapshots/{locked}").text
    assert f'href="/snapshots/{locked}/delete"' not in page and f'href="/snapshots/{locked}/unlock"' in page
    refused = client.get(f"/snapshots/{locked}/delete")
    assert refused.status_code == 200 and "immutable and locked" in refused.text
    assert f'action="/snapshots/{locked}/delete"' not in refused.text  # no button to press
    assert client.post(f"/snapshots/{locked}/delete", data={"csrf": csrf}).status_code == 409  # the service says no
    confirm = re.sub(r"<[^>]+>", "", client.get(f"/snapshots/{locked}/unlock").text)
    assert "locked" in confirm and re.search(r"deletable at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", confirm)
    assert api.get(f"/api/v1/snapshots/{locked}").json()["unlocked_at"] is None  # the page changed nothing
    assert client.post(f"/snapshots/{locked}/unlock", data={"csrf": csrf}).headers["location"] == f"/snapshots/{locked}"
    assert api.get(f"/api/v1/snapshots/{locked}").json()["unlocked_at"] is not None
    assert "cooling-off" in client.get(f"/snapshots/{locked}/delete").text  # still not deletable: cooling off

    measured = client.post(f"/snapshots/{plain}/space", data={"csrf": csrf})
    assert _job(api, measured.headers["location"])["status"] == "succeeded"
    assert api.get(f"/api/v1/snapshots/{plain}").json()["exclusive_bytes"] > 0
    confirm = re.sub(r"<[^>]+>", "", client.get(f"/snapshots/{plain}/delete").text)
    assert f"Snapshot plain of volume {vol['name']}" in confirm and "cannot be undone" in confirm
    assert _snapshots(api, vol) == ["locked", "plain"]
    deleted = client.post(f"/snapshots/{plain}/delete", data={"csrf": csrf})
    assert _job(api, deleted.headers["location"])["status"] == "succeeded"
    assert _snapshots(api, vol) == ["locked"] and client.get(f"/snapshots/{plain}").status_code == 404


def _profile(api: httpx.Client, ref: str) -> dict[str, Any]:
    answer = api.get(f"/api/v1/profiles/{ref}")
    assert answer.status_code == 200, answer.text
    profile: dict[str, Any] = answer.json()
    return profile


PERIOD = {"name": "nightly", "frequency": "daily", "hour": "3", "minute": "30", "retention": "7d", "min_snapshots": "2"}


def test_the_period_editor_sets_every_field_and_refusals_change_nothing(server: Server) -> None:
    api = server.client()
    client, csrf = _logged_in(server)
    name = _name("editor")
    created = client.post("/profiles/new", data={"csrf": csrf, "name": name, "timezone": "Europe/Berlin"})
    assert created.status_code == 303, created.text
    ref = created.headers["location"].rsplit("/", 1)[1]
    added = client.post(f"/profiles/{ref}/periods", data={"csrf": csrf, **PERIOD, "private": "on"})
    assert added.status_code == 303, added.text
    form = client.get(f"/profiles/{ref}/periods/nightly")
    assert form.status_code == 200 and 'value="1w"' in form.text  # 7d, shown in whole weeks

    every = {
        "csrf": csrf,
        "name": "monthly-close",
        "frequency": "monthly",
        "minute": "45",
        "hour": "23",
        "day_of_week": "",
        "day_of_month": "31",
        "month": "",
        "interval_minutes": "",
        "at": "",
        "retention": "1y",
        "min_snapshots": "3",
        "quiesce": "on",
        "immutable": "on",
        "skip_missed": "on",
        "include_tags": "finance, db",
        "exclude_tags": "",
    }
    changed = client.post(f"/profiles/{ref}/periods/nightly", data=every)
    assert changed.status_code == 303, re.findall(r"role=\"alert\">([^<]*)", changed.text)
    [period] = _profile(api, ref)["periods"]
    assert {k: period[k] for k in ("name", "frequency", "minute", "hour", "day_of_month", "min_snapshots")} == {
        "name": "monthly-close",
        "frequency": "monthly",
        "minute": 45,
        "hour": 23,
        "day_of_month": 31,
        "min_snapshots": 3,
    }
    assert period["retention_seconds"] == 365 * 86400 and period["day_of_week"] is None
    assert (period["quiesce"], period["immutable"], period["private"], period["skip_missed"]) == (
        True,
        True,
        False,
        True,
    )
    assert (period["include_tags"], period["exclude_tags"]) == (["finance", "db"], [])
    shown = client.get(f"/profiles/{ref}")
    assert "monthly on day 31 at 23:45 (the last day in shorter months)" in shown.text

    before = _profile(api, ref)
    for bad, why in (
        ({"minute": "61"}, "minute"),
        ({"minute": "soon"}, "whole number"),
        ({"frequency": "weekly"}, "day_of_month"),  # a weekly period given a day of the month
        ({"retention": "a while"}, "retention"),
        ({"frequency": "fortnightly"}, "frequency"),
        ({"exclude_tags": "scratch"}, "not both"),
    ):
        refused = client.post(f"/profiles/{ref}/periods/monthly-close", data={**every, **bad})
        assert refused.status_code in (400, 422), (bad, refused.status_code)
        assert 'role="alert"' in refused.text and why in refused.text, (bad, refused.text[-800:])
        assert all(f'value="{v}"' in refused.text for k, v in bad.items() if k in ("minute", "retention"))
    clash = client.post(f"/profiles/{ref}/periods", data={"csrf": csrf, **PERIOD, "name": "monthly-close"})
    assert clash.status_code == 422 and "monthly-close" in clash.text
    assert _profile(api, ref) == before

    confirm = client.get(f"/profiles/{ref}/periods/monthly-close/remove")
    assert confirm.status_code == 200 and "Remove period monthly-close" in confirm.text
    assert _profile(api, ref) == before
    assert client.post(f"/profiles/{ref}/periods/monthly-close/remove", data={"csrf": csrf}).status_code == 303
    assert _profile(api, ref)["periods"] == []


def test_assign_and_delete_a_profile_behind_its_confirmation(server: Server) -> None:
    api = server.client()
    vol = _volume(api, {})
    client, csrf = _logged_in(server)
    name = _name("assigned")
    ref = client.post("/profiles/new", data={"csrf": csrf, "name": name}).headers["location"].rsplit("/", 1)[1]
    client.post(f"/profiles/{ref}/periods", data={"csrf": csrf, **PERIOD})
    picked = client.get("/profiles", params={"assign": "volume", "subject": vol["id"]})
    assert picked.status_code == 200 and f'aria-label="Assign {name}"' in picked.text
    assigned = client.post(
        f"/profiles/{ref}/assign", data={"csrf": csrf, "subject_type": "volume", "subject": vol["id"]}
    )
    assert assigned.status_code == 303
    assert [a["subject_id"] for a in api.get(f"/api/v1/profiles/{ref}/assignments").json()] == [vol["id"]]
    timeline = client.get(f"/profiles/{ref}", params={"subject_type": "volume", "subject": vol["name"], "weeks": 1})
    assert timeline.status_code == 200 and 'data-period="nightly"' in timeline.text

    confirm = client.get(f"/profiles/{ref}/delete")
    assert confirm.status_code == 200 and vol["name"] in confirm.text and "Detach it from every subject" in confirm.text
    refused = client.post(f"/profiles/{ref}/delete", data={"csrf": csrf})
    assert refused.status_code == 409 and "assigned" in refused.text
    assert _profile(api, ref)["name"] == name
    assert client.post(f"/profiles/{ref}/unassign", data={"csrf": csrf, "subject_type": "volume", "subject": vol["id"]})
    assert api.get(f"/api/v1/profiles/{ref}/assignments").json() == []
    client.post(f"/profiles/{ref}/assign", data={"csrf": csrf, "subject_type": "volume", "subject": vol["id"]})
    gone = client.post(f"/profiles/{ref}/delete", data={"csrf": csrf, "detach": "on"})
    assert gone.status_code == 303 and api.get(f"/api/v1/profiles/{ref}").status_code == 404


def test_system_snapshot_taken_partial_then_one_volume_restored_as_new_and_imported(server: Server) -> None:
    api = server.client()
    tag = _name("ui-tag")
    vol = _volume(api, {"keep.txt": b"system copy\n"}, tags=(tag,))
    client, csrf = _logged_in(server)
    form = client.get("/system/snapshot")
    assert form.status_code == 200 and "Take a snapshot of the system" in form.text and "checked" in form.text
    snap_name = _name("sys")
    taken = client.post(
        "/system/snapshot", data={"csrf": csrf, "name": snap_name, "include_tags": tag, "private": "on"}
    )
    job = _job(api, taken.headers["location"])
    assert job["status"] == "succeeded", job
    snap = job["result"]["snapshot"]
    assert snap["kind"] == "system" and snap["private"]
    contents = api.get(f"/api/v1/snapshots/{snap['id']}/contents").json()
    assert [v["name"] for v in contents["volumes"]] == [vol["name"]]

    page = client.get(f"/snapshots/{snap['id']}/restore")
    assert page.status_code == 200 and "Restore everything" in page.text and vol["name"] in page.text
    whole = client.get(f"/snapshots/{snap['id']}/restore/confirm", params={"pre_restore": "on"})
    assert whole.status_code == 200 and "Restore over the whole system?" in whole.text
    one = client.get(f"/snapshots/{snap['id']}/restore/confirm", params={"member_type": "volume", "member": vol["id"]})
    assert one.status_code == 200 and f"Restore over volume {vol['name']}?" in one.text
    assert "No pre-restore snapshot" in one.text

    copy = _name("from-sys")
    made = client.post(
        f"/snapshots/{snap['id']}/restore",
        data={"csrf": csrf, "member_type": "volume", "member": vol["id"], "name": copy},
    )
    assert _job(api, made.headers["location"])["status"] == "succeeded"
    assert Path(api.get(f"/api/v1/volumes/{copy}").json()["path"], "keep.txt").read_bytes() == b"system copy\n"
    imported = client.post(
        f"/snapshots/{snap['id']}/import", data={"csrf": csrf, "member_type": "volume", "member": vol["id"]}
    )
    assert _job(api, imported.headers["location"])["status"] == "succeeded"
    assert snap_name in _snapshots(api, vol)
    browse = client.get(f"/snapshots/{snap['id']}/files")
    assert browse.status_code == 200 and vol["name"] in browse.text
    inside = client.get(f"/snapshots/{snap['id']}/files/download", params={"volume": vol["id"], "path": "keep.txt"})
    assert inside.status_code == 200 and inside.content == b"system copy\n"


# --- in a real browser ---------------------------------------------------------------------------------------


def _job_of(page: Page, api: httpx.Client) -> dict[str, Any]:
    """The job the page was sent to after a submit, once it has ended."""
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]+$"))
    return _job(api, "/" + page.url.split("/", 3)[3])


def test_take_a_volume_snapshot_and_restore_one_file_in_the_browser(page: Page, server: Server) -> None:
    api = server.client()
    vol = _volume(api, {"docs/report.txt": b"the original report\n", "docs/other.txt": b"untouched\n"})
    log_in(page, server.url, "admin", server.admin_password)
    page.goto(f"{server.url}/volumes/{vol['id']}/snapshot")
    page.get_by_label("Snapshot name").fill("before-edit")
    page.get_by_label("Description").fill("taken in the browser")
    page.get_by_role("button", name="Take snapshot").click()
    job = _job_of(page, api)
    assert job["status"] == "succeeded", job
    snap_id = job["result"]["snapshot"]["id"]

    Path(vol["path"], "docs", "report.txt").write_bytes(b"overwritten by a user\n")
    Path(vol["path"], "docs", "other.txt").write_bytes(b"changed too, and stays so\n")
    page.goto(f"{server.url}/snapshots/{snap_id}/files")
    page.get_by_role("link", name="docs/").click()
    expect(page.get_by_role("heading", name="Folder docs")).to_be_visible()
    page.get_by_role("link", name="Restore report.txt").click()
    expect(page.get_by_text("exists in volume")).to_contain_text("will be overwritten")
    page.get_by_role("button", name=f"Overwrite docs/report.txt in {vol['name']}").click()
    job = _job_of(page, api)
    assert job["status"] == "succeeded", job
    assert Path(vol["path"], "docs", "report.txt").read_bytes() == b"the original report\n"
    assert Path(vol["path"], "docs", "other.txt").read_bytes() == b"changed too, and stays so\n"


def test_create_a_profile_with_two_periods_and_see_its_preview_timeline(page: Page, server: Server) -> None:
    name = _name("plan")
    log_in(page, server.url, "admin", server.admin_password)
    page.goto(f"{server.url}/profiles/new")
    page.get_by_label("Profile name").fill(name)
    page.get_by_label("Description").fill("checked in a browser")
    page.get_by_label("Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Create profile").click()
    expect(page.get_by_role("heading", name=f"Profile {name}")).to_be_visible()

    page.get_by_label("Period name").fill("hourly")
    page.get_by_label("Frequency").select_option("hourly")
    page.get_by_label("Minute (0-59)").fill("15")
    page.get_by_label("Retention").fill("6h")
    page.get_by_label("Minimum snapshots kept").fill("2")
    page.get_by_role("button", name="Add period").click()
    expect(page.get_by_role("cell", name="every hour at minute 15", exact=False)).to_be_visible()

    page.get_by_text("Add a period").click()
    page.get_by_label("Period name").fill("weekly")
    page.get_by_label("Frequency").select_option("weekly")
    page.get_by_label("Day of week").select_option("Monday")
    page.get_by_label("Hour (0-23)").fill("2")
    page.get_by_label("Retention").fill("1d")
    page.get_by_label("Minimum snapshots kept").fill("2")
    page.get_by_label("Immutable").check()
    page.get_by_role("button", name="Add period").click()
    expect(page.get_by_role("cell", name="weekly on Monday at 02:00")).to_be_visible()

    timeline = page.get_by_role("img", name=re.compile(f"Snapshots of {name}"))
    expect(timeline).to_be_visible()
    hourly = timeline.locator('g.period[data-period="hourly"] rect.mark')
    weekly = timeline.locator('g.period[data-period="weekly"] rect.mark')
    assert 4 * 7 * 24 - 2 <= hourly.count() <= 4 * 7 * 24 + 2  # a mark per hour for four weeks
    assert weekly.count() in (4, 5)
    assert timeline.locator('g.period[data-period="weekly"] rect.mark.locked').count() == weekly.count()
    assert timeline.locator('g.period[data-period="weekly"] rect.held').count() >= 1  # kept past a day: 2 at least
    hourly_rows = timeline.locator('g.period[data-period="hourly"] rect.held')
    assert hourly_rows.count() == 0  # six hours of hourly snapshots always hold more than two
    page.get_by_label("Weeks ahead").select_option("2")
    page.get_by_role("button", name="Show preview").click()
    expect(page.get_by_role("img", name=re.compile("over the next 2 weeks$"))).to_be_visible()
    assert 2 * 7 * 24 - 2 <= page.locator('g.period[data-period="hourly"] rect.mark').count() <= 2 * 7 * 24 + 2


def test_restore_a_volume_in_place_through_the_confirmation_page(page: Page, server: Server) -> None:
    api = server.client()
    original = {"data/a.bin": os.urandom(200_000), "data/b.txt": b"second file\n", "top.txt": b"top\n"}
    vol = _volume(api, original)
    snap_id = _snapshot(api, vol, "good-state")
    Path(vol["path"], "data", "a.bin").write_bytes(b"ransomware was here")
    Path(vol["path"], "top.txt").unlink()
    Path(vol["path"], "new-since.txt").write_bytes(b"made after the snapshot")
    damaged = _tree(vol["path"])

    log_in(page, server.url, "admin", server.admin_password)
    page.goto(f"{server.url}/snapshots/{snap_id}/restore")
    page.get_by_role("button", name="Restore over the volume…").click()
    expect(page.get_by_role("heading", name=f"Restore over volume {vol['name']}?")).to_be_visible()
    facts = page.get_by_role("region", name="What will happen")
    expect(facts).to_contain_text(f"volume {vol['name']}")
    expect(facts).to_contain_text("good-state")
    expect(facts).to_contain_text("A pre-restore snapshot")
    assert _snapshots(api, vol) == ["good-state"] and _tree(vol["path"]) == damaged  # nothing yet
    page.get_by_role("button", name=f"Restore over volume {vol['name']}").click()
    job = _job_of(page, api)
    assert job["status"] == "succeeded", job

    assert _tree(vol["path"]) == {"data": None, **original}
    pre = job["result"]["pre_restore_snapshot_id"]
    assert pre is not None
    saved = api.get(f"/api/v1/snapshots/{pre}").json()
    assert saved["name"].startswith("pre-restore_") and saved["subject_id"] == vol["id"]
    assert sorted(_snapshots(api, vol)) == sorted(["good-state", saved["name"]])
    undo = api.post(f"/api/v1/snapshots/{pre}/restore", params={"wait": 30}, json={"pre_restore": False}).json()
    assert undo["status"] == "succeeded" and _tree(vol["path"]) == damaged  # the pre-restore snapshot holds it


@pytest.fixture
def stopped_vm(server: Server, libvirtd: None) -> Iterator[dict[str, Any]]:
    """A VM that is not started (its disks hold random bytes); it and every VM made from it are deleted after."""
    with server.client() as api:
        before = {v["id"] for v in api.get("/api/v1/vms").json()}
        answer = api.post("/api/v1/vms", json={"name": _name("ui-vm"), "disks": ["16M"], "nics": 1})
        assert answer.status_code == 201, answer.text
        vm: dict[str, Any] = answer.json()
        for disk in vm["disks"]:
            with open(disk["path"], "r+b") as f:
                for offset in (0, disk["size"] // 2, disk["size"] - 4096):
                    os.pwrite(f.fileno(), os.urandom(4096), offset)
        try:
            yield vm
        finally:
            for made in api.get("/api/v1/vms").json():
                if made["id"] not in before:
                    api.delete(f"/api/v1/vms/{made['id']}", params={"force": "true", "wait": 30})


def _disks(vm: dict[str, Any]) -> list[bytes]:
    return [Path(disk["path"]).read_bytes() for disk in vm["disks"]]


def test_take_a_vm_snapshot_and_restore_it_as_a_new_vm_in_the_browser(
    page: Page, server: Server, stopped_vm: dict[str, Any]
) -> None:
    api = server.client()
    vm = stopped_vm
    good = _disks(vm)
    log_in(page, server.url, "admin", server.admin_password)
    page.goto(f"{server.url}/vms/{vm['id']}/snapshot")
    expect(page.get_by_role("heading", name=f"Take a snapshot of vm {vm['name']}")).to_be_visible()
    page.get_by_label("Snapshot name").fill("before-upgrade")
    page.get_by_label("Never expires").check()
    page.get_by_role("button", name="Take snapshot").click()
    job = _job_of(page, api)
    assert job["status"] == "succeeded", job
    snap = job["result"]["snapshot"]
    assert (snap["subject_type"], snap["subject_id"], snap["expires_at"]) == ("vm", vm["id"], None)

    for disk in vm["disks"]:  # the source changes after the snapshot; the copy must not
        Path(disk["path"]).write_bytes(os.urandom(disk["size"]))
    copy_name = _name("restored")
    page.goto(f"{server.url}/snapshots/{snap['id']}/restore")
    page.get_by_label("New VM's name").fill(copy_name)
    page.get_by_role("button", name="Restore as new VM").click()
    job = _job_of(page, api)
    assert job["status"] == "succeeded", job
    copy = api.get(f"/api/v1/vms/{copy_name}").json()
    assert copy["id"] != vm["id"] and copy["state"] == "shutoff"
    assert _disks(copy) == good
    assert set(copy["macs"]).isdisjoint(vm["macs"])  # new MACs unless asked to keep them


def test_a_running_vm_is_restored_over_only_when_the_confirmation_says_it_is_powered_off(
    server: Server, stopped_vm: dict[str, Any]
) -> None:
    api, vm = server.client(), stopped_vm
    taken = api.post("/api/v1/snapshots", params={"wait": 60}, json={"vm": vm["id"], "name": "before"}).json()
    assert taken["status"] == "succeeded", taken
    snap_id, good = taken["result"]["snapshot"]["id"], _disks(vm)
    for disk in vm["disks"]:
        Path(disk["path"]).write_bytes(os.urandom(disk["size"]))
    changed = _disks(vm)
    assert api.post(f"/api/v1/vms/{vm['id']}/start", params={"wait": 60}).json()["status"] == "succeeded"
    client, csrf = _logged_in(server)
    confirm = f"/snapshots/{snap_id}/restore/confirm"

    refused = client.get(confirm, params={"pre_restore": "on"})  # checked as the restore: refused at once
    assert refused.status_code == 409 and "power" in refused.text, refused.text[:500]
    refused = client.post(confirm, data={"csrf": csrf, "pre_restore": "on"})
    assert refused.status_code == 409, refused.text[:500]
    assert api.get(f"/api/v1/vms/{vm['id']}").json()["state"] == "running" and _disks(vm) == changed

    page = client.get(confirm, params={"power_off": "on"})
    assert page.status_code == 200 and "The VM is powered off first if it runs." in page.text
    done = client.post(confirm, data={"csrf": csrf, "power_off": "on"})
    assert _job(api, done.headers["location"])["status"] == "succeeded"
    assert api.get(f"/api/v1/vms/{vm['id']}").json()["state"] == "shutoff" and _disks(vm) == good


@pytest.fixture
def own_server(fs: Mounted, libvirtd: None) -> Iterator[Server]:
    """A service of its own: a whole-system restore puts back everything, which a shared one cannot afford."""
    data_dir = make_traversable_tmp("snapkeep-ui-whole-")
    srv = start_server(data_dir, fs.new_dir("ui-whole-pool"))
    yield srv
    stop_server(srv)
    shutil.rmtree(data_dir, ignore_errors=True)


def test_restore_the_whole_system_in_place_through_the_confirmation_page(page: Page, own_server: Server) -> None:
    server, api = own_server, own_server.client()
    kept = _volume(api, {"report.txt": b"as it was\n"})
    tenant = api.post("/api/v1/tenants", json={"name": _name("gone")}).json()
    taken = api.post("/api/v1/snapshots", params={"wait": 60}, json={"system": True, "name": "before"}).json()
    assert taken["status"] == "succeeded", taken
    snap_id = taken["result"]["snapshot"]["id"]
    Path(kept["path"], "report.txt").write_bytes(b"overwritten\n")
    made_since = _volume(api, {"new.txt": b"made after the snapshot\n"})
    assert api.delete(f"/api/v1/tenants/{tenant['id']}", params={"wait": 60}).status_code < 300

    log_in(page, server.url, "admin", server.admin_password)
    page.goto(f"{server.url}/snapshots/{snap_id}/restore")
    page.get_by_role("button", name="Restore everything…").click()
    expect(page.get_by_role("heading", name="Restore over the whole system?")).to_be_visible()
    facts = page.get_by_role("region", name="What will happen")
    expect(facts).to_contain_text("before")
    expect(facts).to_contain_text("A pre-restore snapshot")
    for listing, named in (
        ("Overwritten", f"volume {kept['name']}"),
        ("Removed", f"volume {made_since['name']}"),
        ("Brought back", f"tenant {tenant['name']}"),
    ):
        expect(facts.get_by_role("list", name=re.compile(f"^{listing}"))).to_contain_text(named)
    expect(facts.get_by_role("list", name=re.compile("^Removed"))).not_to_contain_text(kept["name"])
    assert made_since["id"] in {v["id"] for v in api.get("/api/v1/volumes").json()}  # nothing changed yet
    page.get_by_role("button", name="Restore over the whole system").click()
    job = _job_of(page, api)
    assert job["status"] == "succeeded", job

    volumes = {v["id"]: v for v in api.get("/api/v1/volumes").json()}
    assert made_since["id"] not in volumes and kept["id"] in volumes
    assert Path(volumes[kept["id"]]["path"], "report.txt").read_bytes() == b"as it was\n"
    assert tenant["id"] in {t["id"] for t in api.get("/api/v1/tenants").json()}  # deleted, and back
    pre = job["result"]["pre_restore_snapshot_id"]
    assert pre is not None and api.get(f"/api/v1/snapshots/{pre}").json()["kind"] == "system"
