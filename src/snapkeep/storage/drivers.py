"""Filesystem drivers: the copy-on-write primitives a pool is built on, one class per filesystem.

Contract of every driver (the conformance tests in ``tests/integration/test_pool.py`` run against each):

- ``make_dataset(path)`` creates an empty, writable dataset at a path that does not exist.
- ``remove_dataset(path)`` removes a dataset or a frozen copy; idempotent (a missing path is fine).
- ``frozen_copy(src, dst)`` makes a point-in-time copy of dataset ``src`` at the new path ``dst``; it
  costs metadata, not data (except in the labelled slow ``copy`` mode).
- ``writable_copy(src, dst)`` the same, writable, from a dataset or a frozen copy.
- ``set_size_limit(path, limit)`` makes writes into dataset ``path`` fail (ENOSPC/EDQUOT) past ``limit``
  bytes; works on a live dataset. A driver that cannot enforce limits says so with
  ``limits_enforced = False`` and accepts the call as a no-op.

They raise ``OSError`` as the kernel reports it; :class:`snapkeep.storage.pool.Pool` translates.
"""

from __future__ import annotations

import os
from typing import ClassVar, Protocol

import btrfsutil

from snapkeep.storage import tree
from snapkeep.storage.linux import destroy_subvolume


class Driver(Protocol):
    name: ClassVar[str]
    slow: ClassVar[bool]
    limits_enforced: ClassVar[bool]

    def make_dataset(self, path: str) -> None: ...
    def remove_dataset(self, path: str) -> None: ...
    def frozen_copy(self, src: str, dst: str) -> None: ...
    def writable_copy(self, src: str, dst: str) -> None: ...
    def set_size_limit(self, path: str, limit: int) -> None: ...


class BtrfsDriver:
    """One subvolume per dataset; frozen copies are read-only subvolume snapshots (in-process ioctls)."""

    name: ClassVar[str] = "btrfs"
    slow: ClassVar[bool] = False
    limits_enforced: ClassVar[bool] = False  # not yet: quota groups come with the hardening issue

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
        btrfsutil.create_snapshot(src, dst, read_only=True)

    def writable_copy(self, src: str, dst: str) -> None:
        btrfsutil.create_snapshot(src, dst, read_only=False)

    def set_size_limit(self, path: str, limit: int) -> None:
        """Not enforced yet (``limits_enforced`` is False)."""


class ReflinkDriver:
    """A plain directory per dataset; copies clone every file by reflink (XFS with ``reflink=1``)."""

    name: ClassVar[str] = "xfs-reflink"
    slow: ClassVar[bool] = False
    limits_enforced: ClassVar[bool] = False

    def make_dataset(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def remove_dataset(self, path: str) -> None:
        tree.remove_tree(path)

    def frozen_copy(self, src: str, dst: str) -> None:
        tree.clone_tree(src, dst)

    def writable_copy(self, src: str, dst: str) -> None:
        tree.clone_tree(src, dst)

    def set_size_limit(self, path: str, limit: int) -> None:
        """Not enforced on a plain directory (``limits_enforced`` is False)."""


class CopyDriver(ReflinkDriver):
    """SLOW: full data copies, for filesystems that can do neither; only when the operator asks for it."""

    name: ClassVar[str] = "copy (slow)"
    slow: ClassVar[bool] = True

    def frozen_copy(self, src: str, dst: str) -> None:
        tree.clone_tree(src, dst, tree.copy_bytes)

    def writable_copy(self, src: str, dst: str) -> None:
        tree.clone_tree(src, dst, tree.copy_bytes)
