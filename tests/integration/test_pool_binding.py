"""A service refuses a pool directory that does not hold its catalog's pool (services/pool_binding.py), on
real disks: the pool's own filesystem mounted at the pool directory, as an operator mounts a disk there.

When the disk is not mounted, the directory is an empty folder of the filesystem beneath, which can hold a
pool (the session's btrfs or XFS filesystem): a service that opened it made a new pool there and served its
catalog's volumes over a pool without their data. Now it exits at once, having made nothing there, and
serves again once the disk is back. Another snapkeep pool's disk in its place is refused the same way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from snapkeep.storage import loopfs
from snapkeep.storage.pool import POOL_ID, read_marker
from tests.conftest import Mounted, Server, free_port, make_traversable_tmp, start_server, stop_server


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
        timeout=60,
    )


def marker_id(root: str) -> str:
    marker = read_marker(root)
    assert marker is not None
    return str(marker[POOL_ID])


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
        pool_id = marker_id(point)
        stop_server(server)

        disks[0].detach()  # the disk not attached at the next boot
        assert os.listdir(point) == []
        refused = serve_once(server)
        assert refused.returncode == 4, refused.stderr
        assert "is the pool's disk mounted?" in refused.stderr and point in refused.stderr
        assert os.listdir(point) == [] and not loopfs.is_mountpoint(point)  # no pool made on the fs beneath

        disks[0].attach()
        server = start_server(data_dir, point)
        assert volumes(server) == ["kept"]
        stop_server(server)

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
