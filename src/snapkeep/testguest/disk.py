"""The test guest's data disk: make it, and inspect it from the host without mounting it.

Reading goes through e2fsprogs (`debugfs` opens the image read-only unless given ``-w``; `e2fsck -n`
changes nothing), so a disk image in a snapshot can be checked without a loop device or a risk of
writing into it. Both are meant for images no running guest is writing to (a stopped VM, a snapshot,
a restored copy): a live image can look torn from outside.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass

from snapkeep.errors import GuestImageError, NotFound

_DEBUGFS_BANNER = "debugfs "


def _run(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
    """Run one e2fsprogs command, returning whatever it printed and its exit status."""
    try:
        return subprocess.run(argv, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise GuestImageError(f"{argv[0]} is not installed (Debian package e2fsprogs)", command=argv) from exc


def make_data_disk(path: str, size: int) -> None:
    """Create ``path`` as a sparse raw file of ``size`` bytes holding an empty ext4 filesystem."""
    with open(path, "wb") as f:
        f.truncate(size)
    os.chmod(path, 0o644)
    done = _run(["mkfs.ext4", "-F", "-q", "--", path])
    if done.returncode != 0:
        raise GuestImageError(f"mkfs.ext4 failed: {done.stderr.decode(errors='replace').strip()}")


def read_file(image: str, path: str) -> bytes:
    """The content of ``path`` inside the ext4 ``image`` (read-only); NotFound if it is not there."""
    done = _run(["debugfs", "-R", f"cat {path}", "--", image])
    problems = [
        line
        for line in done.stderr.decode(errors="replace").splitlines()
        if line.strip() and not line.startswith(_DEBUGFS_BANNER)
    ]
    if done.returncode != 0 or problems:
        message = "; ".join(problems) or f"exit status {done.returncode}"
        if "not found" in message.lower():
            raise NotFound(f"{path} is not in {image}", image=image, path=path)
        raise GuestImageError(f"debugfs cannot read {path} from {image}: {message}")
    return done.stdout


def read_counter(image: str) -> list[int]:
    """The values the guest's writer appended to /data/counter (``/counter`` on the disk)."""
    return parse_counter(read_file(image, "/counter"))


def read_mirror(image: str) -> int | None:
    """The value the writer last put in the first sector of a second disk (raw, no filesystem)."""
    with open(image, "rb") as f:
        text = f.read(512).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


def parse_counter(data: bytes) -> list[int]:
    """Every complete line as an int; a trailing line without its newline is a torn write and ignored."""
    lines = data.decode(errors="replace").split("\n")
    return [int(line) for line in lines[:-1] if line.strip()]


def counter_is_intact(values: list[int]) -> bool:
    """The writer appends n+1 after n, so an intact file is one run of consecutive values."""
    return all(b == a + 1 for a, b in itertools.pairwise(values))


@dataclass(frozen=True)
class FsckResult:
    clean: bool
    report: str


def fsck(image: str) -> FsckResult:
    """A forced, read-only `e2fsck -fn` of ``image``: clean (exit 0) or not, with its report."""
    done = _run(["e2fsck", "-fn", "--", image])
    report = (done.stdout + done.stderr).decode(errors="replace")
    if done.returncode >= 8:
        raise GuestImageError(f"e2fsck could not check {image}: {report.strip()}")
    return FsckResult(done.returncode == 0, report)
