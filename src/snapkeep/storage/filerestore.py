"""Browse a snapshot's tree and put single files or folders back into a live volume, through descriptors.

Both trees are reached from their roots only (``Pool.dataset_tree`` and the ``Pool.snapshot_tree`` block),
and every path below a root is resolved with :func:`snapkeep.storage.beneath.open_dir`, which never
follows a symlink. An extract:

1. resolves the source's folder in the snapshot and the destination's folder in the volume, each once, to
   descriptors, and does everything after that relative to them;
2. creates a private folder ``.snapkeep-restore-<op>`` (root, mode 0700) in the destination's folder,
   checks that the folder it opens is that one (root's, private, empty: users can move a new folder away
   and put another under its name) and reports its identity, then builds the copy inside it as ``entry``,
   so nobody can touch the copy (or have its owner and times set on something else) while it is made;
3. swaps ``entry`` with the destination in one ``renameat2(RENAME_EXCHANGE)`` between the two folder
   descriptors (``RENAME_NOREPLACE`` when there is nothing to replace, and always when the caller kept
   nothing to undo a replacement with: then what appeared meanwhile stays): users see the old or the new;
4. removes what was replaced, now inside the private folder, through descriptors, and the folder itself
   only if it is still empty (``rmdir``), so a folder a user swapped in under that name is never emptied.

Errors are translated here into snapkeep's: a symlink on the way or a name too long is an
:class:`InvalidPath`, something missing a :class:`NotFound`, a full pool :class:`PoolFull`.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from snapkeep.errors import Conflict, InvalidInput, InvalidPath, NameClash, NotFound, PoolError, PoolFull
from snapkeep.model.types import FileEntry
from snapkeep.storage.beneath import (
    DIR_FLAGS,
    FILE_READ_FLAGS,
    closing,
    is_special,
    list_names,
    lstat_at,
    open_dir,
    open_root,
    remove_at,
    rename_at,
)
from snapkeep.storage.fdcopy import allocated, copy_entry

STAGING_PREFIX = b".snapkeep-restore-"
_STAGED = b"entry"
Identity = tuple[int, int]  # (st_dev, st_ino) of an extract's private folder


def staging_name(op_id: str) -> bytes:
    """The name of an extract's private folder, beside its destination: recognisably snapkeep's."""
    return STAGING_PREFIX + op_id.encode()


@contextmanager
def translated(action: str, shown: str) -> Iterator[None]:
    """The kernel's answers about a user's path as snapkeep errors that say what is wrong with it."""
    try:
        yield
    except OSError as exc:
        code = exc.errno
        if code in (errno.ELOOP, errno.ENOTDIR):  # which of the two depends on the kernel's path walk
            raise InvalidPath(
                f"{shown!r}: a folder on the way is a symlink or not a folder (symlinks inside volumes are never "
                "followed)",
                path=shown,
            ) from exc
        if code == errno.ENAMETOOLONG:
            raise InvalidPath(f"{shown!r} is too long", path=shown) from exc
        if code == errno.EXDEV:
            raise InvalidPath(f"{shown!r} crosses into another filesystem", path=shown) from exc
        if code == errno.ENOENT:
            raise NotFound(f"{shown!r} does not exist", path=shown) from exc
        if code in (errno.ENOSPC, errno.EDQUOT):
            raise PoolFull(f"{action}: no space left ({exc.strerror})") from exc
        raise PoolError(f"{action}: {exc.strerror or exc}", errno=code, path=shown) from exc


def _kind(mode: int) -> str:
    kinds = {
        stat.S_IFDIR: "dir",
        stat.S_IFREG: "file",
        stat.S_IFLNK: "symlink",
        stat.S_IFIFO: "fifo",
        stat.S_IFSOCK: "socket",
        stat.S_IFCHR: "char-device",
        stat.S_IFBLK: "block-device",
    }
    return kinds.get(stat.S_IFMT(mode), "unknown")


def _entry(dir_fd: int, name: bytes, st: os.stat_result) -> FileEntry:
    target = os.fsdecode(os.readlink(name, dir_fd=dir_fd)) if stat.S_ISLNK(st.st_mode) else None
    return FileEntry(
        name=os.fsdecode(name),
        type=_kind(st.st_mode),
        size=st.st_size,
        mode=stat.S_IMODE(st.st_mode),
        mtime=st.st_mtime,
        target=target,
    )


def browse(root: str, parts: Sequence[bytes], shown: str) -> list[FileEntry]:
    """The entries of folder ``parts`` under ``root`` (or the one entry a non-folder names), read with
    ``fstatat``/``readlinkat`` only: special files are described, never opened."""
    with translated("browsing", shown), closing(open_root(root)) as root_fd:
        if not parts:
            return _entries(root_fd)
        with closing(open_dir(root_fd, parts[:-1])) as parent:
            st = lstat_at(parent, parts[-1])
            if st is None:
                raise FileNotFoundError(errno.ENOENT, "missing", shown)
            if not stat.S_ISDIR(st.st_mode):
                return [_entry(parent, parts[-1], st)]
            with closing(os.open(parts[-1], DIR_FLAGS, dir_fd=parent)) as folder:
                return _entries(folder)


def _entries(folder: int) -> list[FileEntry]:
    found = []
    for name in list_names(folder):
        st = lstat_at(folder, name)
        if st is not None:
            found.append(_entry(folder, name, st))
    return found


def check_source(root: str, parts: Sequence[bytes], shown: str) -> None:
    """Refuse, before anything is written, a source that is missing or a special file."""
    with translated("reading the snapshot", shown), closing(open_root(root)) as root_fd:
        parent = open_dir(root_fd, parts[:-1])
        with closing(parent):
            st = lstat_at(parent, parts[-1])
    if st is None:
        raise NotFound(f"{shown!r} does not exist in the snapshot", path=shown)
    if is_special(st.st_mode):
        raise InvalidInput(
            f"{shown!r} is a special file ({_kind(st.st_mode)}); special files are listed but not extracted",
            path=shown,
        )


def measure(root: str, parts: Sequence[bytes], shown: str) -> int:
    """The bytes entry ``parts`` of a snapshot's tree takes on disk, all of it: what an extract of it brings."""
    with translated("measuring the snapshot's entry", shown):
        return _allocated_at(root, parts)


