"""A pool of its own for hosts whose data directory is on neither btrfs nor XFS: a btrfs image file,
loop-mounted. Used by the embedded default (and by the tests, which make their pools the same way)."""

from __future__ import annotations

import contextlib
import os
import subprocess

from snapkeep.errors import PoolError


def run(argv: list[str]) -> str:
    """Run one storage command; its stderr becomes the error message."""
    try:
        done = subprocess.run(argv, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        raise PoolError(f"{argv[0]} failed: {exc.stderr.strip() or exc.returncode}", command=argv) from exc
    except FileNotFoundError as exc:
        raise PoolError(f"{argv[0]} is not installed (run scripts/setup)", command=argv) from exc
    return done.stdout


def is_mountpoint(path: str) -> bool:
    return os.path.ismount(path)


def make_filesystem(image: str, size: str, fstype: str) -> None:
    """Create a sparse image file holding a new btrfs or XFS-with-reflink filesystem."""
    run(["truncate", "-s", size, "--", image])
    if fstype == "btrfs":
        run(["mkfs.btrfs", "-q", "-f", image])
    elif fstype == "xfs":
        run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", image])
    else:
        raise PoolError(f"unknown filesystem type {fstype!r}")


def make_image_whole(image: str, size: str, fstype: str) -> None:
    """:func:`make_filesystem`, made under a temporary name and published by one rename: a process killed
    while making it leaves no half image under ``image`` (one that every later mount would refuse)."""
    made = image + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(made)
    make_filesystem(made, size, fstype)
    os.rename(made, image)


def mount_loop(image: str, mountpoint: str) -> None:
    os.makedirs(mountpoint, mode=0o755, exist_ok=True)
    run(["mount", "-o", "loop", "--", image, mountpoint])
    os.chmod(mountpoint, 0o755)


def unmount(mountpoint: str) -> None:
    """Unmount (the loop device is detached with it, as mount -o loop set autoclear)."""
    run(["umount", "--", mountpoint])
