"""Conformance of the pool on every driver: capture, restore, clone, delete, space, metadata kept."""

from __future__ import annotations

import os
import stat

import pytest

from snapkeep.errors import PoolError, UnsupportedFilesystem
from snapkeep.storage.pool import Pool
from tests.conftest import make_traversable_tmp
from tests.treeutil import make_rich_tree, tree_signature


def test_capture_is_point_in_time_and_read_back_exactly(pool: Pool) -> None:
    path = pool.create_dataset("d1")
    make_rich_tree(path)
    before = tree_signature(path)
    pool.capture("s1", ["d1"])
    pool.seal("s1", b"{}")
    with open(os.path.join(path, "big.bin"), "r+b") as f:
        f.write(b"changed after the snapshot")
    os.unlink(os.path.join(path, "dir", "a.txt"))
    with pool.snapshot_tree("s1", "d1") as frozen:
        assert tree_signature(frozen) == before
    assert pool.has_snapshot("s1")
    assert pool.list_staging() == []


def test_a_capture_with_one_copy_failing_leaves_nothing_once_discarded(pool: Pool) -> None:
    """The copies run at once: one failing (its dataset is gone) is reported after the others are made,
    and discarding the take removes every copy (on btrfs, read-only subvolumes in their lane directories)."""
    paths = [pool.create_dataset(f"at-once-{n}") for n in range(4)]
    for path in paths:
        make_rich_tree(path)
    before = [tree_signature(path) for path in paths]
    with pytest.raises(PoolError, match="capturing snapshot s-fails"):
        pool.capture("s-fails", ["at-once-0", "at-once-1", "at-once-gone", "at-once-2", "at-once-3"])
    staged = os.listdir(os.path.join(pool.staging_dir("s-fails"), "data"))
    made = {name.removesuffix(".lane").removesuffix(".xfs") for name in staged}  # btrfs lanes, XFS images
    assert made >= {f"at-once-{n}" for n in range(4)}, "every other copy was made before the error came up"
    pool.discard("s-fails")
    assert pool.list_staging() == [] and not pool.has_snapshot("s-fails")
    assert [tree_signature(path) for path in paths] == before


def test_restore_in_place_equals_snapshot_and_frees_old_data(pool: Pool) -> None:
    path = pool.create_dataset("d2")
    make_rich_tree(path)
    expected = tree_signature(path)
    pool.capture("s2", ["d2"])
    pool.seal("s2", b"{}")
    with open(os.path.join(path, "new-file"), "w") as f:
        f.write("created after")
    os.chmod(os.path.join(path, "dir"), 0o700)
    pool.restore_dataset("s2", "d2", "op-restore")
    assert tree_signature(path) == expected
    assert pool.list_staging() == []


def test_clone_is_writable_and_independent(pool: Pool) -> None:
    path = pool.create_dataset("d3")
    make_rich_tree(path)
    pool.capture("s3", ["d3"])
    pool.seal("s3", b"{}")
    clone = pool.clone_dataset("s3", "d3", "d3-clone")
    assert tree_signature(clone) == tree_signature(path)
    with open(os.path.join(clone, "dir", "a.txt"), "w") as f:
        f.write("only in the clone")
    with open(os.path.join(path, "dir", "a.txt")) as f:
        assert f.read() != "only in the clone"


def test_delete_snapshot_is_idempotent_and_complete(pool: Pool) -> None:
    pool.create_dataset("d4")
    pool.capture("s4", ["d4"])
    pool.seal("s4", b"{}")
    pool.delete_snapshot("s4")
    pool.delete_snapshot("s4")
    assert "s4" not in pool.list_snapshots()
    assert pool.list_staging() == []


def test_space_counts_shared_then_exclusive_bytes(pool: Pool) -> None:
    path = pool.create_dataset("d5")
    data = os.urandom(4 << 20)
    with open(os.path.join(path, "f.bin"), "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
    pool.capture("s5", ["d5"])
    pool.seal("s5", b"{}")
    shared = pool.space("s5")
    assert shared.shared_bytes >= 4 << 20
    assert shared.exclusive_bytes == 0
    with open(os.path.join(path, "f.bin"), "r+b") as f:
        f.write(os.urandom(4 << 20))
        os.fsync(f.fileno())
    alone = pool.space("s5")
    assert alone.exclusive_bytes >= 4 << 20


def test_unsupported_filesystem_is_refused_with_a_clear_message() -> None:
    path = make_traversable_tmp("snapkeep-not-cow-")
    try:
        with pytest.raises(UnsupportedFilesystem, match="btrfs or XFS with reflink"):
            Pool.open(os.path.join(path, "pool"))
        slow = Pool.open(os.path.join(path, "pool"), allow_slow_copy=True)
        assert slow.driver.slow and "slow" in slow.driver.name
    finally:
        import shutil

        shutil.rmtree(path)


def test_dataset_mode_is_traversable(pool: Pool) -> None:
    path = pool.create_dataset("d6")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
