"""A folder archived as it is sent (the file browser's folder download), on a real folder: what ``tar``
reads back; every descriptor let go when the download is closed part-way (as the server closes it), when
the archive fails, and at its end; the bounds on depth and remembered links; an archive that could not be
finished never reads as a whole one."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import tarfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from snapkeep.model.types import FileEntry
from snapkeep.services.files import Download
from snapkeep.storage import tarstream


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _archive(folder: Path, top: bytes = b"top") -> bytes:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return b"".join(tarstream.folder_archive(fd, top))
    finally:
        os.close(fd)


def _nest(folder: Path, depth: int) -> Path:
    folder.mkdir(exist_ok=True)
    for level in range(depth):
        folder = folder / f"d{level}"
        folder.mkdir()
    return folder


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
        assert sorted(names) == ["top", "top/a", "top/a/b", "top/a/b/f", "top/empty"]
        assert names.index("top/a") < names.index("top/a/b") < names.index("top/a/b/f")  # folders first
        extracted = tar.extractfile("top/a/b/f")
        assert extracted is not None and extracted.read() == b"x" * 513


def test_a_download_closed_half_way_lets_every_descriptor_go(tmp_path: Path) -> None:
    """The server closes the download, not the iterator it was reading (Starlette never closes that)."""
    deepest = _nest(tmp_path / "top", 5)
    for folder in (deepest, deepest.parent):
        (folder / "big").write_bytes(os.urandom(tarstream.CHUNK + 1))
    before = _open_fds()
    fd = os.open(tmp_path / "top", os.O_RDONLY | os.O_DIRECTORY)
    held = ExitStack()
    held.callback(os.close, fd)
    download = Download(FileEntry(name="top", type="dir", size=0, mode=0o755, mtime=0.0), fd, held)
    chunks = download.chunks()
    next(chunks)  # deep inside: two descriptors per folder level and a file open
    assert len(_open_fds() - before) > 6
    download.close()
    assert _open_fds() == before


def test_a_tree_deeper_than_python_recurses_is_archived_up_to_the_bound(tmp_path: Path) -> None:
    depth = tarstream.MAX_DEPTH - 1  # deeper than Python's recursion limit lets a recursive walk go
    _nest(tmp_path, depth)
    with tarfile.open(fileobj=io.BytesIO(_archive(tmp_path))) as tar:
        deepest = max(tar.getmembers(), key=lambda m: len(m.name))
    assert deepest.name == "top/" + "/".join(f"d{level}" for level in range(depth)) and deepest.isdir()


def test_a_tree_past_the_bound_ends_as_an_archive_every_reader_calls_cut_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tarstream, "MAX_DEPTH", 4)
    (_nest(tmp_path / "top", 6) / "f").write_bytes(b"deep")
    (tmp_path / "top" / "first").write_bytes(b"archived before the bound was met")
    before = _open_fds()
    fd = os.open(tmp_path / "top", os.O_RDONLY | os.O_DIRECTORY)
    received = bytearray()
    try:
        with pytest.raises(OSError) as raised:
            for chunk in tarstream.folder_archive(fd, b"top"):
                received += chunk  # what a client got before the connection closed (HTTP/1.0: just that)
    finally:
        os.close(fd)
    assert raised.value.errno == errno.ELOOP and _open_fds() == before
    archive = tmp_path / "cut.tar"
    archive.write_bytes(bytes(received))
    listed = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True, check=False)
    assert listed.returncode != 0, listed  # GNU tar: "Unexpected EOF in archive"
    assert "top/SNAPKEEP-ARCHIVE-INCOMPLETE" in listed.stdout
    with pytest.raises(tarfile.ReadError), tarfile.open(archive) as tar:
        tar.getmembers()


def test_a_folder_that_cannot_be_read_leaks_no_descriptor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _nest(tmp_path / "top", 3)
    real_scandir, calls = os.scandir, []

    def scandir_failing_at_the_third(fd: int) -> object:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.EIO, "an unreadable folder")
        return real_scandir(fd)

    monkeypatch.setattr(tarstream.os, "scandir", scandir_failing_at_the_third)
    before = _open_fds()
    with pytest.raises(OSError):
        _archive(tmp_path / "top")
    assert _open_fds() == before


def test_files_with_several_names_past_the_remembered_ones_are_archived_as_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tarstream, "MAX_LINKS", 1)
    top = tmp_path / "top"
    top.mkdir()
    for name in ("a", "b"):
        (top / name).write_bytes(name.encode() * 3)
        os.link(top / name, top / f"{name}-too")
    with tarfile.open(fileobj=io.BytesIO(_archive(top))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        contents = {}
        for name in ("a", "b"):
            both = [members[f"top/{name}"], members[f"top/{name}-too"]]
            assert sum(m.islnk() for m in both) <= 1
            for member in both:
                read = tar.extractfile(member)
                assert read is not None
                contents[member.name] = read.read()
    assert sum(m.islnk() for m in members.values()) == 1  # one file remembered, the other copied
    assert contents == {"top/a": b"aaa", "top/a-too": b"aaa", "top/b": b"bbb", "top/b-too": b"bbb"}


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
