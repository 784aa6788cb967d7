"""Restoring volumes from their snapshots: over the source (after a pre-restore safety snapshot) or as new."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from snapkeep.catalog.db import Database
from snapkeep.errors import InvalidInput, NotFound
from snapkeep.model.names import restored_volume_name
from snapkeep.model.types import RestoreMode, Snapshot, Volume
from snapkeep.services.audit import Audit
from snapkeep.services.freeing import Freeing
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.volumes import Volumes
from snapkeep.storage.pool import Pool


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
        freeing: Freeing,
    ) -> None:
        self._freeing = freeing
        self._db = db
        self._pool = pool
        self._audit = audit
        self._volumes = volumes
        self._snapshots = snapshots
        self._clock = clock
        self._pre_restore_keep = pre_restore_keep

    def over_source(
        self,
        snap_id: str,
        mode: RestoreMode = RestoreMode.DATA,
        pre_restore: bool = True,
        actor: str = "system",
    ) -> dict[str, str | None]:
        """Replace the volume's data (and settings, if asked) by the snapshot's, atomically; the replaced
        data is queued to be freed in the background (:meth:`Pool.retire`), after this returns."""
        with self._snapshots.claim_restore(snap_id, as_new=False):
            return self._over_source(snap_id, mode, pre_restore, actor)

    def _over_source(self, snap_id: str, mode: RestoreMode, pre_restore: bool, actor: str) -> dict[str, str | None]:
        snap = self._snapshots.restorable(snap_id)
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
            safety = self._snapshots.take_pre_restore("volume", volume.id, self._pre_restore_keep, actor)
        op_id = f"restore-{uuid.uuid4()}"
        self._pool.swap_in_snapshot(snap_id, source.datasets[0], op_id)
        self._pool.retire(op_id)
        self._freeing.wake()
        settings_too = mode is RestoreMode.DATA_AND_SETTINGS
        limit = int(source.config["size_limit"]) if settings_too else volume.size_limit
        self._pool.set_size_limit(volume.dataset, limit)  # XFS: the restored image came with its old reserve
        with self._db.unit() as uow:
            if settings_too:
                uow.volumes.update(
                    volume.id,
                    description=str(source.config["description"]),
                    size_limit=int(source.config["size_limit"]),
                    settings=dict(source.config["settings"]),
                )
            self._audit.done(uow, actor, "volume.restore", f"volume:{volume.name}", f"from {snap.name} ({mode})")
        return {"volume_id": volume.id, "pre_restore_snapshot_id": safety.id if safety else None}

    def check_new_name(self, snap_id: str, name: str | None) -> str:
        """The name a restore as new would use, refused (before any work) if invalid or taken."""
        source = self._snapshots.manifest(snap_id).objects[0]
        new_name = name or restored_volume_name(source.name)
        with self._db.unit() as uow:
            self._volumes.check_free_name(uow, new_name, source.owner_tenant_id)
        return new_name

    def as_new(self, snap_id: str, name: str | None = None, actor: str = "system") -> Volume:
        """A new volume with the snapshot's data and settings (``<original>_restored`` by default)."""
        with self._snapshots.claim_restore(snap_id, as_new=True):
            return self._as_new(snap_id, name, actor)

    def _as_new(self, snap_id: str, name: str | None, actor: str) -> Volume:
        self._snapshots.restorable(snap_id)
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
