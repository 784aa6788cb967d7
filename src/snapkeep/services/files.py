"""Single-file restores: browse a snapshot read-only and copy chosen paths back into a volume.

Paths are relative to the volume's root. Absolute paths, ``..`` components and symlinks on the way are
refused on both sides, so nothing outside the snapshot is read and nothing outside the volume written.
The copy is built beside its destination and then swapped in, so a full disk leaves the old file whole.
"""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import PurePosixPath

from snapkeep.catalog.db import Database
from snapkeep.errors import InvalidInput, InvalidPath, NotFound
from snapkeep.model.types import FileEntry
from snapkeep.services.audit import Audit
from snapkeep.services.guards import Claim, exclusive, shared
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.volumes import Volumes
from snapkeep.storage.pool import Pool


def safe_parts(path: str) -> list[str]:
    """The components of a relative path, refusing anything that could climb out of its root."""
    if "\x00" in path:
        raise InvalidPath("path must not contain NUL", path=repr(path))
    if path.startswith("/"):
        raise InvalidPath(f"path {path!r} is absolute; give it relative to the volume's root", path=path)
    parts = [p for p in PurePosixPath(path).parts if p not in ("", ".")]
    if ".." in parts:
        raise InvalidPath(f"path {path!r} climbs out with '..'", path=path)
    return parts


def resolve_beneath(root: str, path: str, *, final_may_be_link: bool = True) -> str:
    """``root``/``path`` after checking that no directory on the way is a symlink (which could point out)."""
    current = root
    parts = safe_parts(path)
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        is_last = i == len(parts) - 1
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            if is_last:
                return current
            raise NotFound(f"{'/'.join(parts[: i + 1])!r} does not exist", path=path) from None
        if stat.S_ISLNK(mode) and not (is_last and final_may_be_link):
            raise InvalidPath(f"{'/'.join(parts[: i + 1])!r} is a symlink; it could lead outside", path=path)
        if not is_last and not stat.S_ISDIR(mode):
            raise InvalidPath(f"{'/'.join(parts[: i + 1])!r} is not a directory", path=path)
    return current


def _entry(path: str, name: str) -> FileEntry:
    st = os.lstat(path)
    kind = (
        "dir"
        if stat.S_ISDIR(st.st_mode)
        else "file"
        if stat.S_ISREG(st.st_mode)
        else "symlink"
        if stat.S_ISLNK(st.st_mode)
        else "other"
    )
    target = os.readlink(path) if kind == "symlink" else None
    return FileEntry(
        name=name, type=kind, size=st.st_size, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime, target=target
    )


class Files:
    def __init__(self, db: Database, pool: Pool, audit: Audit, volumes: Volumes, snapshots: Snapshots) -> None:
        self._db = db
        self._pool = pool
        self._audit = audit
        self._volumes = volumes
        self._snapshots = snapshots

    def _snapshot_root(self, snap_id: str) -> str:
        """The file tree of a volume snapshot (VM disk images are not handed out as files)."""
        self._snapshots.get(snap_id)
        source = self._snapshots.manifest(snap_id).objects[0]
        if source.type != "volume":
            raise InvalidInput(f"snapshot {snap_id} is of a {source.type}; only volume snapshots can be browsed")
        return self._pool.snapshot_data_path(snap_id, source.datasets[0])

    def browse(self, snap_id: str, path: str = "") -> list[FileEntry]:
        """The entries of a directory in the snapshot (or the one entry a file path names)."""
        target = resolve_beneath(self._snapshot_root(snap_id), path)
        if not os.path.lexists(target):
            raise NotFound(f"{path!r} does not exist in the snapshot", path=path)
        if not stat.S_ISDIR(os.lstat(target).st_mode):
            return [_entry(target, os.path.basename(target))]
        with os.scandir(target) as entries:
            names = sorted(e.name for e in entries)
        return [_entry(os.path.join(target, name), name) for name in names]

    def check_extract(
        self, snap_id: str, path: str, *, to_volume: str | None = None, to_path: str | None = None
    ) -> tuple[str, str, str, str]:
        """Resolve an extract request: (source, destination, volume name, destination relative path).

        Raises before anything is written, so the API refuses bad requests synchronously.
        """
        if not safe_parts(path):
            raise InvalidPath("name a file or folder to extract, not the whole snapshot (restore it instead)")
        source = resolve_beneath(self._snapshot_root(snap_id), path)
        if not os.path.lexists(source):
            raise NotFound(f"{path!r} does not exist in the snapshot", path=path)
        volume = self._volumes.get(to_volume or self._snapshots.manifest(snap_id).objects[0].id)
        dest_rel = to_path if to_path is not None else path
        if not safe_parts(dest_rel):
            raise InvalidPath("the destination must be a path inside the volume, not its root")
        dest = resolve_beneath(volume.path, dest_rel)
        if not os.path.isdir(os.path.dirname(dest)):
            raise NotFound(f"the destination folder {os.path.dirname(dest_rel)!r} does not exist", path=dest_rel)
        return source, dest, volume.name, dest_rel

    def claim_extract(self, snap_id: str, to_volume: str | None = None) -> Claim:
        """An extract reads the snapshot (shared) and writes into the destination volume (exclusive)."""
        snap = self._snapshots.get(snap_id)
        volume = self._volumes.get(to_volume or snap.subject_id)
        needs = [shared("snapshot", snap.id, snap.name), exclusive("volume", volume.id, volume.name)]
        return self._snapshots.guards.claim("snapshot.extract", needs)

    def extract(
        self,
        snap_id: str,
        path: str,
        *,
        to_volume: str | None = None,
        to_path: str | None = None,
        actor: str = "system",
    ) -> dict[str, str]:
        """Copy ``path`` from the snapshot to ``to_path`` in ``to_volume`` (default: its own place in the
        snapshot's volume), replacing what is there atomically."""
        with self.claim_extract(snap_id, to_volume):
            return self._extract(snap_id, path, to_volume, to_path, actor)

    def _extract(
        self, snap_id: str, path: str, to_volume: str | None, to_path: str | None, actor: str
    ) -> dict[str, str]:
        source, dest, volume_name, dest_rel = self.check_extract(snap_id, path, to_volume=to_volume, to_path=to_path)
        staged = os.path.join(os.path.dirname(dest), f".snapkeep-restore-{uuid.uuid4().hex}")
        self._pool.copy_tree(source, staged)
        self._pool.put_in_place(staged, dest)
        with self._db.transaction() as s:
            self._audit.done(s, actor, "snapshot.extract", f"volume:{volume_name}/{dest_rel}", f"from {snap_id}:{path}")
        return {"volume": volume_name, "path": dest_rel}
