"""Writing small files so that they survive a crash: the pool's marker and manifests, and the intent files
of the dangerous path (writers stopped, guests frozen or paused) that the reconciler reads after a crash."""

from __future__ import annotations

import contextlib
import os


def write_durably(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename) and flush the directory entry."""
    _replace_with(path, text, flush=True)
    fsync_dir(os.path.dirname(path))


def write_for_this_boot(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed over it) without flushing it: for an
    intent whose subject does not outlive the machine's uptime (a frozen filesystem). It survives the
    process being killed (the page cache keeps it), which is what it is for; after a power cut it may be
    missing or empty, and then nothing it would name is still held. Saves two flushes (2-7 ms here)."""
    _replace_with(path, text, flush=False)


def _replace_with(path: str, text: str, flush: bool) -> None:
    """``path.tmp`` written (and flushed), then renamed over ``path``; on failure (a full disk) the half-written
    temporary file goes and ``path`` is as it was."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            if flush:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
