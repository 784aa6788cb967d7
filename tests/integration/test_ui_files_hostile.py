"""The web UI's file browser and downloads against what a hostile NAS user or a lesser user can do: a client
that goes away mid-download, a viewer that tries to restore, names that are not UTF-8.

Files are written at the ``path`` the admin's API gives for a volume, as in test_ui_flows.
"""

from __future__ import annotations

import html
import os
import re
import threading
import time
import uuid
from pathlib import Path

import pytest

from snapkeep.api.one_service import LOCK_FILE
from snapkeep.storage.beneath import closing
from snapkeep.storage.linux import RENAME_EXCHANGE, renameat2
from tests.conftest import Server
from tests.integration.test_ui_flows import _job, _latest_job, _snapshot, _tree, _volume
from tests.integration.test_ui_login import PASSWORD, _logged_in, _user

BTRFS = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # the pages do not depend on the driver
BOTH = pytest.mark.parametrize("fs", ["btrfs", "xfs"], indirect=True)  # downloads do: an XFS snapshot is mounted


def _open_under(pid: int, folder: str) -> list[str]:
    """The paths of the descriptors process ``pid`` holds on files under ``folder`` (but its lock on the
    pool, held as long as it runs)."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if target.startswith(folder) and target != os.path.join(folder, LOCK_FILE):
            found.append(target)
    return found


def _rss(pid: int) -> int:
    """The resident memory of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@BOTH
@pytest.mark.parametrize("path", ["huge.bin", "folder"])
def test_a_download_the_client_abandons_lets_its_file_go(server: Server, path: str) -> None:
    """A file, or a folder's archive read four folders deep (each holding a descriptor) when it is abandoned."""
    api = server.client()
    vol = _volume(api, {})
    deep = Path(vol["path"], "folder", "a", "b", "c")
    deep.mkdir(parents=True)
    for where in (Path(vol["path"]), deep):
        with open(where / "huge.bin", "wb") as f:
            f.truncate(1 << 30)  # sparse: far more than the socket buffers hold
    snap_id = _snapshot(api, vol)
    client, _csrf = _logged_in(server)
    with client.stream("GET", f"/snapshots/{snap_id}/files/download", params={"path": path}) as answer:
        assert answer.status_code == 200
        assert answer.headers.get("content-length") == (str(1 << 30) if path == "huge.bin" else None)
        start = _rss(server.process.pid)
        chunks = answer.iter_raw()  # kept: a dropped iterator closes the connection (the download ends)
        next(chunks)
        assert _open_under(server.process.pid, server.pool_dir)  # the file is being read
        time.sleep(1)  # a server that read ahead into memory would do so now, while the client waits
        assert _rss(server.process.pid) - start < 128 << 20  # streamed a chunk at a time, never the whole file
    client.close()  # the client goes away with most of it unread
    browsing = os.path.join(server.pool_dir, "staging", "browse-")

    def held() -> list[str]:
        """Files of the pool the server still has open, and an XFS snapshot's browse mount (let go after)."""
        with open("/proc/self/mounts") as mounts:
            mounted = [m for m in mounts if m.split()[1].startswith(browsing)]
        return _open_under(server.process.pid, server.pool_dir) + mounted

    left = held()
    for _ in range(300):  # the server notices at its next write; a bound for a busy machine, not a speed
        if not left:
            break
        time.sleep(0.1)
        left = held()
    assert not left, left


@BTRFS
def test_a_viewer_can_download_but_not_restore(server: Server) -> None:
    api = server.client()
    vol = _volume(api, {"doc.txt": b"v1"})
    snap_id = _snapshot(api, vol)
    Path(vol["path"], "doc.txt").write_bytes(b"v2")
    before, jobs_before = _tree(vol["path"]), _latest_job(api)
    client, csrf = _logged_in(server, _user(server, "viewer"), PASSWORD)
    got = client.get(f"/snapshots/{snap_id}/files/download", params={"path": "doc.txt"})
    assert got.status_code == 200 and got.content == b"v1"
    posted = client.post(f"/snapshots/{snap_id}/files/restore", data={"csrf": csrf, "path": "doc.txt"})
    assert posted.status_code == 403, posted.text
    assert _tree(vol["path"]) == before
    assert _latest_job(api) == jobs_before


@BTRFS
def test_a_name_that_is_not_utf8_downloads_under_its_own_bytes(server: Server) -> None:
    api = server.client()
    vol = _volume(api, {})
    Path(os.fsdecode(os.path.join(os.fsencode(vol["path"]), b"caf\xe9\r\n.txt"))).write_bytes(b"latin-1")
    snap_id = _snapshot(api, vol)
    client, _csrf = _logged_in(server)
    got = client.get(f"/snapshots/{snap_id}/files/download", params={"path_b64": "Y2Fm6Q0KLnR4dA=="})
    assert got.status_code == 200 and got.content == b"latin-1"
    disposition = got.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    assert 'filename="caf_' in disposition


