"""``fdcopy.allocated``: what a file restore's space check counts, in a real folder — the blocks a copy
takes, not the sizes the files claim: holes count nothing, a hard-linked file once, a symlink as itself
(never its target), special files not at all (the copy skips them)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from snapkeep.storage.beneath import DIR_FLAGS, closing
from snapkeep.storage.fdcopy import allocated
from snapkeep.storage.filerestore import held_at

MiB = 1 << 20


def measured(folder: Path, name: str) -> int:
    with closing(os.open(folder, DIR_FLAGS)) as fd:
        return allocated(fd, os.fsencode(name))


def test_counts_blocks_once_and_never_follows(tmp_path: Path) -> None:
    outside = tmp_path / "outside.bin"
    outside.write_bytes(os.urandom(8 * MiB))
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "data.bin").write_bytes(os.urandom(MiB))
    os.link(tree / "sub" / "data.bin", tree / "same.bin")
    with open(tree / "sparse.img", "wb") as f:  # 1 GiB long, 64 KiB of data
        f.seek(1 << 30)
        f.write(os.urandom(64 << 10))
    os.symlink(outside, tree / "to-outside")
    os.mkfifo(tree / "pipe")

    size = measured(tmp_path, "tree")
    assert MiB + (64 << 10) <= size < MiB + MiB // 2, size  # not 2 MiB, not 1 GiB, not the 8 MiB outside
    assert measured(tmp_path, "outside.bin") >= 8 * MiB
    assert measured(tree, "to-outside") < 64 << 10
    assert measured(tree, "pipe") == 0


def test_a_wide_folder_is_walked_with_few_descriptors(tmp_path: Path) -> None:
    """A user's folder with more subfolders than the process may hold descriptors: the walk holds one per
    level of depth, so it neither fails nor starves the service's other threads of descriptors."""
    wide = tmp_path / "wide"
    for i in range(600):
        (wide / f"d{i}").mkdir(parents=True)
    (wide / "d7" / "f.bin").write_bytes(os.urandom(64 << 10))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 64, hard))
    try:
        size = measured(tmp_path, "wide")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert size >= 64 << 10


def test_what_a_restore_replaces_counts_nothing_where_it_cannot_be_walked(tmp_path: Path) -> None:
    """The live entry an extract replaces is measured in a tree its users change: gone, or behind a
    symlink they swapped in, it counts as freeing nothing (the estimate stays on the safe side)."""
    outside = tmp_path / "outside"
    (outside / "docs").mkdir(parents=True)
    (outside / "docs" / "big.bin").write_bytes(os.urandom(MiB))
    volume = tmp_path / "volume"
    (volume / "docs").mkdir(parents=True)
    (volume / "docs" / "a.bin").write_bytes(os.urandom(MiB))
    os.symlink(outside, volume / "swapped")

    assert held_at(str(volume), (b"docs",)) >= MiB
    assert held_at(str(volume), (b"missing",)) == 0
    assert held_at(str(volume), (b"swapped", b"docs")) == 0  # never followed to the MiB outside
