"""A restore over the source answers first and frees the replaced data later, through the pool's durable
queue (``<pool>/trash``), which a restart finishes."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from snapkeep.model.principal import SYSTEM
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage.linux import syncfs
from snapkeep.storage.pool import Pool
from tests.conftest import Mounted, make_traversable_tmp, start_server, stop_server
from tests.integration.test_faults import many_files
from tests.integration.test_guards import wait_until
from tests.treeutil import users_entries

MiB = 1 << 20


def test_restore_over_source_returns_before_the_replaced_data_is_freed(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The freeing worker is held at its door (a hook around the real ``free_retired``): the restore still
    answers, with the replaced data queued; let go, the worker empties the queue."""
    volume = services.volumes.create("deferred", 1 << 30, who=SYSTEM)
    Path(volume.path, "kept.txt").write_text("in the snapshot\n")
    snap = services.snapshots.take(TakeRequest(ref=volume.id, name="base"), who=SYSTEM)
    Path(volume.path, "replaced.txt").write_text("only in the replaced data\n")
    at_door, let_go = threading.Event(), threading.Event()
    free_retired = services.pool.free_retired

    def held_at_the_door() -> list[str]:
        at_door.set()
        let_go.wait(30)
        return free_retired()

    monkeypatch.setattr(services.pool, "free_retired", held_at_the_door)
    try:
        services.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)
        assert users_entries(volume.path) == ["kept.txt"]
        assert at_door.wait(10), "the restore wakes the freeing worker"
        [queued] = services.pool.list_retired()
        # the replaced dataset (btrfs), or the replaced image's filesystem, still mounted aside (XFS)
        where = ["old"] if services.pool.is_image_volume(volume.dataset) else ["data", volume.dataset]
        replaced = Path(services.pool.root, "trash", queued, *where, "replaced.txt")
        assert replaced.read_text() == "only in the replaced data\n", "not freed when the restore answered"
    finally:
        let_go.set()
    wait_until(lambda: services.pool.list_retired() == [], "the worker frees the queue")
    assert os.listdir(os.path.join(services.pool.root, "staging")) == []


def free_bytes(path: str) -> int:
    syncfs(path)
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_replaced_data_queued_when_the_service_is_killed_is_freed_after_the_restart(fs: Mounted) -> None:
    """SIGKILL the service while the data a restore replaced (20,000 files and 160 MiB that only it holds)
    is queued; the restarted service frees it: the queue empties and the space comes back."""
    data_dir = make_traversable_tmp("snapkeep-free-kill-")
    pool_dir = fs.new_dir("free-kill-pool")
    server = start_server(data_dir, pool_dir)
    trash = os.path.join(pool_dir, "trash")
    try:
        with server.client() as api:
            volume = api.post("/api/v1/volumes", json={"name": "v", "size_limit": "1G"}).json()
            many_files(os.path.join(volume["path"], "many"), 20_000)
            snap = api.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": "v", "name": "s"}).json()
            with open(os.path.join(volume["path"], "big.bin"), "wb") as f:
                for _ in range(160):
                    f.write(os.urandom(MiB))
                os.fsync(f.fileno())  # into the pool (an XFS volume's image) before the pool's space is read
            with_big = free_bytes(pool_dir)
            restore = f"/api/v1/snapshots/{snap['result']['snapshot']['id']}/restore"
            assert api.post(restore, json={"pre_restore": False}).status_code == 202
        deadline = time.monotonic() + 60
        while not os.listdir(trash):  # the replaced data is queued: stop the service before it frees it
            assert time.monotonic() < deadline and server.process.poll() is None, "nothing was queued"
        os.kill(server.process.pid, signal.SIGSTOP)
        caught = bool(os.listdir(trash))
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        assert caught, "the service was stopped only after it had freed the queue"
        [queued] = os.listdir(trash)
        assert not os.path.exists(os.path.join(volume["path"], "big.bin"))

        server = start_server(data_dir, pool_dir)
        wait_until(lambda: os.listdir(trash) == [], "the restarted service frees the queue")
        assert Pool.open(pool_dir).list_staging() == []
        wait_until(lambda: free_bytes(pool_dir) >= with_big + 120 * MiB, "the space comes back", timeout=120)
        assert queued not in os.listdir(trash)
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)
