"""Copy a file tree by reflink, keeping everything a restore must keep.

Kept: content (shared extents, so holes stay holes), mode, owner, atime/mtime, extended attributes (and
so POSIX ACLs), symlinks, hard links inside the tree, FIFOs and device nodes. Directory times are set
after their contents so that filling them does not change them.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable

from snapkeep.storage.fdcopy import copy_data
from snapkeep.storage.linux import reflink

DataCopier = Callable[[int, int], None]


def copy_bytes(src_fd: int, dst_fd: int) -> None:
    """Copy file content (its data ranges; holes stay holes): the slow mode for filesystems without reflink."""
    copy_data(src_fd, dst_fd, os.fstat(src_fd).st_size, clone=False)


def clone_file(src: str, dst: str, copy_data: DataCopier = reflink) -> None:
    """Create ``dst`` as a clone of regular file ``src`` with its metadata (reflink unless told)."""
    src_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            copy_data(src_fd, dst_fd)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    copy_metadata(src, dst)


def copy_metadata(src: str, dst: str) -> None:
    """Owner, mode, xattrs and times of ``src`` onto ``dst``; never follows symlinks."""
    st = os.lstat(src)
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    for key in os.listxattr(src, follow_symlinks=False):
        os.setxattr(dst, key, os.getxattr(src, key, follow_symlinks=False), follow_symlinks=False)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def clone_tree(src: str, dst: str, copy_data: DataCopier = reflink) -> None:
    """Clone ``src`` (a directory, file or symlink) to the new path ``dst``.

    On failure the partly built ``dst`` is removed and the original error re-raised, so a full disk
    leaves nothing half-made behind.
    """
    try:
        _clone_any(src, dst, {}, copy_data)
    except BaseException:
        remove_tree(dst)
        raise


def _clone_any(src: str, dst: str, links: dict[tuple[int, int], str], copy_data: DataCopier) -> None:
    st = os.lstat(src)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(dst, 0o700)
        with os.scandir(src) as entries:
            names = sorted(entry.name for entry in entries)
        for name in names:
            _clone_any(os.path.join(src, name), os.path.join(dst, name), links, copy_data)
        copy_metadata(src, dst)
        return
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in links:
        os.link(links[key], dst)
        return
    if stat.S_ISREG(mode):
        clone_file(src, dst, copy_data)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
        copy_metadata(src, dst)
    else:
        os.mknod(dst, mode, st.st_rdev)
        copy_metadata(src, dst)
    if st.st_nlink > 1:
        links[key] = dst


def remove_tree(path: str) -> None:
    """Remove a file, symlink or directory tree if it exists (idempotent)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
