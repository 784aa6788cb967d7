"""A tree with every kind of thing a restore must keep, and a signature that compares all of it."""

from __future__ import annotations

import hashlib
import os
import stat

from snapkeep.storage.pool import INTERNAL_NAMES


def make_rich_tree(root: str) -> None:
    """Content, a sparse file with holes, modes, owners, times, xattrs, symlinks, hard links, a FIFO."""
    os.makedirs(os.path.join(root, "dir", "sub"))
    with open(os.path.join(root, "dir", "a.txt"), "w") as f:
        f.write("hello snapshot\n")
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
    with open(os.path.join(root, "sparse.img"), "wb") as f:
        f.seek(64 << 20)
        f.write(b"end")
        f.seek(8 << 20)
        f.write(b"middle")
    os.chmod(os.path.join(root, "dir", "a.txt"), 0o640)
    os.chown(os.path.join(root, "dir", "a.txt"), 1234, 5678)
    os.setxattr(os.path.join(root, "dir", "a.txt"), "user.origin", b"snapkeep-test")
    os.symlink("dir/a.txt", os.path.join(root, "link-in"))
    os.symlink("/etc/hostname", os.path.join(root, "link-out"))
    os.link(os.path.join(root, "big.bin"), os.path.join(root, "dir", "sub", "big-hardlink.bin"))
    os.mkfifo(os.path.join(root, "dir", "fifo"))
    os.utime(os.path.join(root, "dir", "a.txt"), ns=(1_000_000_000_123, 2_000_000_000_456))
    os.utime(os.path.join(root, "dir", "sub"), ns=(3_000_000_000_000, 4_000_000_000_000))


def _allocated_blocks(path: str) -> int:
    return os.lstat(path).st_blocks


def users_entries(volume: str) -> list[str]:
    """The names at a volume's root that are its users' (an XFS image volume also has snapkeep's
    ``.snapkeep``, its size-limit reserve), sorted."""
    return sorted(name for name in os.listdir(volume) if name not in INTERNAL_NAMES)


def tree_signature(root: str, read_limit: int | None = None) -> dict[str, tuple[object, ...]]:
    """Everything about every entry: type, mode, owner, mtime, xattrs, content hash, link target,
    allocated blocks of sparse files (holes), and which entries are hard links of each other.

    Files larger than ``read_limit`` (a volume image of a snapshot: 1 TiB, sparse) are described by size,
    allocation and mtime instead of a content hash."""
    signature: dict[str, tuple[object, ...]] = {}
    inode_names: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames) + sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            xattrs = tuple(
                sorted(
                    (k, os.getxattr(path, k, follow_symlinks=False)) for k in os.listxattr(path, follow_symlinks=False)
                )
            )
            content: object = None
            if stat.S_ISREG(st.st_mode) and read_limit is not None and st.st_size > read_limit:
                content = ("not read", st.st_size, st.st_blocks)
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
                content = (content, st.st_size, _allocated_blocks(path) < st.st_size // 512)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            link_of = inode_names.setdefault(st.st_ino, rel) if st.st_nlink > 1 else None
            mtime = st.st_mtime_ns if not stat.S_ISLNK(st.st_mode) else None
            signature[rel] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                mtime,
                xattrs,
                content,
                link_of,
            )
    return signature
