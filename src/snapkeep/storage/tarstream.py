"""A folder of a snapshot as a tar archive, made while it is sent: the file browser's folder download.

The archive is written as it is read, a batch of about one chunk at a time, and its length is known only at
its end. The tree is walked the way :mod:`snapkeep.storage.beneath` says, through descriptors only, though a
snapshot's tree cannot change: a symlink is archived as a symlink (its target as text, never followed), so a
link a NAS user made to ``/etc/shadow`` gives the archive that link and not root's file. Entries appear
under the folder's own name, each folder before its contents, in the order the folder lists them; a file
with several names is archived once and linked by its later names. Special files (FIFOs, sockets, devices)
are left out, as an extract skips them. Names need not be UTF-8: PAX headers carry their bytes. Owners,
modes and times (whole seconds, as tar keeps them) go with every entry; extended attributes do not.

What one archive may hold is bounded, since the tree is its users': a folder is read a name at a time (a
million names cost no more memory than one), at most :data:`MAX_DEPTH` folders deep (two descriptors each),
and at most :data:`MAX_LINKS` files with several names are remembered (beyond, a later name is archived
as a copy). An archive that cannot be finished (too deep, an I/O error) ends with a member whose header
promises more than follows, so every tar reader reports it as cut short, even when the connection's end
is the only end the client sees (HTTP/1.0 has no other).
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from snapkeep.storage.beneath import DIR_FLAGS, FILE_READ_FLAGS, is_special, lstat_at

CHUNK = 1 << 20
MAX_DEPTH = 256
MAX_LINKS = 100_000
INCOMPLETE = b"SNAPKEEP-ARCHIVE-INCOMPLETE"
_BLOCK = tarfile.BLOCKSIZE


@dataclass
class _Level:
    fd: int  # the folder, for opening and looking at its entries
    entries: Iterator[os.DirEntry[str]]  # read as they are needed (``os.scandir``: a descriptor of its own)
    path: bytes  # as archived: the top folder's name, then names joined by "/"

    def next_name(self) -> bytes | None:
        entry = next(self.entries, None)
        return None if entry is None else os.fsencode(entry.name)

    def close(self) -> None:
        close = getattr(self.entries, "close", None)
        if close is not None:
            close()
        os.close(self.fd)


class _Batches:
    """Pieces of the archive gathered until there is about a chunk of them to send."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._size = 0

    def add(self, piece: bytes) -> bytes | None:
        """Keep ``piece``; a batch to send once about a chunk has gathered."""
        self._pieces.append(piece)
        self._size += len(piece)
        return self.take() if self._size >= CHUNK else None

    def take(self) -> bytes:
        batch = b"".join(self._pieces)
        self._pieces, self._size = [], 0
        return batch


def _header(path: bytes, st: os.stat_result | None, kind: bytes, size: int = 0, link: bytes = b"") -> bytes:
    info = tarfile.TarInfo(os.fsdecode(path))
    info.type = kind
    if st is not None:
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = st.st_mtime_ns // 10**9  # an int: exact in a PAX header however far from 1970
    info.size = size
    info.linkname = os.fsdecode(link)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _open_level(parent_fd: int, name: bytes, path: bytes) -> _Level:
    fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    try:
        return _Level(fd, os.scandir(fd), path)
    except BaseException:
        os.close(fd)
        raise


def _file_data(dir_fd: int, name: bytes, st: os.stat_result) -> Iterator[bytes]:
    """The bytes of regular file ``name`` (``st`` as looked at before opening), padded to whole blocks."""
    fd = os.open(name, FILE_READ_FLAGS, dir_fd=dir_fd)
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(opened.st_mode):
            raise OSError(errno.ESTALE, "the entry changed while it was archived", os.fsdecode(name))
        left = st.st_size  # the header said this much: send exactly that
        while left:
            chunk = os.read(fd, min(CHUNK, left))
            if not chunk:
                raise OSError(errno.ESTALE, "the file shrank while it was archived", os.fsdecode(name))
            left -= len(chunk)
            yield chunk
    finally:
        os.close(fd)
    if st.st_size % _BLOCK:
        yield bytes(_BLOCK - st.st_size % _BLOCK)


def folder_archive(folder_fd: int, top: bytes) -> Iterator[bytes]:
    """The folder open at ``folder_fd`` (the caller's; it stays open) as a tar archive of ``top/...``.
    Closing the iterator part-way lets every descriptor it opened go."""
    batches = _Batches()
    sent = 0
    try:
        for piece in _pieces(folder_fd, top):
            if batch := batches.add(piece):
                sent += len(batch)
                yield batch
    except Exception:
        # no tar reader takes this for a whole archive: a member promises far more than will ever follow
        yield batches.take() + _header(top + b"/" + INCOMPLETE, None, tarfile.REGTYPE, size=1 << 40)
        raise
    end = batches.take() + bytes(2 * _BLOCK)
    yield end + bytes(-(sent + len(end)) % tarfile.RECORDSIZE)  # whole records, as tar writes them


def _pieces(folder_fd: int, top: bytes) -> Iterator[bytes]:
    """Headers and data of every entry, each folder before its contents."""
    links = _Links()
    yield _header(top, os.fstat(folder_fd), tarfile.DIRTYPE)
    levels = [_open_level(folder_fd, b".", top)]
    try:
        while levels:
            level = levels[-1]
            name = level.next_name()
            if name is None:
                levels.pop().close()
                continue
            path = level.path + b"/" + name
            st = lstat_at(level.fd, name)
            if st is None or is_special(st.st_mode):
                continue
            if stat.S_ISDIR(st.st_mode):
                if len(levels) >= MAX_DEPTH:
                    raise OSError(errno.ELOOP, f"folders nest deeper than {MAX_DEPTH} levels", os.fsdecode(path))
                yield _header(path, st, tarfile.DIRTYPE)
                levels.append(_open_level(level.fd, name, path))
            elif stat.S_ISLNK(st.st_mode):
                yield _header(path, st, tarfile.SYMTYPE, link=os.readlink(name, dir_fd=level.fd))
            elif (first := links.seen(st, path)) is not None:
                yield _header(path, st, tarfile.LNKTYPE, link=first)
            else:
                yield _header(path, st, tarfile.REGTYPE, size=st.st_size)
                yield from _file_data(level.fd, name, st)
    finally:
        for level in levels:
            level.close()


class _Links:
    """Files with several names: the archived path of each, until all its names are archived (at most
    :data:`MAX_LINKS` of them at once; beyond, a later name is archived as a copy, which is just bigger)."""

    def __init__(self) -> None:
        self._first: dict[tuple[int, int], tuple[bytes, int]] = {}  # (device, inode) → (path, names left)

    def seen(self, st: os.stat_result, path: bytes) -> bytes | None:
        """The path a name of this file was archived under, or None: archive it whole (here, at ``path``)."""
        if st.st_nlink < 2:
            return None
        key = (st.st_dev, st.st_ino)
        known = self._first.get(key)
        if known is None:
            if len(self._first) < MAX_LINKS:
                self._first[key] = (path, st.st_nlink - 1)
            return None
        first, left = known
        if left > 1:
            self._first[key] = (first, left - 1)
        else:
            del self._first[key]
        return first
