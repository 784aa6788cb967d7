"""The few Linux calls Python's ``os`` lacks: reflink clone, atomic exchange, syncfs, extent maps.

Each raises ``OSError`` with the errno the kernel gave; the drivers translate it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import struct
from collections.abc import Iterator

FICLONE = 0x40049409
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000
_AT_FDCWD = -100
_RENAME_EXCHANGE = 1 << 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_libc.syncfs.argtypes = [ctypes.c_int]
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def _check(result: int, *paths: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), *paths[:1])


def exchange(a: str, b: str) -> None:
    """Swap two paths atomically (``renameat2(RENAME_EXCHANGE)``): readers see one or the other."""
    _check(_libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE), a)


def reflink(src_fd: int, dst_fd: int) -> None:
    """Make ``dst_fd`` share all of ``src_fd``'s extents (``FICLONE``); costs metadata, not data."""
    fcntl.ioctl(dst_fd, FICLONE, src_fd)


def syncfs(path: str) -> None:
    """Flush the whole filesystem holding ``path`` without blocking its writers."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _check(_libc.syncfs(fd), path)
    finally:
        os.close(fd)


_FIEMAP_HEAD = struct.Struct("=QQIIII")
_FIEMAP_EXTENT = struct.Struct("=QQQ2QI3I")
_EXTENTS_PER_CALL = 128


def extents(fd: int) -> Iterator[tuple[int, int]]:
    """Yield ``(length, flags)`` of each extent of an open file, from ``FS_IOC_FIEMAP``."""
    start = 0
    while True:
        head = _FIEMAP_HEAD.pack(start, 0xFFFFFFFFFFFFFFFF - start, 0, 0, _EXTENTS_PER_CALL, 0)
        buf = bytearray(head + b"\0" * (_FIEMAP_EXTENT.size * _EXTENTS_PER_CALL))
        fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
        mapped = _FIEMAP_HEAD.unpack_from(buf)[3]
        if mapped == 0:
            return
        last_end = start
        for i in range(mapped):
            fields = _FIEMAP_EXTENT.unpack_from(buf, _FIEMAP_HEAD.size + i * _FIEMAP_EXTENT.size)
            logical, length, flags = fields[0], fields[2], fields[5]
            yield length, flags
            last_end = logical + length
            if flags & FIEMAP_EXTENT_LAST:
                return
        start = last_end


# --- filesystem freeze and the immutable flag (image volumes, storage/images.py) ---
FIFREEZE = 0xC0045877
FITHAW = 0xC0045878
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x10
FALLOC_FL_KEEP_SIZE = 0x1
FALLOC_FL_PUNCH_HOLE = 0x2


def freeze(fd: int) -> None:
    """Block every write to the filesystem ``fd`` is on (``FIFREEZE``), after flushing it."""
    fcntl.ioctl(fd, FIFREEZE, 0)


def thaw(fd: int) -> None:
    """Undo :func:`freeze` (``FITHAW``); EINVAL if the filesystem was not frozen."""
    fcntl.ioctl(fd, FITHAW, 0)


def set_immutable(target: str | int, on: bool) -> None:
    """Set or clear ``FS_IMMUTABLE_FL`` (``chattr +i``) on a path (never followed) or an open descriptor:
    nothing can then write, rename or delete the inode."""
    fd = target if isinstance(target, int) else os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        buf = bytearray(struct.pack("=i", 0))
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
        flags = struct.unpack("=i", buf)[0]
        wanted = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
        if wanted != flags:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("=i", wanted))
    finally:
        if not isinstance(target, int):
            os.close(fd)


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """``fallocate(2)`` with its mode flags (Python's ``posix_fallocate`` has none)."""
    _check(_libc.fallocate(fd, mode, offset, length), f"/proc/self/fd/{fd}")


FICLONERANGE = 0x4020940D
FIEMAP_FLAG_SYNC = 0x1
_CLONE_RANGE = struct.Struct("=qQQQ")


def clone_range(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    """Make ``[offset, offset + length)`` of ``dst_fd`` share the same range of ``src_fd`` (``FICLONERANGE``)."""
    fcntl.ioctl(dst_fd, FICLONERANGE, _CLONE_RANGE.pack(src_fd, offset, length, offset))


def mapped_ranges(fd: int) -> Iterator[tuple[int, int, bool]]:
    """``(start, end, shared)`` of each extent of an open file, after flushing it (``FIEMAP_FLAG_SYNC``)."""
    start = 0
    while True:
        head = _FIEMAP_HEAD.pack(start, 0xFFFFFFFFFFFFFFFF - start, FIEMAP_FLAG_SYNC, 0, _EXTENTS_PER_CALL, 0)
        buf = bytearray(head + b"\0" * (_FIEMAP_EXTENT.size * _EXTENTS_PER_CALL))
        fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
        mapped = _FIEMAP_HEAD.unpack_from(buf)[3]
        if mapped == 0:
            return
        for i in range(mapped):
            fields = _FIEMAP_EXTENT.unpack_from(buf, _FIEMAP_HEAD.size + i * _FIEMAP_EXTENT.size)
            logical, length, flags = fields[0], fields[2], fields[5]
            yield logical, logical + length, bool(flags & FIEMAP_EXTENT_SHARED)
            start = logical + length
            if flags & FIEMAP_EXTENT_LAST:
                return