@BOTH
def test_a_snapshot_deleted_mid_download_is_still_read_to_its_end(server: Server) -> None:
    api = server.client()
    vol = _volume(api, {})
    with open(Path(vol["path"], "huge.bin"), "wb") as f:
        f.truncate(1 << 30)
    snap_id = _snapshot(api, vol)
    client, _csrf = _logged_in(server)
    with client.stream("GET", f"/snapshots/{snap_id}/files/download", params={"path": "huge.bin"}) as answer:
        assert answer.status_code == 200
        chunks = answer.iter_raw()
        first = next(chunks)
        deleted = api.delete(f"/api/v1/snapshots/{snap_id}", params={"wait": 30})  # not held: deleted
        assert deleted.status_code == 202 and deleted.json()["status"] == "succeeded", deleted.text
        got = len(b"".join(chunks)) + len(first)
    assert got == 1 << 30  # read to its end from the deleted snapshot, which the open file kept alive
    assert api.get(f"/api/v1/snapshots/{snap_id}").status_code == 404
    assert not _open_under(server.process.pid, server.pool_dir)


@BTRFS
def test_restore_after_the_folder_became_a_symlink_writes_nothing_outside(server: Server) -> None:
    api = server.client()
    vol = _volume(api, {"d/doc.txt": b"v1"})
    snap_id = _snapshot(api, vol)
    outside = Path(server.data_dir).parent / f"outside-{os.getpid()}-{time.monotonic_ns()}"
    outside.mkdir()
    try:
        (outside / "doc.txt").write_bytes(b"precious")
        client, csrf = _logged_in(server)
        confirm = client.get(f"/snapshots/{snap_id}/files/restore", params={"path": "d/doc.txt"})
        assert confirm.status_code == 200 and "will be overwritten" in confirm.text
        d = Path(vol["path"], "d")
        (d / "doc.txt").unlink()
        d.rmdir()
        d.symlink_to(outside)  # the NAS user's move between the confirmation and the POST
        posted = client.post(
            f"/snapshots/{snap_id}/files/restore", data={"csrf": csrf, "path": "d/doc.txt", "to_path": "d/doc.txt"}
        )
        assert posted.status_code == 422
        assert sorted(os.listdir(outside)) == ["doc.txt"] and (outside / "doc.txt").read_bytes() == b"precious"
    finally:
        for entry in outside.iterdir():
            entry.unlink()
        outside.rmdir()


@BTRFS
def test_restores_while_the_folder_keeps_flipping_to_a_symlink_write_nothing_outside(server: Server) -> None:
    """The POST and its job both meet the flip: each restore is refused or lands inside the volume."""
    api = server.client()
    vol = _volume(api, {"d/doc.txt": b"v1"})
    snap_id = _snapshot(api, vol)
    outside = Path(server.data_dir).parent / f"outside-{os.getpid()}-{time.monotonic_ns()}"
    outside.mkdir()
    (outside / "doc.txt").write_bytes(b"precious")
    Path(vol["path"], "flip").symlink_to(outside)
    stop = threading.Event()

    def flip() -> None:  # "d" is the folder, then the symlink, then the folder...: one atomic exchange each
        with closing(os.open(vol["path"], os.O_RDONLY | os.O_DIRECTORY)) as top:
            while not stop.is_set():
                renameat2(top, b"d", top, b"flip", RENAME_EXCHANGE)

    flipper = threading.Thread(target=flip)
    flipper.start()
    outcomes: list[int | str] = []
    try:
        client, csrf = _logged_in(server)
        for _ in range(20):
            posted = client.post(
                f"/snapshots/{snap_id}/files/restore", data={"csrf": csrf, "path": "d/doc.txt", "to_path": "d/doc.txt"}
            )
            outcomes.append(
                _job(api, posted.headers["location"])["status"] if posted.status_code == 303 else posted.status_code
            )
    finally:
        stop.set()
        flipper.join()
        assert sorted(os.listdir(outside)) == ["doc.txt"] and (outside / "doc.txt").read_bytes() == b"precious"
        for entry in outside.iterdir():
            entry.unlink()
        outside.rmdir()
    assert set(outcomes) <= {"succeeded", "failed", 422}, outcomes
    assert "succeeded" in outcomes or 422 in outcomes


