"""``filerestore.open_file`` (downloads) while someone swaps the entry it opens, in a real folder: whatever it
hands out is a regular file below the root whose entry describes the very file the descriptor reads.

Snapshots are read-only, so this race needs a tree that changes: a thread keeps replacing the name with
another file of a different size, a symlink to a file outside, and a FIFO, each by one atomic rename.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.errors import SnapkeepError
from snapkeep.storage import filerestore

SMALL, BIG, SECRET = b"small", b"big" * 1000, b"outside the root"


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Let the two threads interleave at nearly every bytecode, so the swap lands between the checks."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_open_file_never_hands_out_another_file_than_it_describes(tmp_path: Path, fast_switching: None) -> None:
    root, outside = tmp_path / "root", tmp_path / "secret"
    root.mkdir()
    outside.write_bytes(SECRET)
    stop = threading.Event()

    def swap() -> None:
        for i in itertools.count():
            if stop.is_set():
                return
            spare = root / "spare"
            match i % 4:
                case 0 | 2:
                    spare.write_bytes(SMALL if i % 4 == 0 else BIG)
                case 1:
                    spare.symlink_to(outside)
                case 3:
                    os.mkfifo(spare)
            os.replace(spare, root / "target")

    swapper = threading.Thread(target=swap)
    swapper.start()
    handed, refused = 0, 0
    try:
        for _ in range(3000):
            try:
                fd, entry = filerestore.open_file(str(root), (b"target",), "target")
            except SnapkeepError:
                refused += 1
                continue
            try:
                data = b""
                while chunk := os.read(fd, 1 << 16):
                    data += chunk
            finally:
                os.close(fd)
            handed += 1
            assert data in (SMALL, BIG)
            assert entry.size == len(data), (entry.size, len(data))  # the Content-Length a download sends
    finally:
        stop.set()
        swapper.join()
    assert handed and refused  # both outcomes were exercised


@pytest.mark.parametrize("swapped_in", ["bigger file", "symlink", "fifo", "folder"])
def test_an_entry_swapped_right_after_its_check_is_refused_or_described_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swapped_in: str
) -> None:
    """The gap between the check (``lstat``) and the open, made certain: the swap happens inside it."""
    root, outside = tmp_path / "root", tmp_path / "secret"
    root.mkdir()
    outside.write_bytes(SECRET)
    (root / "target").write_bytes(SMALL)
    checked = filerestore.lstat_at

    def check_then_swap(dir_fd: int, name: bytes) -> os.stat_result | None:
        st = checked(dir_fd, name)
        spare = root / "spare"
        if swapped_in == "bigger file":
            spare.write_bytes(BIG)
        elif swapped_in == "symlink":
            spare.symlink_to(outside)
        elif swapped_in == "folder":  # a file checked, a folder opened: never read as the file's bytes
            spare.mkdir()
            (root / "target").unlink()  # rename cannot put a folder over a file
        else:
            os.mkfifo(spare)
        os.replace(spare, root / "target")
        return st

    monkeypatch.setattr(filerestore, "lstat_at", check_then_swap)
    try:
        fd, entry = filerestore.open_file(str(root), (b"target",), "target")
    except SnapkeepError as exc:
        assert exc.code in ("invalid_input", "invalid_path"), exc
        assert (root / "target").is_dir() == (swapped_in == "folder")  # the swap did happen
        return
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    assert data == BIG and entry.size == len(BIG), (entry.size, len(data))


@pytest.mark.parametrize("swapped_in", ["file", "symlink", "fifo"])
def test_a_folder_swapped_right_after_its_check_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swapped_in: str
) -> None:
    """A folder download opens the folder it looked at, or nothing: never a file, a FIFO or a link's target."""
    root, outside = tmp_path / "root", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (root / "target").mkdir()
    checked = filerestore.lstat_at

    def check_then_swap(dir_fd: int, name: bytes) -> os.stat_result | None:
        st = checked(dir_fd, name)
        (root / "target").rmdir()
        if swapped_in == "file":
            (root / "target").write_bytes(SMALL)
        elif swapped_in == "symlink":
            (root / "target").symlink_to(outside)
        else:
            os.mkfifo(root / "target")
        return st

    monkeypatch.setattr(filerestore, "lstat_at", check_then_swap)
    with pytest.raises(SnapkeepError) as refused:
        filerestore.open_file(str(root), (b"target",), "target")
    assert refused.value.code in ("invalid_input", "invalid_path"), refused.value
    assert not (root / "target").is_dir() or (root / "target").is_symlink()  # the swap did happen