def held_at(root: str, parts: Sequence[bytes]) -> int:
    """The bytes entry ``parts`` of a live tree takes on disk now, or 0 if it is gone or cannot be walked
    (its users change it meanwhile): what replacing it frees, at the least."""
    try:
        return _allocated_at(root, parts)
    except OSError:
        return 0


def _allocated_at(root: str, parts: Sequence[bytes]) -> int:
    """:func:`~snapkeep.storage.fdcopy.allocated` of entry ``parts`` under ``root``, reached through
    descriptors (never a symlink on the way)."""
    with closing(open_root(root)) as root_fd, closing(open_dir(root_fd, parts[:-1])) as parent:
        return allocated(parent, parts[-1])


def check_destination(root: str, parts: Sequence[bytes], shown: str) -> bool:
    """Refuse, before anything is written, a destination whose folder is missing or not reachable; whether
    something is there now (the extract would replace it)."""
    with (
        translated("checking the destination", shown),
        closing(open_root(root)) as root_fd,
        closing(open_dir(root_fd, parts[:-1])) as parent,
    ):
        return lstat_at(parent, parts[-1]) is not None


def open_file(root: str, parts: Sequence[bytes], shown: str) -> tuple[int, FileEntry]:
    """A descriptor reading the regular file or the folder ``parts`` under ``root``, and its entry; never
    through a symlink (``O_NOFOLLOW``, :func:`open_dir` on the way), never a special file (checked before
    opening, and again on the descriptor). The entry is the descriptor's own ``fstat``: if the name was
    swapped between the check and the open, it still describes (size: the download's Content-Length) what
    is read."""
    with (
        translated("reading the snapshot", shown),
        closing(open_root(root)) as root_fd,
        closing(open_dir(root_fd, parts[:-1])) as parent,
    ):
        st = lstat_at(parent, parts[-1])
        if st is None:
            raise FileNotFoundError(errno.ENOENT, "missing", shown)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise InvalidInput(
                f"{shown!r} is a {_kind(st.st_mode)}; only files and folders can be downloaded", path=shown
            )
        fd = os.open(parts[-1], DIR_FLAGS if stat.S_ISDIR(st.st_mode) else FILE_READ_FLAGS, dir_fd=parent)
        opened = os.fstat(fd)
        if stat.S_IFMT(opened.st_mode) != stat.S_IFMT(st.st_mode):
            os.close(fd)
            raise InvalidInput(f"{shown!r} changed while it was opened; try again", path=shown)
        return fd, _entry(parent, parts[-1], opened)


@dataclass(frozen=True)
class ExtractReport:
    skipped_special: int  # FIFOs, sockets and devices inside an extracted folder, not copied
    freed: bool  # False: the replaced entry could not be removed yet (the caller keeps its intent)


def extract(
    src_root: str,
    src_parts: Sequence[bytes],
    dst_root: str,
    dst_parts: Sequence[bytes],
    op_id: str,
    *,
    clone: bool,
    shown: tuple[str, str],
    replace: bool = True,
    made: Callable[[Identity], None] = lambda _identity: None,
) -> ExtractReport:
    """Copy entry ``src_parts`` of the tree at ``src_root`` over ``dst_parts`` of the tree at ``dst_root``,
    atomically (the module docstring says how). ``shown`` is how to name source and destination in errors.
    Without ``replace`` (nothing was there when the caller looked, so it kept nothing to undo with), an
    entry that appears at the destination meanwhile is left as it is: :class:`NameClash`. ``made`` is told
    the private folder's identity before anything is put in it, for :func:`discard_staging` to know it by."""
    with (
        translated("extracting", shown[1]),
        closing(open_root(src_root)) as src_fd,
        closing(open_root(dst_root)) as dst_fd,
    ):
        with translated("reading the snapshot", shown[0]):
            src_parent = open_dir(src_fd, src_parts[:-1])
        with closing(src_parent):
            dst_parent = open_dir(dst_fd, dst_parts[:-1])
            with closing(dst_parent):
                staging = staging_name(op_id)
                parts = (src_parent, src_parts[-1], dst_parent, dst_parts[-1], staging)
                return _build_and_swap(*parts, clone=clone, replace=replace, made=made)


