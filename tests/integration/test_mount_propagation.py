"""XFS image volumes whatever the host's mount propagation: restores work under a shared mount (systemd's
default), and a mount namespace made after a volume was mounted (libvirt's, one per guest) does not keep
that volume's filesystem, loop device and image alive after snapkeep unmounts it on the host."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.model.principal import SYSTEM
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage import images
from snapkeep.storage.pool import Pool
from tests.conftest import Mounted, build_services, make_traversable_tmp, mount_fs, unmount_fs
from tests.integration.test_guards import wait_until


def mount_targets(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split()[4] for line in f]


def loop_backing_files() -> list[str]:
    out = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "BACK-FILE"], capture_output=True, text=True, check=True
    )
    return [line.strip() for line in out.stdout.splitlines()]


@pytest.fixture
def shared_xfs() -> Iterator[Mounted]:
    """A small XFS filesystem whose mount is shared, as every mount beneath ``/`` is on a systemd host."""
    mounted = mount_fs("xfs", "2G")
    try:
        subprocess.run(["mount", "--make-shared", "--", mounted.mountpoint], check=True)
        yield mounted
    finally:
        unmount_fs(mounted)


def test_restore_in_place_works_when_the_pool_is_under_a_shared_mount(shared_xfs: Mounted) -> None:
    pool = Pool.open(shared_xfs.new_dir("pool"))
    svc = build_services(make_traversable_tmp("snapkeep-shared-data-"), pool)
    try:
        vol = svc.volumes.create("shared", 1 << 30, who=SYSTEM)
        assert pool.is_image_volume(vol.dataset)
        Path(vol.path, "f").write_text("in the snapshot\n")
        snap = svc.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
        Path(vol.path, "f").write_text("written after\n")
        svc.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)
        assert Path(vol.path, "f").read_text() == "in the snapshot\n"
        assert images.mounted_from(vol.path, images.image_of(vol.path))
    finally:
        svc.close()


@pytest.fixture
def guest_namespace() -> Iterator[Iterator[int]]:
    """Start processes each in a new mount namespace whose mounts are slaves of the host's (what libvirt
    makes for each QEMU); killed by pid afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> Iterator[int]:
        proc = subprocess.Popen(["unshare", "--mount", "--propagation", "slave", "sleep", "600"])
        started.append(proc)
        for _ in range(200):  # until sleep runs in the new namespace
            if os.readlink(f"/proc/{proc.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"):
                break
            time.sleep(0.01)
        yield proc.pid

    try:
        yield start()
    finally:
        for proc in started:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_volume_deleted_on_the_host_is_gone_from_a_namespace_made_while_it_was_mounted(
    fs: Mounted, guest_namespace: Iterator[int]
) -> None:
    if fs.fstype != "xfs":
        pytest.skip("only XFS pools mount their volumes")
    pool = Pool.open(fs.new_dir("pool"))
    path = pool.create_dataset("volume-pinned")
    image = images.image_of(path)
    assert any(f.startswith(image) for f in loop_backing_files())
    pid = next(guest_namespace)
    assert path in mount_targets(pid), "the namespace holds a copy of the volume's mount"
    pool.destroy_dataset("volume-pinned")
    assert path not in mount_targets(pid), "the host's unmount reached the namespace"
    assert not [f for f in loop_backing_files() if f.startswith(pool.root)], "its loop device is detached"


def test_a_namespace_made_while_a_volume_was_mounted_sees_its_restore_and_keeps_no_replaced_image(
    services: Services, guest_namespace: Iterator[int]
) -> None:
    """The replaced filesystem is unmounted in the namespace too (its loop device detaches once freed, so
    its space comes back), and the namespace sees the restored one."""
    vol = services.volumes.create("pinned-restore", 1 << 30, who=SYSTEM)
    if not services.pool.is_image_volume(vol.dataset):
        pytest.skip("only XFS pools mount their volumes")
    Path(vol.path, "f").write_text("in the snapshot\n")
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    Path(vol.path, "f").write_text("written after\n")
    pid = next(guest_namespace)
    services.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)
    assert Path(f"/proc/{pid}/root{vol.path}/f").read_text() == "in the snapshot\n"
    wait_until(lambda: services.pool.list_retired() == [], "the freeing worker frees the replaced image")
    wait_until(  # the last unmount of a filesystem lets go of its loop device after returning
        lambda: (
            [f for f in loop_backing_files() if f.startswith(services.pool.root + "/")] == [images.image_of(vol.path)]
        ),
        "only the live image has a loop device",
    )


def test_opening_the_pool_again_keeps_one_shared_bind_and_its_volumes_mounted(fs: Mounted) -> None:
    """What a crash leaves (the bind, the volumes mounted on it) is taken as it is by the next open."""
    if fs.fstype != "xfs":
        pytest.skip("only XFS pools bind-mount themselves")
    pool = Pool.open(fs.new_dir("pool"))
    path = pool.create_dataset("volume-reopened")
    Path(path, "f").write_text("kept\n")
    assert Pool.open(pool.root).mount_volumes() == []
    with open("/proc/self/mountinfo") as f:
        at_root = [line.split() for line in f if line.split()[4] == pool.root]
    assert len(at_root) == 1 and any(field.startswith("shared:") for field in at_root[0][6:]), at_root
    assert mount_targets("self").count(path) == 1 and Path(path, "f").read_text() == "kept\n"


def test_volumes_mounted_before_the_bind_are_mounted_again_on_it(fs: Mounted) -> None:
    """A pool whose volumes were mounted by a snapkeep that made no bind (an upgrade): the bind would hide
    them, still holding their images, so they are unmounted first and mounted again on the bind."""
    if fs.fstype != "xfs":
        pytest.skip("only XFS pools bind-mount themselves")
    root = fs.new_dir("pool")
    path = os.path.join(root, "datasets", "volume-upgraded")
    os.mkdir(os.path.dirname(path))
    images.make(images.image_of(path))
    images.ensure_mountpoint(path)
    images.mount(images.image_of(path), path)
    Path(path, "f").write_text("kept\n")
    pool = Pool.open(root)
    assert mount_targets("self").count(path) == 1 and Path(path, "f").read_text() == "kept\n"
    assert [f for f in loop_backing_files() if f.startswith(root + "/")] == [images.image_of(path)]
    pool.destroy_dataset("volume-upgraded")


def test_a_restore_undone_under_a_shared_mount_puts_the_volume_back(shared_xfs: Mounted) -> None:
    """``swap_back`` (a restore that fails after its swap) switches mounts too, so it must not move them."""
    pool = Pool.open(shared_xfs.new_dir("pool"))
    path = pool.create_dataset("volume-undone")
    Path(path, "f").write_text("in the snapshot\n")
    pool.prepare_capture("s", ["volume-undone"])
    pool.capture("s", ["volume-undone"])
    pool.seal("s", b"{}")
    Path(path, "f").write_text("live\n")
    pool.swap_in_snapshot("s", "volume-undone", "op")
    assert Path(path, "f").read_text() == "in the snapshot\n"
    pool.swap_back("volume-undone", "op")
    assert Path(path, "f").read_text() == "live\n"
    assert images.mounted_from(path, images.image_of(path)) and pool.list_staging() == []
    assert [f for f in loop_backing_files() if f.startswith(pool.root + "/")] == [images.image_of(path)]
    pool.destroy_dataset("volume-undone")
