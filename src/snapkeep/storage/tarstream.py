"""A folder of a snapshot as a tar archive, made while it is sent: the file browser's folder download.

The archive is written as it is read, a batch of about one chunk at a time, so a folder of any size costs a
chunk of memory and one descriptor per folder level; its length is not known in advance. The tree is
walked the way :mod:`snapkeep.storage.beneath` says, through descriptors only, though a snapshot's tree
cannot change: a symlink is archived as a symlink (its target as text, never followed), so a link a NAS
user made to ``/etc/shadow`` gives the archive that link and not root's file. Entries appear under the
folder's own name, in name order, folders before their contents; a file with several names is archived once
and linked by its later names. Special files (FIFOs, sockets, devices) are left out, as an extract skips
them. Names need not be UTF-8: PAX headers carry their bytes. Owners, modes and times go with every entry;
extended attributes do not.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

from snapkeep.storage.beneath import DIR_FLAGS, is_special, list_names, lstat_at

CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass
class _Level:
    fd: int
    path: bytes  # as archived: the top folder's name, then names joined by "/"
    left: list[bytes]  # names still to archive, last first


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


def _header(path: bytes, st: os.stat_result, kind: bytes, size: int = 0, link: bytes = b"") -> bytes:
    info = tarfile.TarInfo(os.fsdecode(path))
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = st.st_mtime  # a fraction of a second goes into the PAX header
    info.size = size
    info.linkname = os.fsdecode(link)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _file_data(dir_fd: int, name: bytes, st: os.stat_result) -> Iterator[bytes]:
    """The bytes of regular file ``name`` (``st`` as looked at before opening), padded to whole blocks."""
    fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
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
    """The folder open at ``folder_fd`` (the caller's; it stays open) as a tar archive of ``top/...``."""
    batches = _Batches()
    sent = 0
    for piece in _pieces(folder_fd, top):
        if batch := batches.add(piece):
            sent += len(batch)
            yield batch
    end = batches.take() + bytes(2 * _BLOCK)
    yield end + bytes(-(sent + len(end)) % tarfile.RECORDSIZE)  # whole records, as tar writes them


def _pieces(folder_fd: int, top: bytes) -> Iterator[bytes]:
    """Headers and data of every entry, folders before their contents, each folder's names in order."""
    links: dict[tuple[int, int], bytes] = {}  # (device, inode) of a file with several names → its first path
    yield _header(top, os.fstat(folder_fd), tarfile.DIRTYPE)
    levels = [_Level(os.dup(folder_fd), top, list(reversed(list_names(folder_fd))))]
    try:
        while levels:
            level = levels[-1]
            if not level.left:
                os.close(levels.pop().fd)
                continue
            name = level.left.pop()
            path = level.path + b"/" + name
            st = lstat_at(level.fd, name)
            if st is None or is_special(st.st_mode):
                continue
            if stat.S_ISDIR(st.st_mode):
                yield _header(path, st, tarfile.DIRTYPE)
                fd = os.open(name, DIR_FLAGS, dir_fd=level.fd)
                levels.append(_Level(fd, path, list(reversed(list_names(fd)))))
            elif stat.S_ISLNK(st.st_mode):
                yield _header(path, st, tarfile.SYMTYPE, link=os.readlink(name, dir_fd=level.fd))
            elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
                yield _header(path, st, tarfile.LNKTYPE, link=links[(st.st_dev, st.st_ino)])
            else:
                if st.st_nlink > 1:
                    links[(st.st_dev, st.st_ino)] = path
                yield _header(path, st, tarfile.REGTYPE, size=st.st_size)
                yield from _file_data(level.fd, name, st)
    finally:
        for level in levels:
            os.close(level.fd)
