"""A service refuses a pool directory that does not hold its catalog's pool (services/pool_binding.py), on
real disks: the pool's own filesystem mounted at the pool directory, as an operator mounts a disk there.

When the disk is not mounted, the directory is an empty folder of the filesystem beneath, which can hold a
pool (the session's btrfs or XFS filesystem): a service that opened it made a new pool there and served its
catalog's volumes over a pool without their data. Now it exits at once, having made nothing there, and
serves again once the disk is back. Another snapkeep pool's disk in its place is refused the same way. A
catalog and a pool from before pool ids are bound at the first start.

Then the order of the start on a filesystem that cannot hold a pool (a Debian root's ext4): every refusal
comes before anything is made, and is ``wrong_pool``, not "unsupported filesystem"; a loop pool's missing
image is not made again.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing

import pytest

from snapkeep.api import server as server_module
from snapkeep.config import Settings
from snapkeep.errors import WrongPool
from snapkeep.services.container import open_catalog
from snapkeep.services.pool_binding import BOUND_TO, EPOCH
from snapkeep.storage import loopfs
from snapkeep.storage.detect import BTRFS_MAGIC, XFS_MAGIC, filesystem_magic
from snapkeep.storage.pool import POOL_EPOCH, POOL_FILE, POOL_ID, Pool, read_marker
from tests.conftest import Mounted, Server, free_port, make_traversable_tmp, require, start_server, stop_server


class Disk:
    """A filesystem image of the pool's own, mounted at a folder of the session's filesystem of its kind."""

    def __init__(self, fs: Mounted, mountpoint: str) -> None:
        self.image = os.path.join(make_traversable_tmp("snapkeep-pool-disk-"), "disk.img")
        self.mountpoint = mountpoint
        loopfs.make_filesystem(self.image, "2G", fs.fstype)
        self.attach()

    def attach(self) -> None:
        loopfs.mount_loop(self.image, self.mountpoint)

    def detach(self) -> None:
        """Unmount it and all beneath (XFS: the volumes and the pool's bind mount of itself)."""
        while loopfs.is_mountpoint(self.mountpoint):
            loopfs.run(["umount", "--recursive", "--", self.mountpoint])


@pytest.fixture
def disks(fs: Mounted) -> Iterator[list[Disk]]:
    made: list[Disk] = []
    yield made
    for disk in made:
        disk.detach()
        shutil.rmtree(os.path.dirname(disk.image), ignore_errors=True)


def serve_once(server: Server) -> subprocess.CompletedProcess[str]:
    """``snapkeep serve`` as ``server`` was started, expected to exit."""
    return subprocess.run(
        [sys.executable, "-m", "snapkeep.cli.main", "serve"],
        env={**server.env, "SNAPKEEP_LISTEN": f"127.0.0.1:{free_port()}"},
        capture_output=True,
        text=True,
        timeout=30,  # a refusal comes at once; a service that starts instead is killed by then
    )


def marker_id(root: str) -> str:
    marker = read_marker(root)
    assert marker is not None
    return str(marker[POOL_ID])


def as_before_ids(data_dir: str, pool_dir: str) -> None:
    """The catalog and the pool as a snapkeep from before pool ids left them."""
    write_marker(pool_dir, pool_id=None, epoch=None)
    with closing(sqlite3.connect(os.path.join(data_dir, "catalog.db"))) as catalog, catalog:
        catalog.execute("DELETE FROM catalog_meta WHERE key IN (?, ?)", (BOUND_TO, EPOCH))


def write_marker(pool_dir: str, **fields: object) -> None:
    """The pool's marker with ``fields`` changed (None: removed)."""
    marker = read_marker(pool_dir)
    assert marker is not None
    changed = {
        POOL_ID: fields.get("pool_id", marker.get(POOL_ID)),
        POOL_EPOCH: fields.get("epoch", marker.get(POOL_EPOCH)),
    }
    marker = {key: value for key, value in (marker | changed).items() if value is not None}
    with open(os.path.join(pool_dir, POOL_FILE), "w") as f:
        json.dump(marker, f)


def catalog_meta(data_dir: str, key: str) -> str | None:
    with closing(sqlite3.connect(os.path.join(data_dir, "catalog.db"))) as catalog:
        row = catalog.execute("SELECT value FROM catalog_meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def epochs(data_dir: str, pool_dir: str) -> tuple[object, object]:
    """The epoch in the pool's marker and in the catalog."""
    marker = read_marker(pool_dir)
    assert marker is not None
    return marker.get(POOL_EPOCH), int(catalog_meta(data_dir, EPOCH) or 0)


def volumes(server: Server) -> list[str]:
    with server.client() as api:
        return [volume["name"] for volume in api.get("/api/v1/volumes").json()]


def tree(path: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(top, name), path) for top, dirs, files in os.walk(path) for name in dirs + files
    )


def test_a_pool_whose_disk_is_missing_or_another_is_refused(fs: Mounted, disks: list[Disk], libvirtd: None) -> None:
    point = fs.new_dir("pool-mountpoint")
    disks.append(Disk(fs, point))
    data_dir = make_traversable_tmp("snapkeep-bound-data-")
    server = start_server(data_dir, point)
    try:
        with server.client() as api:
            assert api.post("/api/v1/volumes", json={"name": "kept", "size_limit": "64M"}).status_code == 201
        stop_server(server)
        as_before_ids(data_dir, point)
        server = start_server(data_dir, point)  # the first start of this version: the pool gets an id, the
        pool_id = marker_id(point)  # catalog is bound to it
        assert catalog_meta(data_dir, BOUND_TO) == pool_id and volumes(server) == ["kept"]
        assert epochs(data_dir, point) == (1, 1)
        stop_server(server)

        disks[0].detach()  # the disk not attached at the next boot
        assert os.listdir(point) == []
        refused = serve_once(server)
        assert refused.returncode == 4, refused.stderr
        assert "is the pool's disk mounted?" in refused.stderr and point in refused.stderr
        assert os.listdir(point) == [] and not loopfs.is_mountpoint(point)  # no pool made on the fs beneath

        disks[0].attach()
        server = start_server(data_dir, point)
        assert volumes(server) == ["kept"] and epochs(data_dir, point) == (2, 2)  # the refused start counted not
        stop_server(server)

        write_marker(point, epoch=1)  # as the copy of this pool left beneath a disk it was copied onto
        refused = serve_once(server)
        assert refused.returncode == 4, refused.stderr
        assert "older copy of the catalog's pool (epoch 1; the catalog last served epoch 2)" in refused.stderr
        assert epochs(data_dir, point) == (1, 2)
        write_marker(point, epoch=2)

        disks[0].detach()  # another host's pool disk put in its place
        disks.append(Disk(fs, point))
        other_data = make_traversable_tmp("snapkeep-other-data-")
        other = start_server(other_data, point)
        stop_server(other)
        shutil.rmtree(other_data, ignore_errors=True)
        other_id = marker_id(point)
        before = tree(point)
        refused = serve_once(server)
        assert refused.returncode == 4, refused.stderr
        assert f"another snapkeep pool ({other_id})" in refused.stderr and pool_id in refused.stderr
        assert tree(point) == before
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)