def _build_and_swap(
    src_parent: int,
    name: bytes,
    dst_parent: int,
    dest: bytes,
    staging: bytes,
    *,
    clone: bool,
    replace: bool,
    made: Callable[[Identity], None],
) -> ExtractReport:
    os.mkdir(staging, 0o700, dir_fd=dst_parent)
    staged = os.open(staging, DIR_FLAGS, dir_fd=dst_parent)
    try:
        made(_private_identity(staged, staging))
    except BaseException:
        os.close(staged)
        raise
    try:
        try:
            copied = copy_entry(src_parent, name, staged, _STAGED, clone=clone)
            _swap_in(staged, dst_parent, dest, replace)
        except BaseException:
            _free(staged)  # the partial copy; if that fails too, the caller's intent still names it
            raise
        # The swap is done: the replaced entry is in the private folder. Failing to remove it (users
        # still writing into a folder they had open) does not undo the restore; it is retried later.
        freed = _free(staged)
    finally:
        os.close(staged)
    if freed:
        _rmdir_if_empty(dst_parent, staging)
    return ExtractReport(copied.skipped_special, freed)


def _private_identity(staged: int, staging: bytes) -> Identity:
    """The identity of the private folder just made and opened, refused if it is not that folder: users who
    write the destination's folder can move a new folder away before it is opened and put another under its
    name. Only an empty folder owned by this process's user that nobody else may enter is used; then nothing
    in it is anyone else's, and no user can swap anything inside it."""
    st = os.fstat(staged)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077 == 0 and not list_names(staged):
        return (st.st_dev, st.st_ino)
    where = os.fsdecode(staging)
    raise Conflict(
        f"the file restore's private folder {where!r} was replaced by another folder right after it was made (a "
        "user of the volume moved it); nothing was restored and that folder was left as it is: try again",
        path=where,
    )


def _free(staged: int) -> bool:
    try:
        remove_at(staged, _STAGED)
    except OSError:
        return False
    return True


def _swap_in(staged: int, dst_parent: int, dest: bytes, replace: bool) -> None:
    """``entry`` of the private folder replaces ``dest``; a destination appearing or vanishing meanwhile
    just changes which of the two renames does it. Without ``replace``, only the one that adds."""
    for _attempt in range(8):
        exists = replace and lstat_at(dst_parent, dest) is not None
        try:
            rename_at(staged, _STAGED, dst_parent, dest, exchange=exists)
            return
        except OSError as exc:
            if exc.errno == errno.EEXIST and not replace:
                shown = os.fsdecode(dest)
                raise NameClash(
                    f"{shown!r} appeared while it was being restored and was left as it is; extract again to "
                    "replace it (a pre-restore snapshot is taken first; at a place other than its own, ask to "
                    "replace it)",
                    path=shown,
                ) from exc
            if exc.errno not in (errno.ENOENT, errno.EEXIST):
                raise
    raise OSError(errno.EBUSY, "the destination keeps appearing and vanishing", os.fsdecode(dest))


def _rmdir_if_empty(dir_fd: int, name: bytes) -> None:
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.ENOTDIR):
            raise


def discard_staging(root: str, parent_parts: Sequence[bytes], op_id: str, identity: Identity | None) -> bool:
    """Remove what a failed or crashed extract left in its private folder under ``root``; True if there was
    a folder by its name.

    The folder is found by name, which users who write its folder can give to another one (moving the
    private folder away): only the folder of ``identity`` (as :func:`extract` reported it) is emptied. One
    under that name that is not known to be it (a crash before its identity was recorded, when it is still
    empty) is removed only if empty.
    """
    staging = staging_name(op_id)
    shown = os.fsdecode(b"/".join([*parent_parts, staging]))
    try:
        with translated("removing an interrupted extract", shown), closing(open_root(root)) as root_fd:
            parent = open_dir(root_fd, parent_parts)
            with closing(parent):
                try:
                    staged = os.open(staging, DIR_FLAGS, dir_fd=parent)
                except OSError as exc:
                    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        return False
                    raise
                with closing(staged):
                    st = os.fstat(staged)
                    if identity is not None and (st.st_dev, st.st_ino) == tuple(identity):
                        for name in list_names(staged):
                            remove_at(staged, name)
                    elif st.st_uid != os.geteuid():
                        return True  # a user's folder under that name: left alone
                _rmdir_if_empty(parent, staging)  # only if empty: harms no one, whoever's it is
    except NotFound:
        return False
    return True
