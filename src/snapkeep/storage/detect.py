"""Which driver fits the filesystem under a directory; anything else is refused with the reason."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import tempfile

from snapkeep.errors import UnsupportedFilesystem
from snapkeep.storage.drivers import BtrfsDriver, CopyDriver, Driver, ReflinkDriver
from snapkeep.storage.linux import reflink

BTRFS_MAGIC = 0x9123683E
XFS_MAGIC = 0x58465342

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def filesystem_magic(path: str) -> int:
    """``statfs(2)``'s ``f_type`` (the first field of ``struct statfs``)."""
    buf = ctypes.create_string_buffer(256)
    if _libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int.from_bytes(buf.raw[:8], "little", signed=False) & 0xFFFFFFFF


def supports_reflink(path: str) -> bool:
    """Try a real FICLONE in ``path``: XFS without ``reflink=1`` answers EOPNOTSUPP/EINVAL."""
    with tempfile.TemporaryFile(dir=path) as src, tempfile.TemporaryFile(dir=path) as dst:
        src.write(b"snapkeep reflink probe")
        src.flush()
        try:
            reflink(src.fileno(), dst.fileno())
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.EXDEV, errno.ENOTTY):
                return False
            raise
    return True


def choose_driver(path: str, allow_slow_copy: bool = False) -> Driver:
    """btrfs → subvolumes; XFS with reflink → file clones; otherwise refuse, or copy slowly if allowed."""
    magic = filesystem_magic(path)
    if magic == BTRFS_MAGIC:
        return BtrfsDriver()
    if magic == XFS_MAGIC and supports_reflink(path):
        return ReflinkDriver()
    if allow_slow_copy:
        return CopyDriver()
    what = "XFS without reflink" if magic == XFS_MAGIC else f"a filesystem of type 0x{magic:x}"
    raise UnsupportedFilesystem(
        f"the pool at {path} is on {what}; snapkeep needs btrfs or XFS with reflink=1 "
        "(mkfs.xfs -m reflink=1) for instant snapshots. To accept full data copies instead, "
        "enable the slow copying mode (SNAPKEEP_ALLOW_SLOW_COPY=1).",
        path=path,
    )