# --- the order of the service's start, on a filesystem that cannot hold a pool (as a Debian root's ext4) --
# ``serve`` itself, in this process, with what comes after the pool is opened left out: each refusal must
# come before anything is made, whatever the filesystem beneath the missing disk.


@pytest.fixture
def beneath() -> Iterator[str]:
    """A folder on a filesystem that cannot hold a pool, for data directories and unmounted mount points."""
    path = make_traversable_tmp("snapkeep-beneath-")
    require(filesystem_magic(path) not in (BTRFS_MAGIC, XFS_MAGIC), "a temporary folder that cannot hold a pool")
    yield path
    if loopfs.is_mountpoint(os.path.join(path, "data", "pool")):  # only if a refusal came too late
        loopfs.unmount(os.path.join(path, "data", "pool"))
    shutil.rmtree(path, ignore_errors=True)


def catalog_bound_to(settings: Settings, pool_id: str | None) -> None:
    """The catalog of ``settings``, made (and bound to ``pool_id``) as an earlier start left it."""
    os.makedirs(settings.data_dir, exist_ok=True)
    db = open_catalog(settings)
    try:
        if pool_id is not None:
            with db.unit() as uow:
                uow.meta.put(BOUND_TO, pool_id)
    finally:
        db.engine.dispose()


