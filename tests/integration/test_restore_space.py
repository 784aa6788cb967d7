"""A restore on a pool without room for it is refused before it starts — :class:`PoolFull`, no pre-restore
snapshot, no clone, the volume as it was — and runs once there is room again. The pool is really full: its
filesystem is filled by a preallocated file beside it, on both drivers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from snapkeep.errors import PoolFull
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import JobStatus, SubjectType, Volume
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.space import CLONE_ALLOWANCE
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage.pool import Pool
from tests.treeutil import make_rich_tree, tree_signature

MiB = 1 << 20
MIN_FREE = 256 * MiB  # the default setting


@contextmanager
def filled(pool: Pool, leave: int) -> Iterator[None]:
    """The pool's filesystem filled by one preallocated file outside the pool until about ``leave`` bytes
    are free; the file goes after, whatever happens."""
    path = os.path.join(os.path.dirname(pool.root), f"filler-{uuid.uuid4().hex}")
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.posix_fallocate(fd, 0, pool.free_bytes() - leave)
        os.fsync(fd)  # btrfs counts the space once its transaction commits
        yield
    finally:
        os.close(fd)
        os.unlink(path)
        os.sync()  # and btrfs frees it once its transaction commits


def state(svc: Services, path: str) -> tuple[object, ...]:
    snapshots = sorted(s.name for s in svc.snapshots.listing(None, None, who=SYSTEM))
    return tree_signature(path), snapshots, sorted(svc.pool.list_datasets()), len(svc.volumes.list(who=SYSTEM))


def test_a_restore_without_room_is_refused_and_changes_nothing(services: Services) -> None:
    svc = services
    volume = svc.volumes.create(f"full-{uuid.uuid4().hex[:6]}", 64 * MiB, who=SYSTEM)
    make_rich_tree(volume.path)
    at_snapshot = tree_signature(volume.path)
    snap = svc.snapshots.take(TakeRequest(ref=volume.id, name="before"), who=SYSTEM)
    with open(os.path.join(volume.path, "later.txt"), "w") as f:
        f.write("written after the snapshot")
    before = state(svc, volume.path)

    with filled(svc.pool, MIN_FREE // 2):
        assert svc.pool.free_bytes() < MIN_FREE + CLONE_ALLOWANCE
        for options in (RestoreOptions(), RestoreOptions(pre_restore=False), RestoreOptions(as_new=True)):
            with pytest.raises(PoolFull) as refused:
                svc.restores.submit(snap.id, options, SYSTEM)
            assert "needs an estimated" in refused.value.message and "free space first" in refused.value.message
            run = svc.restores.as_new if options.as_new else svc.restores.over_source  # the job's own check
            with pytest.raises(PoolFull):
                run(snap.id, options, SYSTEM)
        with pytest.raises(PoolFull):  # what the confirmation page asks first
            svc.restores.preview(snap.id, RestoreOptions(), SYSTEM)
        assert state(svc, volume.path) == before

    result = svc.restores.over_source(snap.id, RestoreOptions(), SYSTEM)
    assert tree_signature(volume.path) == at_snapshot and result["pre_restore_snapshot_id"]


def test_one_tenant_out_of_a_system_snapshot_is_estimated_by_its_subtree(services: Services) -> None:
    """The tenant's own record holds no dataset: its estimate is its recorded volumes' (two, twice with the
    pre-restore snapshot), so room for two clones is not enough."""
    svc = services
    tenant = f"shop-{uuid.uuid4().hex[:6]}"
    svc.tenants.create(SYSTEM, tenant)
    for name in ("orders", "invoices"):
        svc.volumes.create(name, 16 * MiB, tenant=tenant, who=SYSTEM)
    snap = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name=f"all-{tenant}"), who=SYSTEM)
    options = RestoreOptions(member_type=SubjectType.TENANT, member=tenant)
    with filled(svc.pool, MIN_FREE + 2 * CLONE_ALLOWANCE), pytest.raises(PoolFull, match="4 dataset clone"):
        svc.restores.submit(snap.id, options, SYSTEM)


def test_a_whole_subtree_restore_is_estimated_by_all_it_holds_and_changes_nothing(services: Services) -> None:
    """A tenant's own system snapshot restored over its subtree clones every recorded dataset, twice with
    the pre-restore snapshot: refused with room for fewer, before anything is taken or removed."""
    svc = services
    tenant = f"shop-{uuid.uuid4().hex[:6]}"
    svc.tenants.create(SYSTEM, tenant)
    orders = svc.volumes.create(f"orders-{tenant}", 16 * MiB, tenant=tenant, who=SYSTEM)
    svc.volumes.create(f"invoices-{tenant}", 16 * MiB, tenant=tenant, who=SYSTEM)
    snap = svc.snapshots.take(TakeRequest(ref=tenant, subject_type="system", name="whole"), who=SYSTEM)
    svc.volumes.create(f"later-{tenant}", 16 * MiB, tenant=tenant, who=SYSTEM)  # the restore would remove it
    with open(os.path.join(orders.path, "later.txt"), "w") as f:
        f.write("written after the snapshot")
    before = state(svc, orders.path)

    with filled(svc.pool, MIN_FREE + 3 * CLONE_ALLOWANCE):  # room for 3: the subtree alone would fit
        with pytest.raises(PoolFull, match="4 dataset clone"):
            svc.restores.submit(snap.id, RestoreOptions(), SYSTEM)
        with pytest.raises(PoolFull, match="4 dataset clone"):  # the job's own check
            svc.restores.over_source(snap.id, RestoreOptions(), SYSTEM)
        assert state(svc, orders.path) == before

    svc.restores.over_source(snap.id, RestoreOptions(), SYSTEM)
    assert not os.path.exists(os.path.join(orders.path, "later.txt"))
    assert f"later-{tenant}" not in {v.name for v in svc.volumes.list(who=SYSTEM)}


def refused_as_job_and_directly(svc: Services, snap_id: str, path: str, target: Volume) -> PoolFull:
    """The extract is accepted (its space is measured in its job, not while the request waits), and its job
    fails with ``pool_full``; called directly, it raises it. The direct refusal, for its details."""
    svc.files.check_extract(snap_id, path, to_volume=target.id, who=SYSTEM)
    job = svc.files.submit_extract(snap_id, path, to_volume=target.id, params={}, who=SYSTEM)
    failed = svc.jobs.wait(job.id, 60, SYSTEM)
    assert failed.status is JobStatus.FAILED and (failed.error or {}).get("code") == "pool_full", failed
    with pytest.raises(PoolFull) as refused:
        svc.files.extract(snap_id, path, to_volume=target.id, who=SYSTEM)
    return refused.value


def test_a_file_restore_past_its_volume_limit_is_refused_and_changes_nothing(services: Services) -> None:
    """A folder restored into a volume whose size limit it would pass is refused before anything is written.
    Clones count against the limit (btrfs counts what a volume references) yet reserve nothing, so without
    the check a file restore on btrfs took a volume past its limit."""
    svc = services
    tag = uuid.uuid4().hex[:6]
    source = svc.volumes.create(f"src-{tag}", 64 * MiB, who=SYSTEM)
    os.mkdir(os.path.join(source.path, "docs"))
    content = {name: os.urandom(10 * MiB) for name in ("a.bin", "b.bin")}
    for name, data in content.items():
        with open(os.path.join(source.path, "docs", name), "wb") as f:
            f.write(data)
    snap = svc.snapshots.take(TakeRequest(ref=source.id, name="docs"), who=SYSTEM)
    small = svc.volumes.create(f"small-{tag}", 16 * MiB, who=SYSTEM)
    with open(os.path.join(small.path, "kept.txt"), "w") as f:
        f.write("the volume's own file")
    before = state(svc, small.path)

    refused = refused_as_job_and_directly(svc, snap.id, "docs", small)
    assert "left under its size limit" in refused.message
    assert refused.details["volume"] == small.name and refused.details["needed"] >= 20 * MiB
    assert state(svc, small.path) == before

    roomy = svc.volumes.create(f"roomy-{tag}", 64 * MiB, who=SYSTEM)
    svc.files.extract(snap.id, "docs", to_volume=roomy.id, who=SYSTEM)
    for name, data in content.items():
        with open(os.path.join(roomy.path, "docs", name), "rb") as f:
            assert f.read() == data


def test_a_file_restore_that_copies_needs_room_for_the_copy_in_the_pool(services: Services) -> None:
    """Where an extract copies its data (XFS pools: each volume has a filesystem of its own), the pool must
    hold the copy beyond its margin, or it is refused with nothing written; where it clones (btrfs), only
    metadata is new and the same extract runs on the same nearly full pool."""
    svc = services
    tag = uuid.uuid4().hex[:6]
    source = svc.volumes.create(f"src-{tag}", 128 * MiB, who=SYSTEM)
    data = os.urandom(48 * MiB)
    with open(os.path.join(source.path, "big.bin"), "wb") as f:
        f.write(data)
    snap = svc.snapshots.take(TakeRequest(ref=source.id, name="big"), who=SYSTEM)
    target = svc.volumes.create(f"target-{tag}", 128 * MiB, who=SYSTEM)
    before = state(svc, target.path)

    with filled(svc.pool, MIN_FREE + 24 * MiB):
        if svc.pool.driver.name == "btrfs":
            svc.files.extract(snap.id, "big.bin", to_volume=target.id, who=SYSTEM)
            with open(os.path.join(target.path, "big.bin"), "rb") as f:
                assert f.read() == data
            return
        assert "MiB copied" in refused_as_job_and_directly(svc, snap.id, "big.bin", target).message
        assert state(svc, target.path) == before
    svc.files.extract(snap.id, "big.bin", to_volume=target.id, who=SYSTEM)
    with open(os.path.join(target.path, "big.bin"), "rb") as f:
        assert f.read() == data


def test_a_folder_put_back_in_a_nearly_full_volume_is_charged_net_where_it_is_cloned(services: Services) -> None:
    """The usual recovery: a folder restored in place in a volume near its limit. Cloned (btrfs), it is
    charged net of what it replaces, which goes right after the swap: it runs. Copied (an XFS pool's image
    volume), the copy is written while the old folder is still there, and the volume's filesystem would run
    out half-way: refused first, nothing changed."""
    svc = services
    volume = svc.volumes.create(f"near-full-{uuid.uuid4().hex[:6]}", 48 * MiB, who=SYSTEM)
    os.mkdir(os.path.join(volume.path, "docs"))
    data = os.urandom(30 * MiB)
    with open(os.path.join(volume.path, "docs", "report.bin"), "wb") as f:
        f.write(data)
    snap = svc.snapshots.take(TakeRequest(ref=volume.id, name="docs"), who=SYSTEM)
    with open(os.path.join(volume.path, "docs", "report.bin"), "r+b") as f:
        f.write(b"damaged")  # the damage the restore undoes; the volume stays near its limit
    before = state(svc, volume.path)

    if svc.pool.driver.name != "btrfs":
        with pytest.raises(PoolFull, match="left under its size limit"):
            svc.files.extract(snap.id, "docs", who=SYSTEM)
        assert state(svc, volume.path) == before
        return
    svc.files.extract(snap.id, "docs", who=SYSTEM)
    with open(os.path.join(volume.path, "docs", "report.bin"), "rb") as f:
        assert f.read() == data
