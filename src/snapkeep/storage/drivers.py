"""Filesystem drivers: the copy-on-write primitives a pool is built on, one class per filesystem.

Contract of every driver (the conformance tests in ``tests/integration/test_pool.py`` run against each):

- ``make_dataset(path)`` creates an empty, writable dataset at a path that does not exist.
- ``remove_dataset(path)`` removes a dataset or a frozen copy; idempotent (a missing path is fine).
- ``frozen_copy(src, dst)`` makes a point-in-time copy of dataset ``src`` at the new path ``dst``; it
  costs metadata, not data (except in the labelled slow ``copy`` mode).
- ``writable_copy(src, dst)`` the same, writable, from a dataset or a frozen copy.
- ``set_size_limit(path, limit)`` makes writes into dataset ``path`` fail (ENOSPC/EDQUOT) past ``limit``
  bytes; works on a live dataset, also with a limit below what the dataset holds already (writes fail,
  deletes work). A driver that cannot enforce limits says so with ``limits_enforced = False`` and accepts
  the call as a no-op.
- ``room(path)`` says how many bytes dataset ``path`` may still take before its limit stops writes (None
  where it has no limit of its own): what a restore of single files checks first.
- ``enable_limits(root)`` prepares the filesystem of the pool at ``root`` for size limits when the pool is
  opened (idempotent) and returns ``None``, or why limits are not enforced on this pool.
- ``volume_images``: volumes on this driver are XFS filesystems in image files (``storage/images.py``),
  which the pool creates, mounts, freezes and clones itself; the methods above then see only the
  directories of VM datasets (and of volumes made before images, which keep working as directories).

They raise ``OSError`` as the kernel reports it; :class:`snapkeep.storage.pool.Pool` translates.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import ClassVar, Protocol

import btrfsutil

from snapkeep.errors import InvalidInput
from snapkeep.storage import btrfs_quota, images, tree
from snapkeep.storage.linux import destroy_subvolume, snapshot_subvolume

log = logging.getLogger(__name__)


class Driver(Protocol):
    name: ClassVar[str]
    slow: ClassVar[bool]
    limits_enforced: ClassVar[bool]
    volume_images: ClassVar[bool]
    # copies made into one directory wait for each other (btrfs holds the target directory for the whole
    # snapshot, commit included): a capture puts each copy in a directory of its own
    copy_per_directory: ClassVar[bool]

    def make_dataset(self, path: str) -> None: ...
    def remove_dataset(self, path: str) -> None: ...
    def frozen_copy(self, src: str, dst: str) -> None: ...
    def writable_copy(self, src: str, dst: str) -> None: ...
    def set_size_limit(self, path: str, limit: int) -> None: ...
    def room(self, path: str) -> int | None: ...
    def enable_limits(self, root: str) -> str | None: ...


class BtrfsDriver:
    """One subvolume per dataset; frozen copies are read-only subvolume snapshots (in-process ioctls)."""

    name: ClassVar[str] = "btrfs"
    slow: ClassVar[bool] = False
    limits_enforced: ClassVar[bool] = True
    volume_images: ClassVar[bool] = False
    copy_per_directory: ClassVar[bool] = True

    def make_dataset(self, path: str) -> None:
        btrfsutil.create_subvolume(path)

    def remove_dataset(self, path: str) -> None:
        if not os.path.lexists(path):
            return
        if btrfsutil.is_subvolume(path):
            destroy_subvolume(path)  # not btrfsutil's: that holds the interpreter lock while it frees
        else:
            tree.remove_tree(path)

    def frozen_copy(self, src: str, dst: str) -> None:
        snapshot_subvolume(src, dst, read_only=True)

    def writable_copy(self, src: str, dst: str) -> None:
        snapshot_subvolume(src, dst, read_only=False)

    def set_size_limit(self, path: str, limit: int) -> None:
        """The limit of the subvolume's quota group on referenced bytes (all it holds, shared or not).

        Refused below what the volume holds now, as on XFS pools (whose reserve cannot take blocks in use),
        so that a limit means the same on every pool: free space first, then lower the limit."""
        try:
            btrfsutil.sync(path)  # the counters move at commit
        except btrfsutil.BtrfsUtilError as exc:
            if exc.errno not in (errno.EDQUOT, errno.ENOSPC):  # a volume at its limit: counted as last committed
                raise
        try:
            held = btrfs_quota.qgroup_counter(path, btrfsutil.subvolume_id(path), "referenced")
        except FileNotFoundError:  # no quota group yet: nothing counted
            held = 0
        if held > limit:
            raise InvalidInput(
                f"the volume holds {held} bytes; a size limit of {limit} bytes is below that", used=held, limit=limit
            )
        btrfs_quota.set_referenced_limit(path, limit)

    def room(self, path: str) -> int | None:
        """What the subvolume's limit leaves (clones count in full: its qgroup counts what it references)."""
        return btrfs_quota.referenced_room(path, btrfsutil.subvolume_id(path))

    def enable_limits(self, root: str) -> str | None:
        """Full quota groups, not simple quotas: squota charges an extent to the subvolume that wrote it,
        for as long as the extent lives, so a volume whose snapshots hold rewritten data is charged twice
        and a restored volume (a writable snapshot) almost nothing; full qgroups count what each volume
        references, exactly (costs measured in docs/format.md). Quotas already on are kept as they are.

        Counters the kernel marked inconsistent (it skips the accounting when it drops a very tall shared
        tree) are recounted by a background rescan: while they are inconsistent the kernel counts nothing
        and enforces no limit (measured on 6.18)."""
        try:
            btrfs_quota.enable(root)
            mode = btrfs_quota.mode(root)
            if mode is btrfs_quota.QuotaMode.FULL and btrfs_quota.inconsistent(root) and btrfs_quota.rescan(root):
                log.info("btrfs quota counters of the pool at %s were inconsistent: rescan started", root)
        except OSError as exc:
            return f"btrfs could not turn on quota groups ({exc.strerror or exc})"
        if mode is btrfs_quota.QuotaMode.SIMPLE:
            log.warning(
                "the btrfs filesystem of the pool at %s uses simple quotas (squota): size limits count the "
                "bytes each volume wrote while they exist, not what it holds; a restored volume starts near zero",
                root,
            )
        return None


