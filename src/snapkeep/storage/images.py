"""Volumes on XFS pools: each one its own XFS filesystem in a sparse image file, loop-mounted where its
files live, so that a snapshot is one freeze and one clone of one file, whatever the number of files.

The image of a volume whose files are at ``<tree>`` is ``<tree>.xfs`` beside it (``image_of``). Only
snapkeep writes in the directory holding both, so a NAS user cannot fake an image.

- The live filesystem is mounted ``loop,nouuid,discard``: ``nouuid`` because every clone of an image
  (snapshots, restores, volumes restored as new) has the same XFS UUID; ``discard`` so that deleting files
  in the volume frees their blocks in the pool.
- The mountpoint directory is immutable (``chattr +i``), so nothing is written into the pool through it
  while no filesystem covers it (before start-up mounts it, during a restore's swap).
- A clone costs time per extent of the image (~70 us each here; a volume written at random has tens of
  thousands), so a snapshot clones the image *before* the freeze (:func:`data_ranges` records what the
  early copy holds) and, frozen, only catches up (:func:`catch_up`): the ranges written since, no longer
  shared with the early copy, are cloned again, and those freed since are punched out of it. (Cloning the
  whole image while frozen instead saved ~3 ms of a take at 250 extents but made the frozen window 1.6x
  longer; the freeze itself is mostly RCU grace periods, which the pool expedites: ``storage/rcu.py``.)
- A frozen filesystem's image is clean once its log is quiesced: a clone of it mounts read-only with
  ``ro,nouuid,norecovery`` (``ro`` alone refuses, as the log still asks for a replay that finds nothing).
- The size limit is a *reserve* file (``.snapkeep/reserve`` at the volume's root, root-only, allocated
  past its end with ``fallocate(KEEP_SIZE)``: it holds blocks of the volume's filesystem but none of the
  pool's, reads as empty, and is immutable, so no user can remove it): the
  filesystem's capacity minus the reserve is the limit. This kernel has no XFS quota support
  (``CONFIG_XFS_QUOTA`` unset), so project quotas are not an option; a filesystem can grow but not shrink,
  so lowering a limit needs the reserve anyway. Raising a limit past the capacity grows the image
  (truncate, ``losetup -c``, ``xfs_growfs``).

Every command goes through :func:`snapkeep.storage.loopfs.run`; they raise ``OSError`` or ``PoolError``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from snapkeep.errors import InvalidInput, PoolError, PoolFull
from snapkeep.storage.linux import (
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    clone_range,
    fallocate,
    freeze,
    mapped_ranges,
    set_immutable,
    syncfs,
    thaw,
)
from snapkeep.storage.loopfs import run

SUFFIX = ".xfs"
NOMINAL_SIZE = 1 << 40  # sparse; XFS sizes its allocation groups from it, so growing stays rare
LOG_SIZE = "64m"  # mkfs.xfs 6.1's minimum; the only part of an empty image that takes pool space
RESERVE_DIR = ".snapkeep"
RESERVE = "reserve"
GROW_STEP = 1 << 38


def image_of(tree: str) -> str:
    return tree + SUFFIX


def is_image(path: str) -> bool:
    """True if ``path`` is a regular file (never follows a symlink)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def make(image: str, size: int = NOMINAL_SIZE) -> None:
    """A new sparse image holding an empty XFS filesystem with reflink (the root directory mode 0755)."""
    with open(image, "xb") as f:
        f.truncate(size)
    run(["mkfs.xfs", "-q", "-m", "reflink=1", "-l", f"size={LOG_SIZE}", "--", image])


def mount(image: str, mountpoint: str, *, readonly: bool = False) -> None:
    """Loop-mount ``image`` (autoclear: the loop device goes with the unmount)."""
    options = "loop,ro,nouuid,norecovery" if readonly else "loop,nouuid,discard"
    try:
        run(["mount", "-t", "xfs", "-o", options, "--", image, mountpoint])
    except PoolError as exc:
        if "No space left" in exc.message:  # mounting writes (the log) into the image, so into the pool
            raise PoolFull(f"mounting {os.path.basename(image)}: the pool is full") from exc
        raise


def unmount(mountpoint: str) -> None:
    """Unmount; if something still uses the filesystem (an open file), detach it lazily instead."""
    try:
        run(["umount", "--", mountpoint])
    except PoolError:
        run(["umount", "--lazy", "--", mountpoint])


def bind(source: str, target: str) -> None:
    run(["mount", "--bind", "--", source, target])


