"""NAS volumes: create, look up, update and delete (deleting also deletes the volume's snapshots, holding
the guards of the volume and of each of them: :mod:`snapkeep.services.guards`).

Each method takes the caller (``who``): the role it needs is in the table of :mod:`snapkeep.services`,
and the catalog is read in the caller's scope (a volume outside it is :class:`NotFound`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import InvalidInput, NameClash
from snapkeep.model.names import check_description, check_name
from snapkeep.model.paging import Page, Window
from snapkeep.model.principal import Principal, Role
from snapkeep.model.settings import apply_settings
from snapkeep.model.tags import TagKind, check_tags
from snapkeep.model.types import Job, Volume, VolumeRecord
from snapkeep.model.units import check_volume_size
from snapkeep.services.audit import Audit
from snapkeep.services.guards import Claim
from snapkeep.services.jobs import JobRunner, Progress
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.tags import add_tags
from snapkeep.storage.pool import Pool


class Volumes:
    def __init__(self, db: Database, pool: Pool, audit: Audit, clock: Callable[[], datetime], jobs: JobRunner) -> None:
        self._jobs = jobs
        self._db = db
        self._pool = pool
        self._audit = audit
        self._clock = clock

    def to_volume(self, record: VolumeRecord) -> Volume:
        return Volume(
            id=record.id,
            name=record.name,
            description=record.description,
            size_limit=record.size_limit,
            owner_tenant_id=record.owner_tenant_id,
            dataset=record.dataset,
            path=self._pool.dataset_tree(record.dataset),
            created_at=record.created_at,
            settings=record.settings,
        )

    def check_free_name(self, uow: Unit, name: str, owner_tenant_id: str | None) -> None:
        check_name(name, "volume name")
        if uow.volumes.find(name, owner_tenant_id) is not None:
            raise NameClash(f"a volume named {name!r} already exists", name=name)

    def create(
        self,
        name: str,
        size_limit: int | None,
        description: str = "",
        settings: dict[str, Any] | None = None,
        tenant: str | None = None,
        tags: Sequence[str] = (),
        *,
        who: Principal,
    ) -> Volume:
        """A new, empty volume (operator). Without a size limit it gets the pool's size, where limits are not
        enforced; where they are, a size must be chosen (a default would be a limit nobody decided on)."""
        who.require(Role.OPERATOR)
        if size_limit is None:
            if self._pool.limits_enforced:
                raise InvalidInput("a size limit is required: this pool enforces volume size limits")
            size_limit = self._pool.size_bytes()
        check_volume_size(size_limit)
        settings = apply_settings({}, settings or {})
        return self._create(
            name, size_limit, description, settings, who, self._pool.create_dataset, tenant=tenant, tags=tags
        )

    def create_from_snapshot(
        self,
        name: str,
        snap_id: str,
        source_dataset: str,
        *,
        size_limit: int,
        description: str,
        settings: dict[str, Any],
        who: Principal,
        tenant: str | None,
        tags: Sequence[str] = (),
        new_id: str | None = None,
    ) -> Volume:
        """A new volume of ``tenant`` (None: the system) whose data is a writable clone of ``source_dataset``
        in snapshot ``snap_id``; ``new_id``: a deleted volume brought back by a rebuild keeps its id."""

        def clone(dataset: str) -> None:
            self._pool.clone_dataset(snap_id, source_dataset, dataset)

        return self._create(
            name, size_limit, description, settings, who, clone, tenant=tenant, tags=tags, new_id=new_id
        )

    def _create(
        self,
        name: str,
        size_limit: int,
        description: str,
        settings: dict[str, Any],
        who: Principal,
        make_data: Callable[[str], object],
        *,
        tenant: str | None = None,
        tags: Sequence[str] = (),
        new_id: str | None = None,
    ) -> Volume:
        """Data and its size limit first, then the row; a crash between leaves an orphan dataset that the
        reconciler reports. Owned by ``tenant`` (else by the caller's own owner)."""
        check_description(description)
        check_tags(tags)
        with self._db.unit(who) as uow:
            owner = uow.tenants.owner(tenant)
            self.check_free_name(uow, name, owner)
        volume_id = new_id or str(uuid.uuid4())
        dataset = f"volume-{volume_id}"
        make_data(dataset)
        try:
            self._pool.set_size_limit(dataset, size_limit)
            with self._db.unit(who) as uow:
                self.check_free_name(uow, name, owner)
                record = uow.volumes.insert(
                    VolumeRecord(
                        id=volume_id,
                        name=name,
                        description=description,
                        size_limit=size_limit,
                        owner_tenant_id=owner,
                        dataset=dataset,
                        settings=settings,
                        created_at=self._clock(),
                    )
                )
                shown = add_tags(uow, TagKind.VOLUME, record.id, tuple(tags))
                self._audit.done(uow, who, "volume.create", f"volume:{name}", owner=owner)
                return replace(self.to_volume(record), tags=shown)
        except BaseException:
            self._pool.destroy_dataset(dataset)
            raise

    def claim_delete(self, volume: Volume, snapshots: Snapshots) -> Claim:
        """Deleting holds the volume and every snapshot of it (they go with it)."""
        return snapshots.claim_with_snapshots("volume.delete", "volume", volume.id, volume.name)

    def delete(self, ref: str, snapshots: Snapshots, *, who: Principal) -> None:
        """Delete the volume with its own snapshots (operator); refused, changing nothing, while one is locked."""
        who.require(Role.OPERATOR)
        volume = self.get(ref, who)
        with self.claim_delete(volume, snapshots):
            self._delete(volume.id, snapshots, who)

    def submit_delete(self, ref: str, snapshots: Snapshots, *, who: Principal) -> Job:
        """:meth:`delete` as a job, refused synchronously while the volume is busy or a snapshot is locked."""
        who.require(Role.OPERATOR)
        volume = self.get(ref, who)
        with self.claim_delete(volume, snapshots) as claim:
            for snap in snapshots.listing(volume.id, who=who):
                snapshots.check_deletable(snap, who)

            def run(_progress: Progress) -> dict[str, object]:
                self.delete(volume.id, snapshots, who=who)
                return {"volume_id": volume.id}

            params = {"volume": volume.name}
            return self._jobs.submit("volume.delete", params, run, claim=claim, owner_tenant_id=volume.owner_tenant_id)

    def _delete(self, volume_id: str, snapshots: Snapshots, who: Principal) -> None:
        volume = self.get(volume_id, who)
        snapshots.delete_all_of("volume", volume.id, who)
        with self._db.unit(who) as uow:
            uow.volumes.delete(volume.id)
            uow.assignments.forget("volume", volume.id)
            self._audit.done(uow, who, "volume.delete", f"volume:{volume.name}", owner=volume.owner_tenant_id)
        self._pool.destroy_dataset(volume.dataset)

    def get(self, ref: str, who: Principal) -> Volume:
        """Any role."""
        with self._db.unit(who) as uow:
            record = uow.volumes.resolve(ref)
            return replace(self.to_volume(record), tags=uow.tags.of(TagKind.VOLUME, record.id))

    def list(self, tenant: str | None = None, *, who: Principal) -> list[Volume]:
        """The volumes the caller's scope sees (any role); with ``tenant``, those that tenant owns itself."""
        with self._db.unit(who) as uow:
            records = uow.volumes.list(owned_by=uow.tenants.id_of(tenant))
            tags = uow.tags.of_all(TagKind.VOLUME)
            return [replace(self.to_volume(r), tags=tags.get(r.id, ())) for r in records]

    def page(self, window: Window, tenant: str | None = None, *, who: Principal) -> Page[Volume]:
        """:meth:`list` a page at a time (by name, then id)."""
        with self._db.unit(who) as uow:
            records = uow.volumes.page(window, owned_by=uow.tenants.id_of(tenant))
            tags = uow.tags.of_all(TagKind.VOLUME)
            return Page([replace(self.to_volume(r), tags=tags.get(r.id, ())) for r in records.items], records.next)

    def update(
        self,
        ref: str,
        *,
        name: str | None = None,
        description: str | None = None,
        size_limit: int | None = None,
        settings: dict[str, Any] | None = None,
        who: Principal,
    ) -> Volume:
        """Change what is given (operator); ``settings`` is a JSON merge patch (``None`` members remove keys),
        checked before anything is committed."""
        who.require(Role.OPERATOR)
        if description is not None:
            check_description(description)
        with self._db.unit(who) as uow:
            volume = uow.volumes.resolve(ref)
            changes: dict[str, Any] = {}
            if name is not None and name != volume.name:
                self.check_free_name(uow, name, volume.owner_tenant_id)
                changes["name"] = name
            if description is not None:
                changes["description"] = description
            if settings is not None:  # checked before the limit changes the pool
                changes["settings"] = apply_settings(volume.settings, settings)
            if size_limit is not None and size_limit != volume.size_limit:
                check_volume_size(size_limit)
                # refused (InvalidInput) below what the volume holds
                self._pool.set_size_limit(volume.dataset, size_limit)
                changes["size_limit"] = size_limit
            volume = uow.volumes.update(volume.id, **changes)
            self._audit.done(uow, who, "volume.update", f"volume:{volume.name}", owner=volume.owner_tenant_id)
            return self.to_volume(volume)
