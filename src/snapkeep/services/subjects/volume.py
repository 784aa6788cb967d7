"""Volumes as subjects: one dataset, captured frozen (image volumes) or with its writers paused when asked;
restored over the source (data, or data and settings) or as a new volume."""

from __future__ import annotations

import uuid

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.engine.capture import Holding
from snapkeep.engine.holds import CannotQuiesce, VolumeFrozen, WritersPaused
from snapkeep.engine.intents import Intents
from snapkeep.errors import InvalidInput, NotFound
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.names import restored_volume_name
from snapkeep.model.principal import Principal
from snapkeep.model.profile import SubjectOfProfile
from snapkeep.model.selection import FULL, Selection
from snapkeep.model.types import RestoreMode, Snapshot, SnapshotKind, SubjectType, Volume, VolumeRecord
from snapkeep.services.audit import Audit, from_snapshot
from snapkeep.services.freeing import Freeing
from snapkeep.services.subjects.base import Effects, RestoreOptions, Subject, refuse_partial, require_owner
from snapkeep.services.subjects.profile_back import PROFILE, PutBack, assigned_profile, put_back_profile
from snapkeep.services.volumes import Volumes
from snapkeep.storage.pool import Pool
from snapkeep.writers.pause import kernel_served, smb_served


class VolumeKind:
    type = SubjectType.VOLUME
    snapshot_kind = SnapshotKind.VOLUME
    keeps_failed_takes = True  # the row says why, until the name is wanted again

    def __init__(
        self,
        pool: Pool,
        db: Database,
        audit: Audit,
        volumes: Volumes,
        freeing: Freeing,
        intents: Intents,
        put_back: PutBack,
        *,
        quiesce_timeout: float,
    ) -> None:
        self._put_back = put_back  # the profile service's: a restore of the settings brings its profile back
        self._pool = pool
        self._db = db
        self._audit = audit
        self._volumes = volumes
        self._freeing = freeing
        self._intents = intents
        self._timeout = quiesce_timeout

    def bring_back_profile(self, recorded: ManifestObject, volume_id: str, who: Principal) -> None:
        """The snapshot profile ``recorded`` says, assigned again (a whole-subtree restore asks it too)."""
        put_back_profile(self._put_back, recorded, SubjectOfProfile.VOLUME, volume_id, who)

    # --- capture -------------------------------------------------------------------------------------
    def resolve(self, uow: Unit, ref: str, selection: Selection = FULL) -> Subject:
        refuse_partial(selection, self.type)
        volume = uow.volumes.resolve(ref)
        return self.subject_of(volume, assigned_profile(uow, SubjectOfProfile.VOLUME, volume.id))

    def subject_of(self, volume: VolumeRecord, profile_id: str | None) -> Subject:
        """The volume as a snapshot of it records it, from its catalog record and its snapshot profile (see
        ``VmKind.subject_of``)."""
        return Subject(
            type=self.type,
            id=volume.id,
            name=volume.name,
            owner_tenant_id=volume.owner_tenant_id,
            datasets=(volume.dataset,),
            config={
                "description": volume.description,
                "size_limit": volume.size_limit,
                "settings": dict(volume.settings),
                PROFILE: profile_id,
            },
        )

    def holds(self, subject: Subject, quiesce: bool, snap_id: str) -> Holding:
        """A volume with a filesystem of its own is always frozen (that is its quiesce); any other is
        quiesced, when asked, by pausing the writers snapkeep can see."""
        if all(self._pool.is_image_volume(d) for d in subject.datasets):
            return Holding([VolumeFrozen(self._pool, subject.datasets, self._intents, snap_id, quiesce=quiesce)])
        if not quiesce:
            return Holding()
        trees = [self._pool.dataset_tree(d) for d in subject.datasets]
        for tree in trees:
            if (export := kernel_served(tree)) is not None:
                return Holding([CannotQuiesce(f"the volume is served by the kernel NFS server (export {export})")])
            if (share := smb_served(tree)) is not None:
                return Holding([CannotQuiesce(f"the volume may be written by the kernel's SMB server ({share})")])
        return Holding([WritersPaused(trees, self._timeout, self._intents, snap_id)])

    def manifest_objects(self, subject: Subject, holding: Holding) -> list[ManifestObject]:
        return [subject.manifest_object()]

    # --- restore -------------------------------------------------------------------------------------
    def check_options(self, options: RestoreOptions) -> None:
        if options.power_off or options.preserve_macs:
            raise InvalidInput("power_off and preserve_macs apply to VM snapshots only")

    def check_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> Effects:
        return Effects.over(source, self._current(source, who).name)

    def restore_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        """Swap the snapshot's data in atomically; the replaced data is queued to be freed in the
        background (:meth:`Pool.retire`), after the restore answers. Settings too, if asked. The limit that
        will apply is set before the replaced data is let go: data over it (the limit was lowered since the
        snapshot) is refused and the swap undone, so the volume keeps its data."""
        volume = self._current(source, who)
        op_id = f"restore-{uuid.uuid4()}"
        settings_too = options.mode is RestoreMode.DATA_AND_SETTINGS
        limit = int(source.config["size_limit"]) if settings_too else volume.size_limit
        self._pool.swap_in_snapshot(snap.id, source.datasets[0], op_id)
        try:  # XFS: the restored image came with its old reserve. Refused if the data is over it: undone
            self._pool.set_size_limit(volume.dataset, limit)
        except BaseException:
            self._pool.swap_back(source.datasets[0], op_id)
            raise
        self._pool.retire(op_id)
        self._freeing.wake()
        with self._db.unit() as uow:
            if settings_too:
                uow.volumes.update(
                    volume.id,
                    description=str(source.config["description"]),
                    size_limit=int(source.config["size_limit"]),
                    settings=dict(source.config["settings"]),
                )
            detail = f"{from_snapshot(snap, volume.owner_tenant_id)} ({options.mode})"
            target = f"volume:{volume.name}"
            self._audit.done(uow, who, "volume.restore", target, detail, owner=volume.owner_tenant_id)
        if settings_too:
            self.bring_back_profile(source, volume.id, who)
        return volume.id

    def new_name(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        name = options.name or restored_volume_name(source.name)
        with self._db.unit() as uow:
            require_owner(uow, self._pool, snap, source)
            self._volumes.check_free_name(uow, name, source.owner_tenant_id)
        return name

    def restore_as_new(
        self, snap: Snapshot, source: ManifestObject, name: str, options: RestoreOptions, who: Principal
    ) -> tuple[str, str]:
        """A new volume with the snapshot's data, description, size limit and settings."""
        size_limit = int(source.config["size_limit"])
        if size_limit <= 0:
            raise InvalidInput("snapshot holds an invalid size limit")
        volume = self._volumes.create_from_snapshot(
            name,
            snap.id,
            source.datasets[0],
            size_limit=size_limit,
            description=str(source.config["description"]),
            settings=dict(source.config["settings"]),
            who=who,
            tenant=source.owner_tenant_id,  # the copy belongs where the original did
        )
        return volume.id, volume.name

    def _current(self, source: ManifestObject, who: Principal) -> Volume:
        try:
            return self._volumes.get(source.id, who=who)
        except NotFound as exc:
            raise NotFound(
                f"volume {source.name!r} no longer exists; restore the snapshot as a new volume instead",
                volume=source.name,
            ) from exc
