"""Restoring volumes from their snapshots: over the source (after a pre-restore safety snapshot) or as new."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from snapkeep.catalog import repo
from snapkeep.catalog.db import Database
from snapkeep.errors import InvalidInput, NotFound, SnapshotNotReady
from snapkeep.model.names import pre_restore_name, restored_volume_name
from snapkeep.model.types import RestoreMode, Snapshot, SnapshotStatus, Volume
from snapkeep.services.audit import Audit
from snapkeep.services.snapshots import Snapshots, TakeRequest
from snapkeep.services.volumes import Volumes
from snapkeep.storage.pool import Pool

RESTORABLE = (SnapshotStatus.READY, SnapshotStatus.HELD)


class Restores:
    def __init__(
        self,
        db: Database,
        pool: Pool,
        audit: Audit,
        volumes: Volumes,
        snapshots: Snapshots,
        clock: Callable[[], datetime],
        *,
        pre_restore_keep: timedelta,
    ) -> None:
        self._db = db
        self._pool = pool
        self._audit = audit
        self._volumes = volumes
        self._snapshots = snapshots
        self._clock = clock
        self._pre_restore_keep = pre_restore_keep

    def _restorable(self, snap_id: str) -> Snapshot:
        snap = self._snapshots.get(snap_id)
        if snap.status not in RESTORABLE:
            raise SnapshotNotReady(
                f"snapshot {snap.name!r} is {snap.status}, not restorable", snapshot=snap_id
            )
        return snap

    def over_source(
        self,
        snap_id: str,
        mode: RestoreMode = RestoreMode.DATA,
        pre_restore: bool = True,
        actor: str = "system",
    ) -> dict[str, str | None]:
        """Replace the volume's data (and settings, if asked) by the snapshot's, atomically."""
        snap = self._restorable(snap_id)
        manifest = self._snapshots.manifest(snap_id)
        source = manifest.objects[0]
        try:
            volume = self._volumes.get(source.id)
        except NotFound as exc:
            raise NotFound(
                f"volume {source.name!r} no longer exists; restore the snapshot as a new volume instead",
                volume=source.name,
            ) from exc
        safety: Snapshot | None = None
        if pre_restore:
            safety = self._take_pre_restore(volume, actor)
        op_id = f"restore-{uuid.uuid4()}"
        self._pool.restore_dataset(snap_id, source.datasets[0], op_id)
        with self._db.transaction() as s:
            row = repo.get_volume_row(s, volume.id)
            if mode is RestoreMode.DATA_AND_SETTINGS:
                row.description = str(source.config["description"])
                row.size_limit = int(source.config["size_limit"])
                row.settings = dict(source.config["settings"])
            self._audit.done(
                s, actor, "volume.restore", f"volume:{volume.name}", f"from {snap.name} ({mode})"
            )
        return {"volume_id": volume.id, "pre_restore_snapshot_id": safety.id if safety else None}

    def _take_pre_restore(self, volume: Volume, actor: str) -> Snapshot:
        now = self._clock()
        base = pre_restore_name(now)
        names = {snap.name for snap in self._snapshots.listing(volume.id)}
        name = (
            base
            if base not in names
            else next(f"{base}_{n}" for n in range(2, 1000) if f"{base}_{n}" not in names)
        )
        return self._snapshots.take(
            TakeRequest(
                ref=volume.id,
                name=name,
                description="taken before an in-place restore",
                expires_at=now + self._pre_restore_keep,
                origin="pre-restore",
            ),
            actor,
        )

    def check_new_name(self, snap_id: str, name: str | None) -> str:
        """The name a restore as new would use, refused (before any work) if invalid or taken."""
        source = self._snapshots.manifest(snap_id).objects[0]
        new_name = name or restored_volume_name(source.name)
        with self._db.transaction() as s:
            self._volumes.check_free_name(s, new_name, source.owner_tenant_id)
        return new_name

    def as_new(self, snap_id: str, name: str | None = None, actor: str = "system") -> Volume:
        """A new volume with the snapshot's data and settings (``<original>_restored`` by default)."""
        self._restorable(snap_id)
        source = self._snapshots.manifest(snap_id).objects[0]
        new_name = self.check_new_name(snap_id, name)
        size_limit = int(source.config["size_limit"])
        if size_limit <= 0:
            raise InvalidInput("snapshot holds an invalid size limit")
        return self._volumes.create_from_snapshot(
            new_name,
            snap_id,
            source.datasets[0],
            size_limit=size_limit,
            description=str(source.config["description"]),
            settings=dict(source.config["settings"]),
            actor=actor,
        )
