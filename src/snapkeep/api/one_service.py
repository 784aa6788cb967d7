"""One service per data directory and per pool.

Everything that keeps operations apart lives in the service's memory (the guards), and at start a service
settles what it takes for operations a crash interrupted: it resumes guests left paused, thaws volumes left
frozen, discards half-made snapshots. A second service on the same data directory or pool would do that to
the first one's operations in flight, and hold guards the first cannot see. So ``serve`` holds an
exclusive ``flock`` on ``service.lock`` in each for as long as it runs, and refuses to start while another
process holds one. The kernel lets go of a lock when its holder dies, even by ``kill -9``, so a crash leaves
nothing to clean up; the file keeps the holder's pid, for the refusal's message only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from snapkeep.errors import AlreadyServing, InvalidInput

LOCK_FILE = "service.lock"


def only_service(folder: str, what: str) -> AbstractContextManager[None]:
    """Hold ``folder``'s lock (``what`` names the folder in the refusal: "data directory", "pool")."""
    return _held(os.path.join(folder, LOCK_FILE), folder, what)


@contextmanager
def _held(path: str, folder: str, what: str) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # a folder or a symlink under its name, a read-only filesystem
        raise _cannot_lock(path, folder, what, exc) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device under its name
        os.close(fd)
        raise _cannot_lock(path, folder, what, OSError(errno.EINVAL, "not a regular file"))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise _cannot_lock(path, folder, what, exc) from None
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise AlreadyServing(
                f"another snapkeep service (pid {holder}) is using the {what} {folder}: stop it first (two would "
                "undo each other's operations)",
                folder=folder,
                pid=holder,
            ) from None
        with contextlib.suppress(OSError):  # the pid is for a refusal's message only (a full disk is no reason)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _cannot_lock(path: str, folder: str, what: str, exc: OSError) -> InvalidInput:
    return InvalidInput(
        f"cannot lock the {what} {folder}: {path}: {exc.strerror or exc}; snapkeep keeps a lock file there while it "
        "serves (a regular file it can write)",
        path=path,
    )
