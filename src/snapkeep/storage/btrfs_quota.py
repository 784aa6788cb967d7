"""btrfs quota groups through the kernel's ioctls (Debian 12's btrfs-progs 6.2 predates simple quotas).

Layouts and numbers are those of ``include/uapi/linux/btrfs.h``:

- ``BTRFS_IOC_QUOTA_CTL`` = ``_IOWR(0x94, 40, struct btrfs_ioctl_quota_ctl_args {u64 cmd; u64 status;})``
  with ``cmd`` ``BTRFS_QUOTA_CTL_ENABLE`` (1, full qgroups) or ``BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA``
  (4, squota, kernel 6.7+). Enabling when quotas are on already is a no-op that keeps the current mode.
- ``BTRFS_IOC_QGROUP_LIMIT`` = ``_IOR(0x94, 43, struct btrfs_ioctl_qgroup_limit_args {u64 qgroupid;
  struct btrfs_qgroup_limit {u64 flags, max_rfer, max_excl, rsv_rfer, rsv_excl;}})`` — ``_IOR`` although
  the kernel reads it, a historical quirk the number must keep. ``qgroupid`` 0 means "the subvolume of
  the open file", i.e. qgroup ``0/<subvolume id>``.
- ``BTRFS_IOC_QUOTA_RESCAN`` = ``_IOW(0x94, 44, struct btrfs_ioctl_quota_rescan_args {u64 flags; u64
  progress; u64 reserved[6];})`` recounts every qgroup from scratch, in the background (EINPROGRESS: one
  runs already); ``BTRFS_IOC_QUOTA_RESCAN_WAIT`` = ``_IO(0x94, 46)`` waits for it.
- ``BTRFS_IOC_FS_INFO`` = ``_IOR(0x94, 31, 1024 bytes)``; bytes 16..32 are the fsid that names the
  filesystem's directory in sysfs, where the kernel shows the quota mode and each qgroup's counters.

Every function raises ``OSError`` as the kernel reports it (ENOTTY/EINVAL: not btrfs or too old a kernel,
EPERM: not root, EROFS: read-only mount).
"""

from __future__ import annotations

import enum
import errno
import fcntl
import os
import struct
import uuid

BTRFS_IOC_QUOTA_CTL = 0xC0109428
BTRFS_IOC_QGROUP_LIMIT = 0x8030942B
BTRFS_IOC_QUOTA_RESCAN = 0x4040942C
BTRFS_IOC_QUOTA_RESCAN_WAIT = 0x942E
BTRFS_IOC_FS_INFO = 0x8400941F
BTRFS_QUOTA_CTL_ENABLE = 1
BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA = 4
BTRFS_QGROUP_LIMIT_MAX_RFER = 1 << 0
_FS_INFO_SIZE = 1024
_QUOTA_CTL = struct.Struct("=QQ")
_QGROUP_LIMIT = struct.Struct("=Q5Q")


class QuotaMode(enum.Enum):
    """Whether and how quotas are on: sysfs ``qgroups/mode`` says ``qgroup`` or ``squota`` (kernels before
    6.7 have no such file and only full qgroups); no ``qgroups`` directory means quotas are off."""

    OFF = "off"
    FULL = "qgroup"
    SIMPLE = "squota"


def _ioctl(path: str, request: int, arg: bytes) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        buf = bytearray(arg)
        fcntl.ioctl(fd, request, buf)
        return bytes(buf)
    finally:
        os.close(fd)


def enable(path: str, simple: bool = False) -> None:
    """Turn quotas on for the filesystem holding ``path`` (full qgroups, or simple quotas)."""
    cmd = BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA if simple else BTRFS_QUOTA_CTL_ENABLE
    _ioctl(path, BTRFS_IOC_QUOTA_CTL, _QUOTA_CTL.pack(cmd, 0))


def rescan(path: str) -> bool:
    """Start recounting every qgroup of the filesystem; False if a rescan is running already."""
    try:
        _ioctl(path, BTRFS_IOC_QUOTA_RESCAN, bytes(64))
    except OSError as exc:
        if exc.errno == errno.EINPROGRESS:
            return False
        raise
    return True


def wait_for_rescan(path: str) -> None:
    """Return once no rescan runs (the counters are exact then, unless something marked them again)."""
    _ioctl(path, BTRFS_IOC_QUOTA_RESCAN_WAIT, b"")


def set_referenced_limit(subvolume: str, limit: int) -> None:
    """Limit the bytes the subvolume at ``subvolume`` may reference (its qgroup's ``max_rfer``).

    Writes that would take it past the limit fail with EDQUOT; lowering it below what is used already
    is allowed (further writes fail, deletes still work).
    """
    flags = BTRFS_QGROUP_LIMIT_MAX_RFER
    _ioctl(subvolume, BTRFS_IOC_QGROUP_LIMIT, _QGROUP_LIMIT.pack(0, flags, limit, 0, 0, 0))


def fsid(path: str) -> str:
    """The filesystem's UUID (its directory name under ``/sys/fs/btrfs``)."""
    info = _ioctl(path, BTRFS_IOC_FS_INFO, bytes(_FS_INFO_SIZE))
    return str(uuid.UUID(bytes=info[16:32]))


def _sysfs(path: str) -> str:
    return os.path.join("/sys/fs/btrfs", fsid(path), "qgroups")


def mode(path: str) -> QuotaMode:
    """Whether and how quotas are on for the filesystem holding ``path``."""
    qgroups = _sysfs(path)
    if not os.path.isdir(qgroups):
        return QuotaMode.OFF
    try:
        with open(os.path.join(qgroups, "mode")) as f:
            simple = f.read().strip() == QuotaMode.SIMPLE.value
    except FileNotFoundError:
        simple = False
    return QuotaMode.SIMPLE if simple else QuotaMode.FULL


def inconsistent(path: str) -> bool:
    """Whether the kernel says its qgroup counters are not exact (until a rescan has run)."""
    try:
        with open(os.path.join(_sysfs(path), "inconsistent")) as f:
            return f.read().strip() == "1"
    except FileNotFoundError:
        return False


def referenced_room(path: str, subvolume_id: int) -> int | None:
    """Bytes qgroup ``0/<subvolume_id>`` may still reference before its limit (as last committed: writes
    since count at the next commit); None when it has no limit on referenced bytes, or no qgroup."""
    try:
        if not qgroup_counter(path, subvolume_id, "limit_flags") & BTRFS_QGROUP_LIMIT_MAX_RFER:
            return None
        return max(
            0, qgroup_counter(path, subvolume_id, "max_referenced") - qgroup_counter(path, subvolume_id, "referenced")
        )
    except FileNotFoundError:  # quotas off, or a subvolume without a qgroup: nothing limits it
        return None


def qgroup_counter(path: str, subvolume_id: int, counter: str) -> int:
    """One counter of qgroup ``0/<subvolume_id>`` as sysfs shows it (``referenced``, ``max_referenced``…)."""
    with open(os.path.join(_sysfs(path), f"0_{subvolume_id}", counter)) as f:
        return int(f.read())
