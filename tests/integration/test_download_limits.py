"""Downloads out of snapshots against a caller who opens many and reads nothing: readers of one snapshot
share one read-only mount of its image (XFS pools), one caller holds at most ``downloads_per_caller``
downloads, the host at most ``snapshot_mounts`` images mounted for them, and a download whose client takes
nothing for ``download_stall_seconds`` is closed. What a refusal leaves is checked in the kernel's own
tables: the mounts of the server's mount namespace (``/proc/self/mountinfo``, shared with this process) and
the loop devices (``losetup``).

A server of this module's own runs with small limits, so that reaching them takes a few requests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Mounted, Server, make_traversable_tmp, start_server, stop_server
from tests.integration.test_ui_flows import _snapshot, _volume
from tests.integration.test_ui_login import PASSWORD, _logged_in, _user

PER_CALLER, MOUNTS, STALL = 2, 3, 20
XFS = pytest.mark.parametrize("fs", ["xfs"], indirect=True)  # only image volumes are mounted to be read
BOTH = pytest.mark.parametrize("fs", ["btrfs", "xfs"], indirect=True)  # the per-caller limit holds on every pool
BIG = 256 << 20  # sparse: far more than the socket buffers between the server and a client that reads nothing


@pytest.fixture(scope="module")
def limited(fs: Mounted) -> Iterator[Server]:
    data_dir = make_traversable_tmp("snapkeep-data-")
    limits = {"downloads_per_caller": str(PER_CALLER), "snapshot_mounts": str(MOUNTS)}
    srv = start_server(data_dir, fs.new_dir("limited-pool"), download_stall_seconds=str(STALL), **limits)
    yield srv
    stop_server(srv)
    shutil.rmtree(data_dir, ignore_errors=True)


def _browse_mounts(server: Server) -> set[str]:
    """Where snapshots of the server's pool are mounted to be read (mountpoints: a second mount of an image
    already on a loop device reuses that device, so devices would not count mounts)."""
    browsing = os.path.join(os.path.realpath(server.pool_dir), "staging", "browse-")
    with open("/proc/self/mountinfo") as f:
        return {fields[4] for fields in map(str.split, f) if fields[4].startswith(browsing)}


def _snapshot_loops(server: Server) -> list[str]:
    """Loop devices backed by a file of the server's pool other than a live volume's image (a snapshot's,
    also once deleted)."""
    pool = os.path.realpath(server.pool_dir)
    listed = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], capture_output=True, text=True, check=True
    )
    found = []
    for line in listed.stdout.splitlines():
        name, _sep, backing = line.strip().partition(" ")
        backing = backing.strip()
        if backing.startswith(pool + "/") and not backing.startswith(os.path.join(pool, "datasets", "")):
            found.append(f"{name} {backing}")
    return found


def _eventually(check: Callable[[], bool]) -> bool:
    """Whether ``check`` holds within ~30 s: the server notices a client gone at its next write, and lets
    the mount go right after; a bound on a wait on a busy machine, not a speed requirement."""
    for _ in range(300):
        if check():
            return True
        time.sleep(0.1)
    return check()


def _big_snapshot(api: httpx.Client) -> tuple[dict[str, Any], str]:
    vol = _volume(api, {"small.txt": b"small"})
    with open(Path(vol["path"], "big.bin"), "wb") as f:
        f.truncate(BIG)
    return vol, _snapshot(api, vol)


def _hold(held: ExitStack, client: httpx.Client, snap_id: str) -> tuple[Iterator[bytes], int]:
    """A download opened and its first chunk read, then left unread: it stays open until ``held`` closes
    (and while the caller keeps the iterator of the rest: dropping it closes the connection). Returns that
    iterator, and how many bytes were read."""
    url = f"/snapshots/{snap_id}/files/download"
    answer = held.enter_context(client.stream("GET", url, params={"path": "big.bin"}))
    assert answer.status_code == 200, answer.read()
    chunks = answer.iter_raw()
    return chunks, len(next(chunks))


def _viewer(server: Server) -> httpx.Client:
    client, _csrf = _logged_in(server, _user(server, "viewer"), PASSWORD)
    return client


def _all_let_go(server: Server) -> None:
    assert _eventually(lambda: not _browse_mounts(server)), _browse_mounts(server)
    assert _eventually(lambda: not _snapshot_loops(server)), _snapshot_loops(server)


@XFS
def test_concurrent_downloads_of_one_snapshot_share_one_mount(limited: Server) -> None:
    api = limited.client()
    _vol, snap_id = _big_snapshot(api)
    readers = [_viewer(limited) for _ in range(2)]
    with ExitStack() as held:
        opened = [_hold(held, client, snap_id) for client in readers for _ in range(PER_CALLER)]
        assert len(opened) == 4 and len(_browse_mounts(limited)) == 1  # four open downloads, one mount
        assert len(_snapshot_loops(limited)) == 1
        assert api.get(f"/api/v1/snapshots/{snap_id}/files").status_code == 200  # a browse meanwhile shares it
        assert len(_browse_mounts(limited)) == 1
    _all_let_go(limited)


@BOTH
def test_a_caller_past_its_limit_is_refused_while_another_caller_still_downloads(limited: Server) -> None:
    api = limited.client()
    _vol, snap_id = _big_snapshot(api)
    greedy, other = _viewer(limited), _viewer(limited)
    with ExitStack() as held:
        opened = [_hold(held, greedy, snap_id) for _ in range(PER_CALLER)]
        assert len(opened) == PER_CALLER
        mounts = _browse_mounts(limited)
        refused = greedy.get(f"/snapshots/{snap_id}/files/download", params={"path": "small.txt"})
        assert refused.status_code == 429, refused.text
        assert "too_many_downloads" in refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert _browse_mounts(limited) == mounts  # the refusal mounted nothing
        got = other.get(f"/snapshots/{snap_id}/files/download", params={"path": "small.txt"})
        assert got.status_code == 200 and got.content == b"small"
    _all_let_go(limited)
    again = greedy.get(f"/snapshots/{snap_id}/files/download", params={"path": "small.txt"})
    assert again.status_code == 200 and again.content == b"small"  # its downloads ended: its slots are free


@XFS
def test_the_host_wide_limit_on_mounted_snapshots_holds(limited: Server) -> None:
    api = limited.client()
    snaps = [_big_snapshot(api)[1] for _ in range(MOUNTS + 1)]
    callers = [_viewer(limited) for _ in range(MOUNTS)]
    late = _viewer(limited)
    with ExitStack() as held:
        opened = [_hold(held, client, snap_id) for client, snap_id in zip(callers, snaps, strict=False)]
        assert len(opened) == MOUNTS and len(_browse_mounts(limited)) == MOUNTS
        refused = late.get(f"/snapshots/{snaps[-1]}/files/download", params={"path": "small.txt"})
        assert refused.status_code == 503, refused.text
        assert "snapshot_mounts_full" in refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert len(_browse_mounts(limited)) == MOUNTS and len(_snapshot_loops(limited)) == MOUNTS
        shared = late.get(f"/snapshots/{snaps[0]}/files/download", params={"path": "small.txt"})
        assert shared.status_code == 200 and shared.content == b"small"  # a mounted one needs no new mount
        listed = api.get(f"/api/v1/snapshots/{snaps[-1]}/files")  # browsing is brief: not limited
        assert listed.status_code == 200 and "big.bin" in listed.text
        assert len(_browse_mounts(limited)) == MOUNTS
    _all_let_go(limited)
    got = callers[0].get(f"/snapshots/{snaps[-1]}/files/download", params={"path": "small.txt"})
    assert got.status_code == 200 and got.content == b"small"


def _connected(server: Server, client_port: int) -> bool:
    """Whether the server still has the connection from ``client_port`` (in any state but closed)."""
    server_port = server.url.rsplit(":", 1)[1]
    listed = subprocess.run(
        ["ss", "--tcp", "--numeric", "--no-header", f"( sport = :{server_port} and dport = :{client_port} )"],
        capture_output=True,
        text=True,
        check=True,
    )
    return bool(listed.stdout.strip())


@XFS
def test_a_download_whose_client_reads_nothing_is_closed_and_lets_its_mount_go(limited: Server) -> None:
    """Closed twice over: the server stops waiting to send (the mount goes), and the kernel drops the
    connection, whose unread data would otherwise stay queued for as long as the client keeps it."""
    api = limited.client()
    _vol, snap_id = _big_snapshot(api)
    client = _viewer(limited)
    with client.stream("GET", f"/snapshots/{snap_id}/files/download", params={"path": "big.bin"}) as answer:
        assert answer.status_code == 200
        client_port = answer.extensions["network_stream"].get_extra_info("client_addr")[1]
        assert len(_browse_mounts(limited)) == 1 and _connected(limited, client_port)
        started = time.monotonic()
        assert _eventually(lambda: not _browse_mounts(limited) or time.monotonic() - started > 3 * STALL)
        assert not _browse_mounts(limited)  # closed by the server, the client still connected
        assert _eventually(lambda: not _connected(limited, client_port) or time.monotonic() - started > 3 * STALL)
        assert not _connected(limited, client_port)  # and the connection with it, though nothing was read
        with pytest.raises(httpx.HTTPError):
            for _chunk in answer.iter_raw():
                pass  # the connection ends before Content-Length
    _all_let_go(limited)


@XFS
def test_a_snapshot_deleted_while_shared_readers_read_it_is_read_to_its_end(limited: Server) -> None:
    api = limited.client()
    _vol, snap_id = _big_snapshot(api)
    readers = [_viewer(limited), _viewer(limited)]
    with ExitStack() as held:
        opened = [_hold(held, client, snap_id) for client in readers]
        assert len(_browse_mounts(limited)) == 1
        deleted = api.delete(f"/api/v1/snapshots/{snap_id}", params={"wait": 30})  # readers do not hold it
        assert deleted.status_code == 202 and deleted.json()["status"] == "succeeded", deleted.text
        gone = readers[0].get(f"/snapshots/{snap_id}/files/download", params={"path": "small.txt"})
        assert gone.status_code == 404  # a new reader does not find it, though its mount is still there
        for chunks, first in opened:
            assert first + sum(len(chunk) for chunk in chunks) == BIG
    _all_let_go(limited)
