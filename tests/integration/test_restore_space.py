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
from snapkeep.model.types import SubjectType
from snapkeep.services.container import Services
from snapkeep.services.restores import CLONE_ALLOWANCE
from snapkeep.services.snapshots import TakeRequest
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
