"""A folder archived as it is sent (the file browser's folder download), on a real folder: what ``tar``
reads back, descriptors let go however the reading ends, deep trees, files that change under it."""

from __future__ import annotations

import errno
import io
import os
import tarfile
from pathlib import Path

import pytest

from snapkeep.storage import tarstream
from snapkeep.storage.beneath import closing, open_root, remove_at


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _archive(folder: Path, top: bytes = b"top") -> bytes:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return b"".join(tarstream.folder_archive(fd, top))
    finally:
        os.close(fd)


def test_the_archive_is_whole_records_with_every_entry_under_its_top(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_bytes(b"x" * 513)  # data not a whole block: padded
    (tmp_path / "empty").write_bytes(b"")
    before = _open_fds()
    data = _archive(tmp_path)
    assert _open_fds() == before
    assert len(data) % tarfile.RECORDSIZE == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = [m.name for m in tar.getmembers()]
        assert names == ["top", "top/a", "top/a/b", "top/a/b/f", "top/empty"]  # folders first, by name
        extracted = tar.extractfile("top/a/b/f")
        assert extracted is not None and extracted.read() == b"x" * 513


def test_a_download_abandoned_half_way_lets_every_descriptor_go(tmp_path: Path) -> None:
    folder = tmp_path
    for depth in range(5):
        folder = folder / f"d{depth}"
        folder.mkdir()
        (folder / "big").write_bytes(os.urandom(tarstream.CHUNK + 1))
    before = _open_fds()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    chunks = tarstream.folder_archive(fd, b"top")
    for _ in range(4):  # deep inside: a folder descriptor per level and a file open
        next(chunks)
    assert len(_open_fds() - before) > 3
    chunks.close()  # the client went away
    os.close(fd)
    assert _open_fds() == before


def test_a_tree_deeper_than_python_recurses_is_archived(tmp_path: Path) -> None:
    folder = tmp_path
    depth = 1200  # beyond Python's recursion limit; the walk keeps a list, not a call stack
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):  # relative to descriptors: the whole path is longer than the kernel's PATH_MAX
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    try:
        with tarfile.open(fileobj=io.BytesIO(_archive(folder))) as tar:
            deepest = max(tar.getmembers(), key=lambda m: len(m.name))
        assert deepest.name == "top" + "/d" * depth and deepest.isdir()
    finally:  # pytest's own clean-up recurses, and paths this long are beyond it
        with closing(open_root(str(tmp_path))) as root:
            remove_at(root, b"d")


def test_a_file_that_shrinks_under_the_archive_stops_it_rather_than_lie(tmp_path: Path) -> None:
    """Snapshots never change; if a tree did, the archive must not carry fewer bytes than its header said."""
    target = tmp_path / "f"
    target.write_bytes(b"y" * (3 * tarstream.CHUNK))
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        chunks = tarstream.folder_archive(fd, b"top")
        next(chunks)  # the file's header and its first chunk have gone
        os.truncate(target, 10)
        with pytest.raises(OSError) as raised:
            list(chunks)
        assert raised.value.errno == errno.ESTALE
    finally:
        os.close(fd)


@pytest.mark.parametrize("swapped_in", ["folder", "symlink", "fifo"])
def test_a_file_swapped_between_its_look_and_its_open_is_never_read_as_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swapped_in: str
) -> None:
    (tmp_path / "f").write_bytes(b"small")
    (tmp_path / "secret").write_bytes(b"outside")
    looked = tarstream.lstat_at

    def look_then_swap(dir_fd: int, name: bytes) -> os.stat_result | None:
        st = looked(dir_fd, name)
        if name == b"f":
            spare = tmp_path / "spare"
            if swapped_in == "folder":  # rename cannot put a folder over a file: it goes first
                spare.mkdir()
                (tmp_path / "f").unlink()
            elif swapped_in == "symlink":
                spare.symlink_to(tmp_path / "secret")
            else:
                os.mkfifo(spare)
            os.replace(spare, tmp_path / "f")
        return st

    monkeypatch.setattr(tarstream, "lstat_at", look_then_swap)
    with pytest.raises(OSError) as raised:
        _archive(tmp_path)
    assert raised.value.errno in (errno.ESTALE, errno.ELOOP), raised.value
