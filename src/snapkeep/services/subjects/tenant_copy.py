"""A tenant restored as a new tenant: beside the original (the same parent), named ``<name> (1)``, ``(2)``…
or as given, with its whole recorded subtree — sub-tenants, networks, settings, volumes cloned from the
snapshot, VMs — every object with a new id, VMs with new MACs and domain UUIDs (disk serials kept).

Works the same for a ``tenant`` snapshot and for one tenant picked out of a ``system`` snapshot: what is
copied is the tenant's subtree as that snapshot recorded it.

A copied network may not overlap its original on this host (every network is realised on it), so each gets
the first free range of the same size after the original's
(:func:`snapkeep.model.network.free_range_like`): what an operator expects of a copy that must run beside
its original; the mapping is in the audit entry. A failure half-way deletes the half-made tenant (one it
cannot delete is logged and left to the operator: by the next start its users may be in it). The next start
deletes the tenant of a copy a crash cut short (:meth:`TenantCopy.undo_interrupted`, called by the
reconciler before requests), named by the intent file written before the first object is made
(``tenant-copy-<id>.json``) and removed as soon as the copy is whole.
"""

from __future__ import annotations

import logging
import uuid

from snapkeep.catalog.db import Database
from snapkeep.engine.intents import IntentKind, Intents
from snapkeep.errors import Forbidden, NameClash, NotFound, SnapkeepError
from snapkeep.model.manifest import Manifest, ManifestObject
from snapkeep.model.names import numbered_name
from snapkeep.model.network import free_range_like
from snapkeep.model.principal import SYSTEM, Principal
from snapkeep.model.types import QuiescePolicy, Snapshot
from snapkeep.model.vmconfig import VMConfig
from snapkeep.services.audit import Audit, from_snapshot
from snapkeep.services.jobs import report_progress
from snapkeep.services.networks import Networks, definition
from snapkeep.services.subjects.rebuild import Recorded
from snapkeep.services.tenants import Tenants
from snapkeep.services.vms import VMs
from snapkeep.services.volumes import Volumes
from snapkeep.storage.pool import Pool

log = logging.getLogger(__name__)


