"""The few Linux calls Python's ``os`` lacks: reflink clone, renameat2, openat2, syncfs, extent maps,
filesystem freeze, btrfs subvolume snapshot and deletion.

Each raises ``OSError`` with the errno the kernel gave; the drivers translate it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import platform
import struct
from collections.abc import Iterator

FICLONE = 0x40049409
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_SHARED = 0x2000
AT_FDCWD = -100
RENAME_NOREPLACE = 1 << 0
RENAME_EXCHANGE = 1 << 1
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}.get(platform.machine())
BTRFS_IOC_SNAP_DESTROY = 0x5000940F  # _IOW(0x94, 15, struct btrfs_ioctl_vol_args), 4096 bytes
BTRFS_IOC_SNAP_CREATE_V2 = 0x50009417  # _IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2), 4096 bytes
BTRFS_SUBVOL_RDONLY = 1 << 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_libc.syncfs.argtypes = [ctypes.c_int]
_libc.syscall.restype = ctypes.c_long
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _check(result: int, *paths: str | bytes) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), *[os.fsdecode(p) for p in paths[:1]])


def renameat2(old_dir_fd: int, old: str | bytes, new_dir_fd: int, new: str | bytes, flags: int) -> None:
    """``renameat2(2)``: with ``RENAME_EXCHANGE`` swap two entries atomically, with ``RENAME_NOREPLACE``
    move one only where nothing is. Names are relative to the directory descriptors (or ``AT_FDCWD``)."""
    _check(_libc.renameat2(old_dir_fd, os.fsencode(old), new_dir_fd, os.fsencode(new), flags), new)


def exchange(a: str, b: str) -> None:
    """Swap two paths atomically (``renameat2(RENAME_EXCHANGE)``): readers see one or the other."""
    renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)


def openat2(dir_fd: int, path: bytes, flags: int, resolve: int) -> int:
    """``openat2(2)``: open ``path`` relative to ``dir_fd`` under the ``RESOLVE_*`` restrictions in ``resolve``.

    Raises ``OSError(ENOSYS)`` where the kernel (before 5.6) or the architecture lacks it.
    """
    if _SYS_OPENAT2 is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    how = _OpenHow(flags, 0, resolve)
    fd = int(
        _libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_long(dir_fd),
            ctypes.c_char_p(path),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(path))
    return fd


def destroy_subvolume(path: str) -> None:
    """Delete the btrfs subvolume (or snapshot) at ``path`` with ``BTRFS_IOC_SNAP_DESTROY``.

    Called through ctypes, which lets other Python threads run meanwhile: the kernel evicts the
    subvolume's cached inodes synchronously (about 2 us each, seconds on a loaded host at 100,000 files),
    and libbtrfsutil's Python binding holds the interpreter lock for all that time, stalling every
    request of the service (measured: a 1.2 s delete, a 1.2 s gap in another thread).
    """
    parent, name = os.path.split(path)
    # struct btrfs_ioctl_vol_args { __s64 fd; char name[4088]; }
    args = ctypes.create_string_buffer(struct.pack("=q4088s", 0, os.fsencode(name)), 4096)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _check(_libc.ioctl(fd, BTRFS_IOC_SNAP_DESTROY, args), path)
    finally:
        os.close(fd)


def snapshot_subvolume(src: str, dst: str, *, read_only: bool) -> None:
    """Make ``dst`` a snapshot of the btrfs subvolume ``src`` with ``BTRFS_IOC_SNAP_CREATE_V2``.

    Called through ctypes, so other threads run meanwhile: the call waits for a transaction commit, and
    snapshots made by several threads at once (into different directories: the kernel holds the target
    directory's lock throughout) join one commit, which is what keeps a capture of many datasets short.
    libbtrfsutil's binding would hold the interpreter lock and so serialise them.
    """
    parent, name = os.path.split(dst)
    # struct btrfs_ioctl_vol_args_v2 { __s64 fd; __u64 transid; __u64 flags; __u64 unused[4]; char name[4040]; }
    src_fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = BTRFS_SUBVOL_RDONLY if read_only else 0
        packed = struct.pack("=qQQ32x4040s", src_fd, 0, flags, os.fsencode(name))
        args = ctypes.create_string_buffer(packed, 4096)
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            _check(_libc.ioctl(parent_fd, BTRFS_IOC_SNAP_CREATE_V2, args), dst)
        finally:
            os.close(parent_fd)
    finally:
        os.close(src_fd)


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


# --- filesystem freeze and inode flags (immutable: image volumes, storage/images.py; data layout: fdcopy) ---
FIFREEZE = 0xC0045877
FITHAW = 0xC0045878
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x10
# how btrfs stores a file's data: no copy-on-write (chattr +C; clones only between files that agree on it,
# and is refused while compression is set), compressed (chattr +c), never compressed (chattr +m)
FS_NOCOW_FL = 0x00800000
FS_COMPR_FL = 0x00000004
FS_NOCOMP_FL = 0x00000400
COMPRESSION_FLAGS = FS_COMPR_FL | FS_NOCOMP_FL
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
        set_inode_flags(fd, FS_IMMUTABLE_FL, FS_IMMUTABLE_FL if on else 0)
    finally:
        if not isinstance(target, int):
            os.close(fd)


def inode_flags(fd: int) -> int:
    """The inode flags of an open file (``FS_IOC_GETFLAGS``, what ``lsattr`` shows)."""
    buf = bytearray(struct.pack("=i", 0))
    fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
    return int(struct.unpack("=i", buf)[0])


def set_inode_flags(fd: int, mask: int, values: int) -> None:
    """Make the inode flags of an open file that ``mask`` selects as in ``values``, if not already so."""
    flags = inode_flags(fd)
    wanted = (flags & ~mask) | (values & mask)
    if wanted != flags:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("=i", wanted))


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """``fallocate(2)`` with its mode flags (Python's ``posix_fallocate`` has none)."""
    _check(_libc.fallocate(fd, mode, offset, length), f"/proc/self/fd/{fd}")


FICLONERANGE = 0x4020940D
FIEMAP_FLAG_SYNC = 0x1
_CLONE_RANGE = struct.Struct("=qQQQ")


def clone_range(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    """Make ``[offset, offset + length)`` of ``dst_fd`` share the same range of ``src_fd`` (``FICLONERANGE``)."""
    fcntl.ioctl(dst_fd, FICLONERANGE, _CLONE_RANGE.pack(src_fd, offset, length, offset))


_IMAGE_EXTENTS_PER_CALL = 8192  # an image has up to tens of thousands: fewer calls, ~40 % less time at 50,000


def mapped_ranges(fd: int) -> Iterator[tuple[int, int, bool]]:
    """``(start, end, shared)`` of each extent of an open file, after flushing it (``FIEMAP_FLAG_SYNC``)."""
    start = 0
    while True:
        buf = bytearray(_FIEMAP_HEAD.size + _FIEMAP_EXTENT.size * _IMAGE_EXTENTS_PER_CALL)
        _FIEMAP_HEAD.pack_into(
            buf, 0, start, 0xFFFFFFFFFFFFFFFF - start, FIEMAP_FLAG_SYNC, 0, _IMAGE_EXTENTS_PER_CALL, 0
        )
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