class ReflinkDriver:
    """Volumes are image files (see ``volume_images``); VM datasets are plain directories whose copies clone
    every file by reflink (XFS with ``reflink=1``)."""

    name: ClassVar[str] = "xfs-reflink"
    slow: ClassVar[bool] = False
    limits_enforced: ClassVar[bool] = True  # on image volumes; a directory volume made before them is not
    volume_images: ClassVar[bool] = True
    copy_per_directory: ClassVar[bool] = False

    def make_dataset(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def remove_dataset(self, path: str) -> None:
        tree.remove_tree(path)

    def frozen_copy(self, src: str, dst: str) -> None:
        tree.clone_tree(src, dst)

    def writable_copy(self, src: str, dst: str) -> None:
        tree.clone_tree(src, dst)

    def set_size_limit(self, path: str, limit: int) -> None:
        """Enforced on an image volume; not on a directory (a VM's, or a volume made before images)."""
        if images.is_image(images.image_of(path)):
            images.set_limit(path, limit)

    def room(self, path: str) -> int | None:
        """The free space of an image volume's own filesystem; a directory has no limit of its own."""
        return images.available(path) if images.is_image(images.image_of(path)) else None

    def enable_limits(self, root: str) -> str | None:
        """Nothing to prepare: each image volume's limit lives in its own filesystem (a reserve file)."""
        return None


class CopyDriver(ReflinkDriver):
    """SLOW: full data copies, for filesystems that can do neither; only when the operator asks for it."""

    name: ClassVar[str] = "copy (slow)"
    slow: ClassVar[bool] = True
    limits_enforced: ClassVar[bool] = False
    volume_images: ClassVar[bool] = False

    def enable_limits(self, root: str) -> str | None:
        return f"volumes in a {self.name} pool are plain directories, which have no size limit"

    def frozen_copy(self, src: str, dst: str) -> None:
        tree.clone_tree(src, dst, tree.copy_bytes)

    def writable_copy(self, src: str, dst: str) -> None:
        tree.clone_tree(src, dst, tree.copy_bytes)
