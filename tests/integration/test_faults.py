"""Faults: a full pool during snapshot and restore, a full data directory, and the service killed with
SIGKILL mid-operation."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from snapkeep.config import Settings
from snapkeep.errors import DataDirFull, PoolFull
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import SnapshotStatus
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage.pool import Pool
from tests.conftest import Mounted, Server, build_services, make_traversable_tmp, start_server, stop_server
from tests.treeutil import tree_signature, users_entries


def fill_up(directory: str) -> None:
    """Write until the filesystem refuses: first big files (data), then empty files (metadata)."""
    os.makedirs(directory, exist_ok=True)
    block = os.urandom(1 << 20)
    for size_name, chunk in (("big", block), ("small", block[:4096]), ("empty", b"")):
        for i in range(1_000_000):
            try:
                with open(os.path.join(directory, f"{size_name}-{i}"), "wb") as f:
                    for _ in range(64 if chunk is block else 1):
                        f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    os.sync()


def on_disk_signature(path: str) -> object:
    """The tree as it reached the disk. On a full pool an image volume's writeback fails, and buffered data
    that never landed reads differently once the kernel gives up on it (whatever snapkeep does), so the
    page cache is written out and dropped before reading."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    return tree_signature(path)


@pytest.fixture
def small_data_dir() -> Iterator[str]:
    """A data directory on a 32 MiB tmpfs of its own (few inodes), to fill up on purpose; unmounted after."""
    path = make_traversable_tmp("snapkeep-small-data-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,nr_inodes=2048,mode=0755", "tmpfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", path], check=True)
        os.rmdir(path)


def test_full_data_directory_refuses_take_and_extract_and_changes_nothing(
    small_fs: Mounted, small_data_dir: str
) -> None:
    """The service's own disk full (the catalog's and the intent files'), not the pool's: a quiesced take and
    a file restore are refused as ``data_dir_full``, with nothing held, staged or changed in the volume and
    no half-written intent; once space is freed, both work."""
    pool = Pool.open(small_fs.new_dir("pool"))
    settings = Settings(data_dir=small_data_dir, pool_dir=pool.root, sweep_interval=3600, restore_min_free_mib=16)
    services = Services.build(settings, pool)
    try:
        vol = services.volumes.create("docs", 1 << 30, who=SYSTEM)
        with open(os.path.join(vol.path, "a.txt"), "w") as f:
            f.write("snapshot\n")
        snap = services.snapshots.take(TakeRequest(ref=vol.id, name="before"), who=SYSTEM)
        with open(os.path.join(vol.path, "a.txt"), "w") as f:
            f.write("changed\n")
        before = tree_signature(vol.path)
        filler = os.path.join(small_data_dir, "filler")
        fill_up(filler)

        with pytest.raises(DataDirFull):
            services.snapshots.take(TakeRequest(ref=vol.id, name="quiesced", quiesce=True), who=SYSTEM)
        with pytest.raises(DataDirFull):
            services.files.extract(snap.id, "a.txt", pre_restore=False, who=SYSTEM)
        assert tree_signature(vol.path) == before
        assert os.listdir(services.settings.run_dir) == []  # no intent left, not even a temporary file
        assert os.listdir(os.path.join(pool.root, "staging")) == []

        shutil.rmtree(filler)
        taken = services.snapshots.take(TakeRequest(ref=vol.id, name="quiesced", quiesce=True), who=SYSTEM)
        assert taken.status is SnapshotStatus.READY and taken.quiesced
        services.files.extract(snap.id, "a.txt", pre_restore=False, who=SYSTEM)
        with open(os.path.join(vol.path, "a.txt")) as f:
            assert f.read() == "snapshot\n"
    finally:
        services.close()


@pytest.mark.parametrize("small_fs", ["btrfs", "xfs"], indirect=True)
def test_full_pool_during_snapshot_and_restore(small_fs: Mounted, tmp_path: object) -> None:
    pool = Pool.open(small_fs.new_dir("pool"))
    services = build_services(make_traversable_tmp("snapkeep-full-"), pool)
    try:
        vol = services.volumes.create("full", 1 << 30, who=SYSTEM)
        for i in range(200):
            with open(os.path.join(vol.path, f"f{i}"), "w") as f:
                f.write(f"file {i}\n")
        good = services.snapshots.take(TakeRequest(ref=vol.id, name="before-full"), who=SYSTEM)
        with open(os.path.join(vol.path, "f0"), "w") as f:
            f.write("changed\n")
        fill_up(os.path.join(vol.path, "filler"))

        with pytest.raises(PoolFull):
            for i in range(50):  # btrfs keeps metadata reserves: a few snapshots may still fit
                services.snapshots.take(TakeRequest(ref=vol.id, name=f"while-full-{i}"), who=SYSTEM)
        failed = [s for s in services.snapshots.listing(vol.id, who=SYSTEM) if s.status is SnapshotStatus.FAILED]
        assert len(failed) == 1 and "full" in (failed[0].status_reason or "")
        assert pool.list_staging() == []
        assert failed[0].id not in pool.list_snapshots()

        for _ in range(50):
            state = on_disk_signature(vol.path)
            try:
                services.restores.over_source(good.id, RestoreOptions(pre_restore=False), SYSTEM)
            except PoolFull:
                assert on_disk_signature(vol.path) == state, "a failed restore changed the volume"
                break
            with open(os.path.join(vol.path, "f0")) as f:
                assert f.read() == "file 0\n"
            fill_up(os.path.join(vol.path, "filler-again"))
        else:
            pytest.fail("the restore never ran out of space")
        assert pool.list_staging() == []
    finally:
        services.close()


