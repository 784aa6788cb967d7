"""A writer for crash-consistency tests: appends numbered records round-robin across files that a
snapshot walks far apart, and saves a document by rename after each record.

    python -m tests.chain_writer VOLUME_DIR [--durable]

Record ``n`` goes to ``RECORD_FILES[n % len]`` only after record ``n - 1`` is written; ``doc`` is replaced
(write a temporary file, rename it over) with ``n`` right after. A snapshot of one instant therefore holds
records ``0..m`` with none missing, and ``doc`` holds ``m`` (or ``m - 1``: between the append and the rename).

With ``--durable`` each record and each saved document is fsynced before the next step, as an application
that needs its writes ordered across files does. A crash-consistent snapshot (btrfs: what the filesystem
holds at one commit) keeps that order; without ``--durable`` only a frozen filesystem does, since the page
cache writes buffered data back in no particular order (exactly as a power cut would lose it).
"""

from __future__ import annotations

import os
import sys

RECORD_FILES = ["0-rec0", "0-rec1", "0-rec2", "9-rec3", "9-rec4", "9-rec5"]
FILLER_DIR = "5-filler"  # between the record files in name order, so a file-by-file walk takes a while


def make_filler(volume: str, count: int) -> None:
    os.makedirs(os.path.join(volume, FILLER_DIR))
    for i in range(count):
        with open(os.path.join(volume, FILLER_DIR, f"f{i:05d}"), "w") as f:
            f.write(f"{i}\n")


def gaps(volume: str) -> tuple[list[int], int, int | None]:
    """(missing record numbers below the highest one present, the highest one, the number in ``doc``)."""
    seen: set[int] = set()
    for name in RECORD_FILES:
        path = os.path.join(volume, name)
        if os.path.exists(path):
            with open(path) as f:
                seen.update(int(line) for line in f if line.endswith("\n"))
    top = max(seen, default=-1)
    doc = None
    if os.path.exists(os.path.join(volume, "doc")):
        with open(os.path.join(volume, "doc")) as f:
            doc = int(f.read())
    return sorted(set(range(top + 1)) - seen), top, doc


def main() -> None:
    volume = sys.argv[1]
    durable = "--durable" in sys.argv[2:]
    n = 0
    while True:
        with open(os.path.join(volume, RECORD_FILES[n % len(RECORD_FILES)]), "a") as f:
            f.write(f"{n}\n")
            if durable:
                f.flush()
                os.fsync(f.fileno())
        tmp = os.path.join(volume, "doc.tmp")
        with open(tmp, "w") as f:
            f.write(str(n))
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.rename(tmp, os.path.join(volume, "doc"))
        n += 1


if __name__ == "__main__":
    main()
