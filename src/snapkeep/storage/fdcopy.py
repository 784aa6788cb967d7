"""Copy an entry (a file, a symlink or a whole folder) between two folders given by descriptors.

The copy keeps what :mod:`snapkeep.storage.tree` keeps for whole datasets: content with its holes, mode,
owner, access and modification times, extended attributes (and so POSIX ACLs), symlinks (recreated, never
followed), and hard links inside the copied tree; and, of the inode flags, how the data is stored
(copy-on-write off, compressed: ``chattr +C``, ``+c``), without which btrfs would not clone a no-COW file.
Folders get their metadata after their contents, so that filling them does not change their times.

Unlike ``tree``, every step is relative to a directory descriptor, so it can read a snapshot and write into
a folder of a live volume that users change meanwhile (see :mod:`snapkeep.storage.beneath`). Special files
(FIFOs, sockets, device nodes) are never opened and never made: inside a folder they are skipped and
counted; a device node recreated by root in a share would hand its users a device.

Content is cloned (``FICLONE``) where source and destination share a filesystem that can; otherwise (for
example a snapshot mounted from another image: ``EXDEV``), or in the pool's slow copying mode, the data
ranges are copied with ``copy_file_range`` (bytes by ``pread``/``pwrite`` where that is refused too), and
holes stay holes.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from snapkeep.storage.beneath import DIR_FLAGS, closing, is_special, list_names, open_dir
from snapkeep.storage.linux import COMPRESSION_FLAGS, FS_NOCOW_FL, inode_flags, reflink, set_inode_flags

_CLONE_UNSUPPORTED = (errno.EXDEV, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTTY, errno.ENOSYS)
_NO_INODE_FLAGS = (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL)
_CHUNK = 1 << 20


@dataclass
class CopyReport:
    entries: int = 0
    skipped_special: int = 0


@dataclass
class _Folder:
    src_fd: int
    dst_fd: int
    st: os.stat_result
    parts: tuple[bytes, ...]  # relative to the destination folder of the whole copy
    left: list[bytes] = field(default_factory=list)


def copy_entry(src_dir: int, name: bytes, dst_dir: int, new_name: bytes, *, clone: bool) -> CopyReport:
    """Copy entry ``name`` of ``src_dir`` to the new entry ``new_name`` of ``dst_dir``.

    ``dst_dir`` must be private to the caller (nobody else may change it while the copy runs): metadata of
    symlinks is set by name there. A special file named directly raises ``OSError(EINVAL)``. On failure
    the partial copy is left for the caller to remove.
    """
    st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
    report = CopyReport()
    if is_special(st.st_mode):
        raise OSError(errno.EINVAL, "special files (FIFOs, sockets, devices) are not copied", os.fsdecode(name))
    if not stat.S_ISDIR(st.st_mode):
        _copy_leaf(src_dir, name, st, dst_dir, new_name, clone)
        report.entries = 1
        return report
    links: dict[tuple[int, int], tuple[tuple[bytes, ...], bytes]] = {}
    stack = [_open_folder(src_dir, name, st, dst_dir, new_name, (new_name,))]
    try:
        while stack:
            folder = stack[-1]
            if not folder.left:
                _set_metadata(folder.src_fd, folder.dst_fd, folder.st)
                stack.pop()
                os.close(folder.src_fd)
                os.close(folder.dst_fd)
                report.entries += 1
                continue
            child = folder.left.pop()
            cst = os.stat(child, dir_fd=folder.src_fd, follow_symlinks=False)
            if is_special(cst.st_mode):
                report.skipped_special += 1
            elif stat.S_ISDIR(cst.st_mode):
                stack.append(_open_folder(folder.src_fd, child, cst, folder.dst_fd, child, (*folder.parts, child)))
            elif cst.st_nlink > 1 and (cst.st_dev, cst.st_ino) in links:
                first_parts, first_name = links[(cst.st_dev, cst.st_ino)]
                with closing(open_dir(dst_dir, first_parts)) as first_dir:
                    os.link(first_name, child, src_dir_fd=first_dir, dst_dir_fd=folder.dst_fd, follow_symlinks=False)
                report.entries += 1
            else:
                _copy_leaf(folder.src_fd, child, cst, folder.dst_fd, child, clone)
                report.entries += 1
                if cst.st_nlink > 1:
                    links[(cst.st_dev, cst.st_ino)] = (folder.parts, child)
    finally:
        for folder in stack:
            os.close(folder.src_fd)
            os.close(folder.dst_fd)
    return report


def allocated(src_dir: int, name: bytes) -> int:
    """The bytes entry ``name`` of ``src_dir`` and everything in it take on disk: blocks allocated (holes
    count nothing; preallocated ranges count, though a copy skips them), hard links once, special files not
    at all, as :func:`copy_entry` copies them. The walk reads metadata only, through descriptors, and holds
    one per level of depth (as the copy does), however wide a folder is."""
    st = os.stat(name, dir_fd=src_dir, follow_symlinks=False)
    if is_special(st.st_mode):
        return 0
    total = st.st_blocks * 512
    if not stat.S_ISDIR(st.st_mode):
        return total
    seen: set[tuple[int, int]] = set()
    stack = [_listed(src_dir, name)]
    try:
        while stack:
            folder, left = stack[-1]
            if not left:
                stack.pop()
                os.close(folder)
                continue
            child = left.pop()
            cst = os.stat(child, dir_fd=folder, follow_symlinks=False)
            if is_special(cst.st_mode):
                continue
            if not stat.S_ISDIR(cst.st_mode) and cst.st_nlink > 1:
                if (cst.st_dev, cst.st_ino) in seen:
                    continue
                seen.add((cst.st_dev, cst.st_ino))
            total += cst.st_blocks * 512
            if stat.S_ISDIR(cst.st_mode):
                stack.append(_listed(folder, child))
    finally:
        for folder, _left in stack:
            os.close(folder)
    return total


def _listed(dir_fd: int, name: bytes) -> tuple[int, list[bytes]]:
    """Folder ``name`` opened (never through a symlink) and the names in it; closed again if listing fails."""
    fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    try:
        return fd, list_names(fd)
    except BaseException:
        os.close(fd)
        raise


def _open_folder(
    src_dir: int, name: bytes, st: os.stat_result, dst_dir: int, new_name: bytes, parts: tuple[bytes, ...]
) -> _Folder:
    src_fd = os.open(name, DIR_FLAGS, dir_fd=src_dir)
    dst_fd = -1
    try:
        _same_entry(src_fd, st, name)
        os.mkdir(new_name, 0o700, dir_fd=dst_dir)
        dst_fd = os.open(new_name, DIR_FLAGS, dir_fd=dst_dir)
        _keep_layout(src_fd, dst_fd)  # before its contents: what is made in a folder inherits its flags
        return _Folder(src_fd, dst_fd, st, parts, list_names(src_fd))
    except BaseException:
        os.close(src_fd)
        if dst_fd >= 0:
            os.close(dst_fd)
        raise


def _keep_layout(src_fd: int, dst_fd: int) -> None:
    """Give a new, still empty file or folder its source's data layout flags (no copy-on-write, compressed,
    never compressed: ``chattr +C``, ``+c``, ``+m``), set or cleared, whatever it inherited from the folder
    it was made in. They are their user's choice (no COW for a database or a disk image), and btrfs clones
    only between files that agree on copy-on-write, so a restored file that differed would be a full copy
    of its data, not a clone. Where the filesystem has no inode flags there is nothing to keep."""
    try:
        source = inode_flags(src_fd)
        # one at a time, as btrfs takes them: copy-on-write back on (if the source has it on), then
        # compression as the source's, then no-COW (btrfs refuses compression beside no-COW, either way)
        if not source & FS_NOCOW_FL:
            set_inode_flags(dst_fd, FS_NOCOW_FL, 0)
        set_inode_flags(dst_fd, COMPRESSION_FLAGS, source)
        set_inode_flags(dst_fd, FS_NOCOW_FL, source)
    except OSError as exc:
        if exc.errno not in _NO_INODE_FLAGS:
            raise


def _same_entry(fd: int, st: os.stat_result, name: bytes) -> None:
    """Refuse an entry that changed between looking at it and opening it."""
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        raise OSError(errno.ESTALE, "the entry changed while it was being copied", os.fsdecode(name))


def _copy_leaf(src_dir: int, name: bytes, st: os.stat_result, dst_dir: int, new_name: bytes, clone: bool) -> None:
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_dir), new_name, dir_fd=dst_dir)
        os.chown(new_name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
        src_path, dst_path = _proc_path(src_dir, name), _proc_path(dst_dir, new_name)
        for key in os.listxattr(src_path, follow_symlinks=False):
            value = os.getxattr(src_path, key, follow_symlinks=False)
            os.setxattr(dst_path, key, value, follow_symlinks=False)
        os.utime(new_name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)
        return
    # O_NONBLOCK: should the entry have become a FIFO since it was looked at, opening it does not wait.
    src_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=src_dir)
    with closing(src_fd):
        _same_entry(src_fd, st, name)
        dst_fd = os.open(
            new_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dst_dir
        )
        with closing(dst_fd):
            _keep_layout(src_fd, dst_fd)
            copy_data(src_fd, dst_fd, st.st_size, clone=clone)
            _set_metadata(src_fd, dst_fd, st)


def _proc_path(dir_fd: int, name: bytes) -> bytes:
    """A path to entry ``name`` of an open folder, for the calls that have no ``dir_fd`` form (xattrs of
    symlinks): the folder is reached through its descriptor, and only ``name`` is looked up in it."""
    return b"/proc/self/fd/%d/%s" % (dir_fd, name)


def _set_metadata(src_fd: int, dst_fd: int, st: os.stat_result) -> None:
    """Owner, mode, xattrs and times of an open source onto an open copy (owner first: chown clears
    set-id bits, which the mode then sets again)."""
    os.chown(dst_fd, st.st_uid, st.st_gid)
    os.chmod(dst_fd, stat.S_IMODE(st.st_mode))
    for key in os.listxattr(src_fd):
        os.setxattr(dst_fd, key, os.getxattr(src_fd, key))
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def copy_data(src_fd: int, dst_fd: int, size: int, *, clone: bool) -> None:
    """All of ``src_fd``'s content into the empty ``dst_fd``: one clone when ``clone`` and the filesystems
    allow it, else the data ranges only (holes stay holes)."""
    if clone:
        try:
            reflink(src_fd, dst_fd)
            return
        except OSError as exc:
            if exc.errno not in _CLONE_UNSUPPORTED:
                raise
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src_fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # no data after offset: the rest is a hole
                raise
            break
        end = min(os.lseek(src_fd, start, os.SEEK_HOLE), size)
        _copy_range(src_fd, dst_fd, start, end - start)
        offset = end
    os.ftruncate(dst_fd, size)


def _copy_range(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    while length > 0:
        try:
            done = os.copy_file_range(src_fd, dst_fd, min(length, 1 << 30), offset, offset)
        except OSError as exc:
            if exc.errno not in _CLONE_UNSUPPORTED:
                raise
            _copy_bytes(src_fd, dst_fd, offset, length)
            return
        if done == 0:  # the source ended early
            return
        offset += done
        length -= done


def _copy_bytes(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    while length > 0:
        chunk = os.pread(src_fd, min(length, _CHUNK), offset)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            written = os.pwrite(dst_fd, view, offset)
            view = view[written:]
            offset += written
        length -= len(chunk)