class TenantCopy:
    def __init__(
        self,
        db: Database,
        pool: Pool,
        audit: Audit,
        vms: VMs,
        volumes: Volumes,
        networks: Networks,
        tenants: Tenants,
        intents: Intents,
    ) -> None:
        self._db = db
        self._intents = intents
        self._pool = pool
        self._audit = audit
        self._vms = vms
        self._volumes = volumes
        self._networks = networks
        self._tenants = tenants

    def new_name(self, source: ManifestObject, name: str | None, who: Principal) -> str:
        """The given name, or ``<name> (n)``; refused if taken under the parent, if the parent is gone, or if
        the caller's scope does not hold the parent (the copy goes beside the original, under its parent)."""
        parent = source.owner_tenant_id
        beside = Forbidden(
            f"a copy of tenant {source.name!r} goes beside it, under its parent, which is outside your scope",
            tenant=source.name,
        )
        if parent is None and who.tenant_id is not None:
            raise beside
        with self._db.unit(who) as uow:
            if parent is not None:
                try:
                    uow.tenants.get(parent)
                except NotFound as exc:
                    if exc.outside_scope:
                        raise beside from None
                    raise NotFound(
                        f"the parent of tenant {source.name!r} no longer exists; restore it first",
                        tenant=source.name,
                    ) from None
            if name is None:
                return numbered_name(source.name, lambda n: uow.tenants.find(n, parent) is not None)
            if uow.tenants.find(name, parent) is not None:
                raise NameClash(f"a tenant named {name!r} already exists there", name=name)
            return name

    def as_new(
        self, snap: Snapshot, manifest: Manifest, source: ManifestObject, name: str, who: Principal
    ) -> tuple[str, str]:
        """A copy of the recorded subtree of ``source`` (a tenant) as a new tenant named ``name``."""
        recorded = Recorded.of(manifest, source.id)
        tenants: dict[str | None, str | None] = {source.owner_tenant_id: source.owner_tenant_id}
        for obj in recorded.tenants:
            tenants[obj.id] = str(uuid.uuid4())
        new_root = tenants[source.id]
        assert new_root is not None
        intent = self._intents.make(IntentKind.TENANT_COPY, new_root, {"tenant": new_root, "name": name})
        try:
            moved = self._copy(snap, recorded, source, name, tenants, who)
        except BaseException:
            self._remove_half_made(new_root, name)  # what it cannot remove stays, logged, for the operator
            raise
        finally:  # made whole, or removed in this process: never the next start's to delete
            self._intents.release(intent)
        with self._db.unit() as uow:
            detail = from_snapshot(snap, new_root) + (f"; networks moved: {moved}" if moved else "")
            self._audit.done(uow, who, "tenant.restore_as_new", f"tenant:{name}", detail, owner=new_root)
        return new_root, name

    def undo_interrupted(self) -> list[str]:
        """Delete the tenants that copies a crash cut short left half-made (at start, before requests); the
        names of those deleted. One that cannot be deleted now is left for the next start, logged."""
        undone = []
        for intent in self._intents.listing(IntentKind.TENANT_COPY):
            try:
                record = intent.read()
            except (OSError, ValueError):
                continue
            if self._remove_half_made(record["tenant"], record["name"]):
                self._intents.release(intent)
                undone.append(record["name"])
        return undone

    def _remove_half_made(self, tenant_id: str, name: str) -> bool:
        """Delete the copy ``tenant_id`` with all it holds, as snapkeep (it was never handed over); whether
        nothing of it is left."""
        with self._db.unit() as uow:
            try:
                uow.tenants.get(tenant_id)
            except NotFound:
                return True
        try:
            self._tenants.delete(SYSTEM, tenant_id, force=True)
        except SnapkeepError as exc:
            log.error("removing the half-made tenant %s: %s", name, exc.message)
            return False
        log.warning("removed the tenant %s that a copy left half-made", name)
        return True

    def _copy(
        self,
        snap: Snapshot,
        recorded: Recorded,
        source: ManifestObject,
        name: str,
        tenants: dict[str | None, str | None],
        who: Principal,
    ) -> str:
        report_progress(0.1, "tenants")
        for obj in recorded.tenants:
            self._tenants.create(
                who,
                name if obj.id == source.id else obj.name,
                description=obj.config["description"],
                parent=tenants[obj.owner_tenant_id],
                tags=obj.config["tags"],
                new_id=tenants[obj.id],
            )
        report_progress(0.2, "networks")
        networks: dict[str, str] = {}
        moved = []
        for obj in recorded.networks:
            with self._db.unit() as uow:
                taken = [definition(n) for n in uow.networks.every()]
            cidr = free_range_like(obj.config["cidr"], taken)
            made = self._networks.create(
                who,
                obj.name,
                cidr,
                dhcp=obj.config["dhcp"],
                description=obj.config["description"],
                tenant=tenants[obj.owner_tenant_id],
            )
            networks[obj.id] = made.id
            moved.append(f"{obj.name} {obj.config['cidr']} -> {cidr}")
        with self._db.unit() as uow:
            for obj in recorded.settings:
                uow.settings.replace(tenants[obj.owner_tenant_id], obj.config["document"])
        report_progress(0.4, "volumes")
        for obj in recorded.volumes:
            self._volumes.create_from_snapshot(
                obj.name,
                snap.id,
                obj.datasets[0],
                size_limit=int(obj.config["size_limit"]),
                description=str(obj.config["description"]),
                settings=dict(obj.config["settings"]),
                who=who,
                tenant=tenants[obj.owner_tenant_id],
                tags=obj.config.get("tags", ()),
            )
        report_progress(0.7, "VMs")
        for obj in recorded.vms:
            self._vm_copy(snap, obj, tenants, networks, who)
        return "; ".join(moved)

    def _vm_copy(
        self,
        snap: Snapshot,
        obj: ManifestObject,
        tenants: dict[str | None, str | None],
        networks: dict[str, str],
        who: Principal,
    ) -> None:
        config = VMConfig.model_validate(obj.config["vm"]).with_new_macs()
        nics = tuple(
            n.model_copy(update={"network_id": networks[n.network_id]}) if n.network_id in networks else n
            for n in config.nics
        )
        config = config.model_copy(update={"nics": nics})

        def clone(dataset: str) -> None:
            self._pool.clone_dataset(snap.id, obj.datasets[0], dataset)

        self._vms.create_with(
            obj.name,
            config,
            clone,
            description=str(obj.config["description"]),
            quiesce_policy=QuiescePolicy(str(obj.config["quiesce_policy"])),
            agent_timeout=float(obj.config["agent_timeout"]),
            who=who,
            owner_tenant_id=tenants[obj.owner_tenant_id],
            tags=obj.config.get("tags", ()),
        )