def many_files(root: str, count: int) -> None:
    for d in range(count // 1000):
        os.makedirs(os.path.join(root, f"d{d}"))
        for i in range(1000):
            with open(os.path.join(root, f"d{d}", f"f{i}"), "w") as f:
                f.write(f"{d}/{i}\n")


def kill_mid_operation(server: Server, staging: str, timeout: float = 10.0) -> bool:
    """SIGKILL the service while its operation has work in ``staging`` (stopped with SIGSTOP first, so the
    kill lands mid-operation); True if it was caught there, False if it finished before it could be."""
    return kill_when(server, lambda: bool(os.listdir(staging)), timeout)


def kill_when(server: Server, busy: Callable[[], bool], timeout: float = 10.0) -> bool:
    """SIGKILL the service as soon as ``busy()`` (stopped with SIGSTOP first, so the kill lands while it
    still is); True if it was caught so, False if the operation ended before it could be."""
    deadline = time.monotonic() + timeout
    caught = False
    while time.monotonic() < deadline and server.process.poll() is None:
        if busy():
            os.kill(server.process.pid, signal.SIGSTOP)
            caught = busy()
            break
        time.sleep(0.0002)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    return caught


def test_sigkill_during_snapshot_and_restore_then_restart(fs: Mounted) -> None:
    """Kill the service while it captures 20,000 files, and again while it restores them (caught in the act
    when the work takes long enough); after each restart nothing is orphaned and the volume is whole (old or
    new, never half)."""
    data_dir = make_traversable_tmp("snapkeep-kill-")
    pool_dir = fs.new_dir("kill-pool")
    server = start_server(data_dir, pool_dir)
    try:
        with server.client() as api:
            vol = api.post("/api/v1/volumes", json={"name": "busy", "size_limit": "1G"}).json()
            many_files(vol["path"], 20_000)
            original = tree_signature(vol["path"])
            job = api.post("/api/v1/snapshots", json={"volume": "busy", "name": "killed"}).json()
        kill_mid_operation(server, os.path.join(pool_dir, "staging"))  # btrfs and XFS images: one clone

        server = start_server(data_dir, pool_dir)
        with server.client() as api:
            assert api.get(f"/api/v1/jobs/{job['id']}").json()["status"] in ("failed", "succeeded")
            snaps = api.get("/api/v1/snapshots", params={"volume": "busy"}).json()
            assert len(snaps) == 1 and snaps[0]["status"] in ("ready", "failed")
            pool = Pool.open(pool_dir)
            assert pool.list_staging() == []
            if snaps[0]["status"] == "ready":
                with pool.snapshot_tree(snaps[0]["id"], f"volume-{vol['id']}") as frozen:
                    assert tree_signature(frozen) == original
            else:
                assert snaps[0]["id"] not in pool.list_snapshots()
                done = api.post(
                    "/api/v1/snapshots", params={"wait": 60}, json={"volume": "busy", "name": "complete"}
                ).json()
                assert done["status"] == "succeeded", done
                snaps = api.get("/api/v1/snapshots", params={"volume": "busy", "name": "complete"}).json()
            good_id = snaps[0]["id"]

            with open(os.path.join(vol["path"], "d0", "f0"), "w") as f:
                f.write("changed after the snapshot\n")
            changed = tree_signature(vol["path"])
            api.post(f"/api/v1/snapshots/{good_id}/restore", json={"pre_restore": False})
        kill_mid_operation(server, os.path.join(pool_dir, "staging"))

        server = start_server(data_dir, pool_dir)
        with server.client() as api:
            assert api.get("/api/v1/health").status_code == 200
        assert Pool.open(pool_dir).list_staging() == []
        assert tree_signature(vol["path"]) in (original, changed)
        assert Pool.open(pool_dir).list_datasets() == [f"volume-{vol['id']}"]
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_sigkill_during_extract_then_restart(fs: Mounted) -> None:
    """Kill the service while it extracts a folder of 20,000 files over the live one; after the restart the
    private staging folder is gone (found from its intent file, not by walking the volume) and the folder is
    whole: the old one or the snapshot's, never a mix."""
    data_dir = make_traversable_tmp("snapkeep-kill-extract-")
    pool_dir = fs.new_dir("kill-extract-pool")
    server = start_server(data_dir, pool_dir)
    try:
        with server.client() as api:
            vol = api.post("/api/v1/volumes", json={"name": "shared", "size_limit": "1G"}).json()
            big = os.path.join(vol["path"], "big")
            many_files(big, 20_000)
            original = tree_signature(big)
            taken = api.post("/api/v1/snapshots", params={"wait": 60}, json={"volume": "shared", "name": "s"}).json()
            assert taken["status"] == "succeeded", taken
            with open(os.path.join(big, "d0", "f0"), "w") as f:
                f.write("changed after the snapshot\n")
            changed = tree_signature(big)
            snap_id = taken["result"]["snapshot"]["id"]
            answer = api.post(f"/api/v1/snapshots/{snap_id}/extract", json={"path": "big"})
            assert answer.status_code == 202, answer.text

        def staging() -> list[str]:
            return [n for n in os.listdir(vol["path"]) if n.startswith(".snapkeep-restore-")]

        assert kill_when(server, lambda: bool(staging())), "copying 20,000 files takes long enough to be caught"
        assert staging() and glob.glob(os.path.join(data_dir, "run", "extract-*.json"))

        server = start_server(data_dir, pool_dir)
        with server.client() as api:
            assert api.get("/api/v1/health").status_code == 200
        leftovers = [os.path.join(d, n) for d, dirs, _ in os.walk(vol["path"]) for n in dirs if "snapkeep-restore" in n]
        assert leftovers == [] and users_entries(vol["path"]) == ["big"]
        assert glob.glob(os.path.join(data_dir, "run", "extract-*.json")) == []
        assert tree_signature(big) in (original, changed)
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)
