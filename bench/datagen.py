"""Volume contents for the benchmarks: cheap to make, identical wherever they are made.

Snapshot cost on a copy-on-write filesystem depends on metadata (files, directories, extents), not on the
bytes themselves, so large volumes need not be written byte by byte. Each file gets a head of real random
bytes (at most ``REAL_BYTES_PER_VOLUME`` for the whole volume) and the rest of its size is allocated with
``posix_fallocate``: real, allocated extents (unwritten on XFS, preallocated on btrfs) that snapshots and
reflinks must reference like written ones, without filling the host disk behind the sparse image.

The random bytes come from a seeded generator, so the same spec makes the same bytes in every dataset
(the in-process pool and the server's pool hold identical volumes).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass

MiB = 1 << 20
GiB = 1 << 30
REAL_BYTES_PER_VOLUME = 32 * MiB
FILES_PER_DIR = 1000
WRITE_CHUNK = 4 * MiB


@dataclass(frozen=True)
class VolumeSpec:
    """One point of the benchmark matrix: total apparent size and number of regular files."""

    total_bytes: int
    files: int

    @property
    def label(self) -> str:
        return f"{human_size(self.total_bytes)} / {self.files:,} files"

    @property
    def key(self) -> str:
        return f"{human_size(self.total_bytes).replace(' ', '')}-{self.files}f"


@dataclass(frozen=True)
class DataReport:
    """How a volume's data was made: written so readers of the results know what was measured."""

    files: int
    directories: int
    apparent_bytes: int
    random_bytes_written: int
    fallocated_bytes: int
    seconds: float
    method: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def human_size(n: int) -> str:
    """``16 MiB``, ``1 GiB`` for the matrix's exact sizes; ``15.9 MiB`` for the rest."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= scale:
            return f"{n // scale} {unit}" if n % scale == 0 else f"{n / scale:.1f} {unit}"
    return f"{n} B"


def file_sizes(spec: VolumeSpec) -> tuple[int, int]:
    """Apparent size of each file and how much of its head is real random data."""
    per_file = spec.total_bytes // spec.files
    real = min(per_file, REAL_BYTES_PER_VOLUME // spec.files)
    return per_file, real


def fill_volume(root: str, spec: VolumeSpec, seed: int) -> DataReport:
    """Create ``spec.files`` files under ``root`` in sub-directories of at most ``FILES_PER_DIR`` files.

    Files sit in ``dNNNN/`` folders because a NAS tree is nested, and one directory of 100,000 entries
    would measure directory-size effects rather than file-count ones.
    """
    started = time.monotonic()
    rng = random.Random(seed)
    per_file, real = file_sizes(spec)
    directories = 0
    for index in range(spec.files):
        folder = os.path.join(root, f"d{index // FILES_PER_DIR:04d}")
        if index % FILES_PER_DIR == 0:
            os.mkdir(folder, 0o755)
            directories += 1
        _write_file(os.path.join(folder, f"f{index:06d}.bin"), rng, real, per_file - real)
    return DataReport(
        files=spec.files,
        directories=directories,
        apparent_bytes=per_file * spec.files,
        random_bytes_written=real * spec.files,
        fallocated_bytes=(per_file - real) * spec.files,
        seconds=round(time.monotonic() - started, 3),
        method=describe_method(spec),
    )


def describe_method(spec: VolumeSpec) -> str:
    """One line for the printed output saying how the data was made."""
    per_file, real = file_sizes(spec)
    if real == per_file:
        return f"all {human_size(real * spec.files)} written as seeded random bytes"
    return (
        f"{human_size(real * spec.files)} seeded random bytes (head of each file) + "
        f"{human_size((per_file - real) * spec.files)} by posix_fallocate (allocated, unwritten extents)"
    )


def _write_file(path: str, rng: random.Random, real: int, allocated: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        left = real
        while left > 0:
            size = min(left, WRITE_CHUNK)
            _write_all(fd, rng.randbytes(size))
            left -= size
        if allocated > 0:
            os.posix_fallocate(fd, real, allocated)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` may write less than asked; loop until all of ``data`` is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