def ensure_shared_mount(directory: str) -> None:
    """Make ``directory`` a mount of its own (a bind of itself, unless something is mounted there already)
    with shared propagation, whatever the propagation of the mount it is in.

    Shared, so that the mount namespaces made later (libvirt makes one per guest, its mounts slaves of the
    host's) receive every mount and unmount made beneath it: a volume unmounted on the host is unmounted
    in them too, instead of keeping its filesystem, loop device and image alive until the guest stops.
    (Sharing each volume's mount instead would not do: an unmount propagates from its *parent* mount.)
    Under a shared mount ``mount --move`` is refused, so nothing here moves mounts.

    Idempotent, so that opening the pool again (after a crash) finds the bind there and only re-shares
    it. Mounts beneath ``directory`` made before the bind (an upgrade) are unmounted first, or the bind
    would hide them while they still hold their images; the caller mounts the volumes again."""
    real = os.path.realpath(directory)
    if real not in mounts_beneath(real):
        unmount_beneath(real)
        bind(real, real)
    run(["mount", "--make-shared", "--", real])


def ensure_mountpoint(tree: str) -> None:
    """The directory a volume is mounted on, immutable while nothing covers it."""
    if not os.path.lexists(tree):
        os.mkdir(tree, 0o755)
    if not os.path.ismount(tree):
        set_immutable(tree, True)


def remove_mountpoint(tree: str) -> None:
    if os.path.lexists(tree):
        set_immutable(tree, False)
        os.rmdir(tree)


def unmount_beneath(path: str) -> None:
    """Unmount everything at or under ``path``, deepest first. Asks again after each unmount: one unmount
    also takes the copies propagated to its mount's peers (the same path may be listed twice)."""
    while found := mounts_beneath(path):
        unmount(found[0])


def mounts_beneath(path: str) -> list[str]:
    """Mountpoints at or under ``path``, deepest first (from ``/proc/self/mountinfo``)."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = _unescape(line.split()[4])
            if (target + "/").startswith(prefix):
                found.append(target)
    return sorted(found, key=len, reverse=True)


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape").encode("latin-1").decode(errors="surrogateescape")


def _mount_device(mountpoint: str) -> str:
    """The ``major:minor`` of the filesystem mounted at ``mountpoint``."""
    real = os.path.realpath(mountpoint)
    device = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if _unescape(fields[4]) == real:
                device = fields[2]  # the last one listed is the one on top
    if device is None:
        raise OSError(errno.EINVAL, "not a mountpoint", mountpoint)
    return device


def backing_file(mountpoint: str) -> str | None:
    """The file behind the loop device mounted at ``mountpoint`` (None if it is no loop device)."""
    try:
        with open(f"/sys/dev/block/{_mount_device(mountpoint)}/loop/backing_file") as f:
            return f.read().rstrip("\n")
    except FileNotFoundError:
        return None


def mounted_from(tree: str, image: str) -> bool:
    """True if the filesystem mounted at ``tree`` is ``image`` (and not, say, the image a cut-short
    restore swapped out)."""
    if not os.path.ismount(tree):
        return False
    backing = backing_file(tree)
    try:
        return backing is not None and os.path.samefile(backing, image)
    except FileNotFoundError:
        return False


def _open_root(tree: str) -> int:
    """The root directory of the volume's own filesystem; refuses a tree that is not a mountpoint, so that
    a freeze or a reserve never lands on the pool's filesystem."""
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    parent = os.stat(os.path.dirname(tree))
    if os.fstat(fd).st_dev == parent.st_dev:
        os.close(fd)
        raise OSError(errno.EINVAL, "the volume's filesystem is not mounted", tree)
    return fd


def freeze_tree(tree: str) -> None:
    fd = _open_root(tree)
    try:
        freeze(fd)
    finally:
        os.close(fd)


def thaw_tree(tree: str) -> bool:
    """Thaw; False if it was not frozen."""
    fd = _open_root(tree)
    try:
        thaw(fd)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return False
        raise
    finally:
        os.close(fd)
    return True


BASELINE_XATTR = "trusted.snapkeep.baseline"  # on .snapkeep: what an empty filesystem counts as used
END_XATTR = "trusted.snapkeep.reserved"  # on .snapkeep: the reserve is allocated over [0, this)


@contextlib.contextmanager
def _reserve(tree: str) -> Iterator[tuple[int, int]]:
    """The open reserve file and its folder, immutable flags lifted for the duration; a new folder records
    the baseline (the metadata reservations of an empty filesystem, ~0.7 %). Never follows a symlink."""
    root = _open_root(tree)
    try:
        try:
            os.mkdir(RESERVE_DIR, 0o700, dir_fd=root)
            fresh = True
        except FileExistsError:
            fresh = False
        holder = os.open(RESERVE_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root)
        try:
            if os.fstat(holder).st_uid != 0:
                raise PoolError(f"{tree}/{RESERVE_DIR} is not snapkeep's (not owned by root)")
            set_immutable(holder, False)
            try:
                if fresh:
                    os.setxattr(holder, BASELINE_XATTR, str(_used(tree)).encode())
                    os.setxattr(holder, END_XATTR, b"0")
                with _unlocked_reserve(holder) as reserve:
                    yield reserve, holder
            finally:
                set_immutable(holder, True)
        finally:
            os.close(holder)
    finally:
        os.close(root)


