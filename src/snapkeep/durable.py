"""Writing small files so that they survive a crash: the pool's marker and manifests, and the intent files
of the dangerous path (writers stopped, guests frozen or paused) that the reconciler reads after a crash."""

from __future__ import annotations

import os


def write_durably(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename) and flush the directory entry."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