@BTRFS
def test_a_tenant_user_gets_404_for_another_tenants_snapshot_files(server: Server) -> None:
    api = server.client()
    tag = uuid.uuid4().hex[:8]
    mine = api.post("/api/v1/tenants", json={"name": f"mine-{tag}"}).json()
    theirs = api.post("/api/v1/tenants", json={"name": f"theirs-{tag}"}).json()
    made = api.post("/api/v1/volumes", json={"name": f"theirs-{tag}", "size_limit": "64M", "tenant": theirs["id"]})
    assert made.status_code == 201, made.text
    vol = made.json()
    Path(vol["path"], "secret.txt").write_bytes(b"theirs")
    snap_id = _snapshot(api, vol)
    own = api.post("/api/v1/volumes", json={"name": f"mine-{tag}", "size_limit": "64M", "tenant": mine["id"]}).json()
    Path(own["path"], "doc.txt").write_bytes(b"mine")
    own_snap = _snapshot(api, own)
    system = api.post("/api/v1/snapshots", params={"wait": 60}, json={"system": True, "name": f"sys-{tag}"}).json()
    assert system["status"] == "succeeded", system
    system_id = system["result"]["snapshot"]["id"]
    try:
        name = f"mine-op-{tag}"
        body = {"name": name, "password": PASSWORD, "role": "operator", "tenant": mine["id"]}
        assert api.post("/api/v1/users", json=body).status_code == 201
        client, csrf = _logged_in(server, name, PASSWORD)
        before = _tree(vol["path"])
        for snap, extra in ((snap_id, {}), (system_id, {"volume": vol["id"]}), (system_id, {"volume": vol["name"]})):
            for url in ("files", "files/download", "files/restore"):
                answer = client.get(f"/snapshots/{snap}/{url}", params={"path": "secret.txt", **extra})
                assert answer.status_code == 404, (snap, url, extra, answer.status_code)
                assert answer.content != b"theirs"
            data = {"csrf": csrf, "path": "secret.txt", **extra}
            posted = client.post(f"/snapshots/{snap}/files/restore", data=data)
            assert posted.status_code == 404, (snap, extra, posted.status_code)
        listing = client.get(f"/snapshots/{system_id}/files")
        assert listing.status_code in (200, 404) and vol["id"] not in listing.text
        into = {"path": "doc.txt", "to_volume": vol["name"], "to_path": "secret.txt"}  # its own file, their volume
        assert client.get(f"/snapshots/{own_snap}/files/restore", params=into).status_code == 404
        assert client.post(f"/snapshots/{own_snap}/files/restore", data={"csrf": csrf, **into}).status_code == 404
        assert _tree(vol["path"]) == before
    finally:
        api.delete(f"/api/v1/snapshots/{system_id}", params={"wait": 60})


@BTRFS
def test_a_viewer_is_not_shown_a_restore_confirmation(server: Server) -> None:
    """The confirmation tells whether a path exists in the live volume now; a viewer may not restore."""
    api = server.client()
    vol = _volume(api, {"doc.txt": b"v1"})
    snap_id = _snapshot(api, vol)
    client, _csrf = _logged_in(server, _user(server, "viewer"), PASSWORD)
    probe = client.get(f"/snapshots/{snap_id}/files/restore", params={"path": "doc.txt"})
    assert probe.status_code == 403, probe.status_code
    assert "overwritten" not in probe.text


def _confirmation_form(page: str) -> dict[str, str]:
    """The hidden fields of a restore confirmation page's POST form."""
    start = re.search(r'<form method="post" action="/snapshots/[^"]+/files/restore">', page)
    assert start, page
    form = page[start.start() : page.index("</form>", start.start())]
    return {k: html.unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form)}


@BTRFS
def test_a_restore_confirmed_as_creating_never_overwrites_what_a_user_put_there_since(server: Server) -> None:
    api = server.client()
    vol = _volume(api, {"doc.txt": b"v1"})
    snap_id = _snapshot(api, vol)
    client, _csrf = _logged_in(server)
    confirm = client.get(f"/snapshots/{snap_id}/files/restore", params={"path": "doc.txt", "to_path": "new.txt"})
    assert confirm.status_code == 200 and "it will be created" in confirm.text
    Path(vol["path"], "new.txt").write_bytes(b"a NAS user's own, written since")
    before, jobs_before = _tree(vol["path"]), _latest_job(api)
    posted = client.post(f"/snapshots/{snap_id}/files/restore", data=_confirmation_form(confirm.text))
    assert posted.status_code == 409, posted.text
    assert "new.txt" in posted.text
    assert _tree(vol["path"]) == before and _latest_job(api) == jobs_before
    again = client.get(f"/snapshots/{snap_id}/files/restore", params={"path": "doc.txt", "to_path": "new.txt"})
    assert "will be overwritten" in again.text  # confirmed again, for what is there now, it goes through
    done = client.post(f"/snapshots/{snap_id}/files/restore", data=_confirmation_form(again.text))
    assert _job(api, done.headers["location"])["status"] == "succeeded"
    assert Path(vol["path"], "new.txt").read_bytes() == b"v1"