@contextlib.contextmanager
def _unlocked_reserve(holder: int) -> Iterator[int]:
    """The reserve open for writing (an immutable file opens read-only only: unlock it through that first)."""
    locked = os.open(RESERVE, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=holder)
    try:
        set_immutable(locked, False)
        try:
            reserve = os.open(RESERVE, os.O_RDWR | os.O_NOFOLLOW, dir_fd=holder)
            try:
                if os.path.sameopenfile(reserve, locked):
                    yield reserve
                else:
                    raise PoolError("the size-limit reserve changed while it was unlocked")
            finally:
                os.close(reserve)
        finally:
            set_immutable(locked, True)
    finally:
        os.close(locked)


def _used(tree: str) -> int:
    st = os.statvfs(tree)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def set_limit(tree: str, limit: int) -> None:
    """Make writes into the volume at ``tree`` fail with ENOSPC once its users hold ``limit`` bytes.

    Only the difference is allocated or freed (XFS reserves a whole range's blocks before it looks at what
    is allocated, so re-allocating the reserve would fail on a full volume; freeing never needs space).
    XFS frees the blocks of deleted files in the background (inode inactivation), and counts them free only
    then: the volume is flushed first, so that files just deleted do not count against a lower limit."""
    syncfs(tree)
    with _reserve(tree) as (reserve, holder):
        baseline = int(os.getxattr(holder, BASELINE_XATTR))
        end = int(os.getxattr(holder, END_XATTR))
        held = os.fstat(reserve).st_blocks * 512
        used = _used(tree) - held - baseline
        if limit < used:
            raise InvalidInput(
                f"the volume holds {used} bytes; a size limit of {limit} bytes is below that", used=used, limit=limit
            )
        capacity = available(tree) + held + used
        if limit > capacity:
            _grow(tree, limit - capacity)
            baseline = _used(tree) - held - used  # a bigger filesystem reserves more for itself
            os.setxattr(holder, BASELINE_XATTR, str(baseline).encode())
            capacity = available(tree) + held + used
        block = os.statvfs(tree).f_frsize
        wanted = (capacity - limit) // block * block
        if wanted < end:
            fallocate(reserve, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, wanted, end - wanted)
        elif wanted > end:
            fallocate(reserve, FALLOC_FL_KEEP_SIZE, end, wanted - end)
        os.setxattr(holder, END_XATTR, str(wanted).encode())


def available(tree: str) -> int:
    """Bytes the volume's users may still write (the reserve that makes its limit is allocated already)."""
    st = os.statvfs(tree)
    return st.f_bavail * st.f_frsize


def _grow(tree: str, missing: int) -> None:
    """Grow the image and its filesystem by at least ``missing`` bytes, while it is mounted."""
    image = image_of(tree)
    size = os.stat(image).st_size + -(-(missing + (1 << 30)) // GROW_STEP) * GROW_STEP
    os.truncate(image, size)
    with open(f"/sys/dev/block/{_mount_device(tree)}/uevent") as f:
        device = next(line.split("=", 1)[1].strip() for line in f if line.startswith("DEVNAME="))
    run(["losetup", "--set-capacity", "--", f"/dev/{device}"])
    run(["xfs_growfs", "-d", "--", tree])


Ranges = list[tuple[int, int]]


def data_ranges(image: str) -> Ranges:
    """Where ``image`` holds data: ``(start, end)`` of each extent."""
    fd = os.open(image, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return [(start, end) for start, end, _shared in mapped_ranges(fd)]
    finally:
        os.close(fd)


def catch_up(live: str, early: str, early_ranges: Ranges) -> None:
    """Make ``early`` (a clone of ``live`` holding ``early_ranges``) equal to ``live`` as it is now: clone
    again every extent of ``live`` not shared any more (written since), punch what ``live`` freed since."""
    src = os.open(live, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dst = os.open(early, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            size = os.fstat(src).st_size
            if os.fstat(dst).st_size != size:
                os.ftruncate(dst, size)
            now: Ranges = []
            for start, end, shared in mapped_ranges(src):
                end = min(end, size)
                if start >= end:
                    continue
                now.append((start, end))
                if not shared:
                    clone_range(src, dst, start, end - start)
            for start, end in minus(early_ranges, now):
                fallocate(dst, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, start, end - start)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def minus(a: Ranges, b: Ranges) -> Ranges:
    """The parts of sorted ranges ``a`` not covered by sorted ranges ``b``."""
    out: Ranges = []
    j = 0
    for start, end in a:
        while j < len(b) and b[j][1] <= start:
            j += 1
        k, cursor = j, start
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cursor:
                out.append((cursor, b[k][0]))
            cursor = max(cursor, b[k][1])
            k += 1
        if cursor < end:
            out.append((cursor, end))
    return out
