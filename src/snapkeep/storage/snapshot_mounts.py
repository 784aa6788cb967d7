"""Read-only mounts of snapshot images (XFS pools), one per image, shared by everyone reading it.

Reading a snapshot of an image volume means mounting its image on a loop device. A download keeps that
mount for as long as its client keeps the connection open, so a mount per reader would let a few slow
clients use up the host's loop devices and mounts. Here every reader of the same image shares one mount,
counted: the first reader mounts it, the last one out unmounts it (its loop device goes with it).

- **Keyed by the image file itself** (device and inode), not by its path: a snapshot deleted while read
  is unlinked, but its inode lives on behind the loop device until the last reader lets it go, so no other
  image can take the key meanwhile; a reader that still finds the path (it raced the delete) shares the
  mount of the deleted snapshot, as if it had come a moment earlier.
- **A limit for whoever asks for one**: a reader that would need a new mount while ``limit`` images are
  mounted (those being unmounted count until they are) is refused with
  :class:`~snapkeep.errors.SnapshotMountsFull` before anything is mounted; a reader of an image mounted
  already always shares it.
- **Mounting and unmounting happen outside the table's lock** (each image has a lock of its own), so one
  slow mount does not hold up the readers of other images. A reader that comes while the last reader of
  the same image is unmounting it waits for that, then mounts it anew: an image is never mounted twice.
  Mounts live in ``staging/browse-<uuid>``, which the start-up reconciler clears (unmounting first) after
  a crash.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from snapkeep.errors import NotFound, PoolError, SnapshotMountsFull
from snapkeep.storage import images

log = logging.getLogger(__name__)

RETRY_AFTER = 5  # seconds: a hint in the refusal, no promise (mounts go when their readers end)


class _Mount:
    def __init__(self, mountpoint: str) -> None:
        self.mountpoint = mountpoint
        self.readers = 0
        self.mounted = False
        self.lock = threading.Lock()  # held while mounting or unmounting


class SnapshotMounts:
    """The snapshot images mounted to be read, in one pool's ``staging/`` folder."""

    def __init__(self, staging: str) -> None:
        self._staging = staging
        self._lock = threading.Lock()
        self._mounts: dict[tuple[int, int], _Mount] = {}
        self._unmounting: dict[tuple[int, int], threading.Event] = {}  # set once unmounted

    def count(self) -> int:
        """Images mounted now (or being mounted or unmounted)."""
        with self._lock:
            return len(self._mounts) + len(self._unmounting)

    @contextmanager
    def reading(self, image: str, limit: int | None = None) -> Iterator[str]:
        """The root of ``image``'s filesystem, mounted read-only for the block (shared with other readers);
        refused if it is not mounted yet and ``limit`` images are."""
        try:
            st = os.stat(image)
        except FileNotFoundError:
            raise NotFound(f"{os.path.basename(image)} is gone (its snapshot was deleted)") from None
        key = (st.st_dev, st.st_ino)
        while True:
            with self._lock:
                unmounting = self._unmounting.get(key)
                if unmounting is None:
                    mount = self._join(key, limit)
                    break
            unmounting.wait()  # its last reader just left: mount it again once that is done
        try:
            with mount.lock, _translated("mounting a snapshot to read it"):
                if not mount.mounted:
                    _mount(image, mount.mountpoint)
                    mount.mounted = True
            yield mount.mountpoint
        finally:
            self._leave(key, mount)

    def _join(self, key: tuple[int, int], limit: int | None) -> _Mount:
        """One reader more of the image ``key`` (under the table's lock): its mount, new if need be."""
        mount = self._mounts.get(key)
        if mount is None:
            held = len(self._mounts) + len(self._unmounting)
            if limit is not None and held >= limit:
                log.warning("refused to mount another snapshot to read: %d are mounted (the limit)", held)
                raise SnapshotMountsFull(
                    f"{held} snapshots are mounted to be read, as many as this host allows at once "
                    "(snapshot_mounts); try again when a download ends",
                    limit=limit,
                    retry_after=RETRY_AFTER,
                )
            mount = self._mounts[key] = _Mount(os.path.join(self._staging, f"browse-{uuid.uuid4()}"))
        mount.readers += 1
        return mount

    def _leave(self, key: tuple[int, int], mount: _Mount) -> None:
        """One reader less; the last one unmounts. A reader of the same image arriving meanwhile waits
        for that, then mounts it again (so an image is never mounted twice, nor refused for itself)."""
        with self._lock:
            mount.readers -= 1
            if mount.readers:
                return
            del self._mounts[key]
            done = self._unmounting[key] = threading.Event()
        try:
            with mount.lock, _translated("unmounting a snapshot after reading it"):
                if mount.mounted:
                    images.unmount(mount.mountpoint)
                    mount.mounted = False
                    os.rmdir(mount.mountpoint)
        finally:
            with self._lock:
                del self._unmounting[key]
            done.set()


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """The kernel's ``OSError`` as snapkeep's (the commands' failures are ``PoolError`` already)."""
    try:
        yield
    except OSError as exc:
        raise PoolError(f"{action}: {exc.strerror or exc}", errno=exc.errno) from exc


def _mount(image: str, mountpoint: str) -> None:
    os.mkdir(mountpoint, 0o700)
    try:
        images.mount(image, mountpoint, readonly=True)
    except BaseException:
        os.rmdir(mountpoint)
        raise
