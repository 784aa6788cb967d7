"""Working inside a tree that other people change while we work: through directory file descriptors only.

A NAS volume belongs to its users, and snapkeep runs as root. Checking a path and then using it by name
lets a user swap a folder on the way for a symlink in between, and root then reads or writes wherever the
symlink points. So nothing here takes a path inside such a tree: a tree is opened once at its root (a path
under the pool's control), and every step below it is relative to a directory descriptor:

- :func:`open_dir` resolves several components at once with ``openat2(RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)``: the kernel refuses any symlink, any
  ``..`` and any mount crossing on the way, atomically. Where ``openat2`` is missing (kernels before 5.6)
  it walks one component at a time with ``O_NOFOLLOW | O_DIRECTORY``, which refuses symlinks just as
  surely (it cannot refuse mount crossings; users of a share cannot mount).
- Directories are only ever opened with ``O_DIRECTORY | O_NOFOLLOW``, so a name swapped for a FIFO, a
  device or a symlink fails with ``ENOTDIR``/``ELOOP`` and is never opened; files are created with
  ``O_CREAT | O_EXCL | O_NOFOLLOW``.
- Entries are replaced with ``renameat2`` relative to their parent's descriptor (:func:`rename_at`) and
  removed by :func:`remove_at`, which descends through descriptors as well (Python 3.11's
  ``shutil.rmtree(dir_fd=)`` opens subfolders without ``O_NOFOLLOW | O_DIRECTORY``, so a folder swapped for
  a symlink to a FIFO blocks it, and it recurses, so a deep tree overflows Python's stack).

Names are bytes (components without ``/``); callers check them. Everything raises ``OSError`` as the
kernel reports it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from snapkeep.storage.linux import RENAME_EXCHANGE, RENAME_NOREPLACE, openat2, renameat2

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
"""Reading a file whose name a user controls: never through a symlink, never blocking on a FIFO swapped in
(check the descriptor's type after opening)."""
_RELIST_BUDGET = 64  # how often a remover re-reads a folder that someone keeps filling


@contextmanager
def closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


def _probe_openat2() -> bool:
    with closing(os.open("/", DIR_FLAGS)) as root:
        try:
            os.close(openat2(root, b".", DIR_FLAGS, _RESOLVE))
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EPERM):  # missing, or refused by a seccomp filter
                return False
            raise
    return True


HAVE_OPENAT2 = _probe_openat2()
"""Whether the kernel has ``openat2``; tests switch it off to exercise the step-by-step walk."""


def open_root(path: str) -> int:
    """Open the root of a tree (a path the pool controls, never one inside a volume)."""
    return os.open(path, DIR_FLAGS)


def open_dir(root_fd: int, parts: Sequence[bytes]) -> int:
    """A new descriptor for the folder ``parts`` beneath ``root_fd``, never through a symlink.

    ``ELOOP`` means a symlink was on the way, ``ENOTDIR`` something that is not a folder, ``EXDEV`` a mount
    crossing (openat2 only), ``ENOENT`` that something is missing.
    """
    if not parts:
        return os.dup(root_fd)
    if not HAVE_OPENAT2:
        return _walk(root_fd, parts)
    for _attempt in range(16):
        try:
            return openat2(root_fd, b"/".join(parts), DIR_FLAGS, _RESOLVE)
        except (BlockingIOError, InterruptedError):  # EAGAIN: a rename raced the lookup; look again
            continue
    return openat2(root_fd, b"/".join(parts), DIR_FLAGS, _RESOLVE)


def _walk(root_fd: int, parts: Sequence[bytes]) -> int:
    if any(part in (b"", b".", b"..") or b"/" in part for part in parts):  # openat2 needs no such check
        raise OSError(errno.EINVAL, "a path component is empty, '.', '..' or holds '/'", os.fsdecode(b"/".join(parts)))
    fd = os.dup(root_fd)
    try:
        for part in parts:
            child = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat_at(dir_fd: int, name: bytes) -> os.stat_result | None:
    """The entry ``name`` itself (never what a symlink points at), or None if there is none."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def list_names(dir_fd: int) -> list[bytes]:
    """The names in a folder, as bytes, sorted."""
    return sorted(os.fsencode(name) for name in os.listdir(dir_fd))


def rename_at(old_dir_fd: int, old: bytes, new_dir_fd: int, new: bytes, *, exchange: bool) -> None:
    """Swap two entries atomically, or move ``old`` to a ``new`` that must not exist (``EEXIST`` if it
    does): one ``renameat2`` relative to the two folders' descriptors, so readers see one state or the
    other."""
    renameat2(old_dir_fd, old, new_dir_fd, new, RENAME_EXCHANGE if exchange else RENAME_NOREPLACE)


def remove_at(dir_fd: int, name: bytes) -> None:
    """Remove the entry ``name`` of a folder and, if it is a folder, everything in it (idempotent).

    Descends through descriptors opened with ``O_DIRECTORY | O_NOFOLLOW`` on an explicit stack (no
    recursion): a folder swapped for a symlink meanwhile is unlinked as the symlink it has become, a file
    swapped for a folder is emptied and removed as a folder. A folder someone keeps filling is re-read a
    bounded number of times, then ``ENOTEMPTY`` is raised.
    """
    stack: list[tuple[int, bytes, int, list[bytes]]] = []  # (parent fd, name, own fd, names left)
    relists = 0
    try:
        own = _open_to_remove(dir_fd, name)
        if own is None:
            return
        stack.append((dir_fd, name, own, list_names(own)))
        while stack:
            parent, entry, fd, left = stack[-1]
            if left:
                child = left.pop()
                child_fd = _open_to_remove(fd, child)
                if child_fd is not None:
                    stack.append((fd, child, child_fd, list_names(child_fd)))
                continue
            try:
                os.rmdir(entry, dir_fd=parent)
            except FileNotFoundError:
                pass
            except NotADirectoryError:
                os.unlink(entry, dir_fd=parent)
            except OSError as exc:
                relists += 1
                if exc.errno != errno.ENOTEMPTY or relists > _RELIST_BUDGET:
                    raise
                left.extend(list_names(fd))
                continue
            stack.pop()
            os.close(fd)
    finally:
        for _parent, _entry, fd, _left in stack:
            os.close(fd)


def _open_to_remove(dir_fd: int, name: bytes) -> int | None:
    """A descriptor of ``name`` if it is a folder to empty first; else it is unlinked here and None returned."""
    for _attempt in range(_RELIST_BUDGET):
        try:
            return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # became a folder since: open it again
            continue
        return None
    raise OSError(errno.EBUSY, "an entry keeps changing between folder and file", os.fsdecode(name))


def is_special(mode: int) -> bool:
    """FIFOs, sockets and device nodes: listed, never opened, never copied."""
    return not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode))