def start(settings: Settings, monkeypatch: pytest.MonkeyPatch, **flags: bool) -> list[Pool]:
    """``serve`` up to the pool opened; the pools it opened."""
    opened: list[Pool] = []
    monkeypatch.setattr(server_module, "_serve", lambda _settings, pool, _db, _rebuild: opened.append(pool))
    server_module.serve(settings, **flags)
    return opened


def test_a_missing_disk_above_a_filesystem_that_cannot_hold_a_pool_is_wrong_pool(
    beneath: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = os.path.join(beneath, "disk")  # a mount point, its disk not mounted
    os.mkdir(disk)
    settings = Settings(data_dir=os.path.join(beneath, "data"), pool_dir=os.path.join(disk, "pool"))
    catalog_bound_to(settings, "p-1")
    with pytest.raises(WrongPool, match="is the pool's disk mounted"):
        start(settings, monkeypatch)
    assert os.listdir(disk) == []  # not even the pool's folder
    with pytest.raises(WrongPool, match="to rebuild the catalog from"):
        start(settings, monkeypatch, rebuild_catalog=True)
    assert os.listdir(disk) == []


def test_a_rebuild_without_a_pool_makes_none(beneath: str, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = os.path.join(beneath, "disk")
    os.mkdir(disk)
    settings = Settings(data_dir=os.path.join(beneath, "data"), pool_dir=os.path.join(disk, "pool"))
    with pytest.raises(WrongPool, match="to rebuild the catalog from"):
        start(settings, monkeypatch, rebuild_catalog=True)  # a new catalog, the disk not mounted
    assert os.listdir(disk) == []


def test_a_loop_pool_whose_image_is_missing_is_not_made_again(beneath: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's way (``--create-loop-pool``): a catalog that describes a pool does not get a new, empty
    image when its own is missing, nor anything mounted; a rebuild neither."""
    data_dir = os.path.join(beneath, "data")
    settings = Settings(data_dir=data_dir)
    catalog_bound_to(settings, "p-1")
    with pytest.raises(WrongPool, match=r"pool\.img is missing, and with it the pool the catalog describes"):
        start(settings, monkeypatch, create_loop_pool=True)
    new = Settings(data_dir=os.path.join(beneath, "new"))
    catalog_bound_to(new, None)
    with pytest.raises(WrongPool, match=r"pool\.img is missing, and with it the pool the catalog is to be rebuilt"):
        start(new, monkeypatch, create_loop_pool=True, rebuild_catalog=True)
    for folder in (data_dir, os.path.join(beneath, "new")):  # not even the pool's folder
        assert sorted(os.listdir(folder)) == ["catalog.db", "service.lock"]


def test_another_pool_is_refused_before_its_lock_and_the_right_one_is_opened(
    beneath: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool_dir = os.path.join(beneath, "pool")
    settings = Settings(data_dir=os.path.join(beneath, "data"), pool_dir=pool_dir, allow_slow_copy=True)
    catalog_bound_to(settings, None)
    (opened,) = start(settings, monkeypatch)  # a new installation: the pool is made
    assert marker_id(pool_dir) == opened.identity
    catalog_bound_to(settings, opened.identity)
    other = os.path.join(beneath, "other-pool")
    os.rename(pool_dir, other)
    os.mkdir(pool_dir)
    with open(os.path.join(pool_dir, POOL_FILE), "w") as f:
        f.write('{"format_version": 2, "driver": "copy (slow)", "pool_id": "p-other"}')
    with pytest.raises(WrongPool, match=r"another snapkeep pool \(p-other\)"):
        start(settings, monkeypatch)
    assert os.listdir(pool_dir) == [POOL_FILE]  # no lock file, no layout
    shutil.rmtree(pool_dir)
    os.rename(other, pool_dir)
    assert [pool.identity for pool in start(settings, monkeypatch)] == [opened.identity]
