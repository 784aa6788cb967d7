"""Tenants: isolated virtual data centres inside the system or inside other tenants (they nest).

A tenant owns VMs, volumes, networks, settings and snapshots; its *subtree* is itself and every tenant
beneath it, with all they own. It is *online* while any VM of its subtree runs. Powering a tenant on or
off starts or stops every VM of its subtree through the VM service (the VMs' guards apply), as one job
that holds all of their guards from the request on. Deleting one removes its whole subtree: every check
is made first (nothing running unless forced, no locked snapshot), with the guards of every object held,
so that a refused delete changes nothing; then VMs, volumes, the remaining snapshots, networks, the
subtree's API tokens, settings and the tenants themselves, deepest first. Moving a tenant to another
parent is not offered.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import Busy, Forbidden, NameClash, TenantOnline
from snapkeep.model.names import check_description, check_name
from snapkeep.model.paging import Page, Window, page_of
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.tags import TagKind, check_tags
from snapkeep.model.types import Job, Network, Snapshot, SubjectType, Tenant, VmRecord, VolumeRecord
from snapkeep.model.vmspec import VMState
from snapkeep.services.audit import Audit
from snapkeep.services.guards import Claim, Guards, Need, exclusive
from snapkeep.services.jobs import JobRunner, Progress
from snapkeep.services.networks import Networks
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.tags import add_tags
from snapkeep.services.vms import VMs
from snapkeep.services.volumes import Volumes

_OFF = (VMState.SHUTOFF, VMState.OTHER)


@dataclass(frozen=True)
class TenantView:
    """A tenant as shown: where it sits in the tree, its tags, and whether it is online."""

    tenant: Tenant
    path: str  # its name and its parents' from the top the caller sees: "acme/dev"
    depth: int  # 0 at that top
    online: bool
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Subtree:
    """Everything a tenant's subtree holds, as the catalog has it at one moment."""

    root: Tenant
    tenants: tuple[Tenant, ...]  # deepest first: the order they can be deleted in
    vms: tuple[VmRecord, ...]
    volumes: tuple[VolumeRecord, ...]
    networks: tuple[Network, ...]
    snapshots: tuple[Snapshot, ...]

    def needs(self) -> list[Need]:
        return [
            *(exclusive("tenant", t.id, t.name) for t in self.tenants),
            *(exclusive("vm", v.id, v.name) for v in self.vms),
            *(exclusive("volume", v.id, v.name) for v in self.volumes),
            *(exclusive("snapshot", s.id, s.name) for s in self.snapshots),
        ]

    def ids(self) -> set[tuple[str, str]]:
        return {need.key for need in self.needs()}


def _of_one(snap: Snapshot, tenant_ids: frozenset[str]) -> bool:
    """A tenant snapshot of one of ``tenant_ids`` (its parent's: owned above the subtree, gone with it)."""
    return snap.subject_type == SubjectType.TENANT and snap.subject_id in tenant_ids


class Tenants:
    def __init__(
        self,
        db: Database,
        audit: Audit,
        clock: Callable[[], datetime],
        guards: Guards,
        jobs: JobRunner,
        vms: VMs,
        volumes: Volumes,
        snapshots: Snapshots,
        networks: Networks,
    ) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._guards = guards
        self._jobs = jobs
        self._vms = vms
        self._volumes = volumes
        self._snapshots = snapshots
        self._networks = networks

    # --- creating and changing -----------------------------------------------------------------------
    def create(
        self,
        who: Principal,
        name: str,
        *,
        description: str = "",
        parent: str | None = None,
        tags: Sequence[str] = (),
        new_id: str | None = None,
        also: Callable[[Unit], None] | None = None,
    ) -> TenantView:
        """A tenant under ``parent`` (a tenant the caller sees), else under the caller's own top: the system
        (which takes an admin of the system) or the caller's tenant. ``new_id``: a deleted tenant brought back
        by a rebuild keeps its id; ``also`` runs in the unit that makes it (the rebuild brings back its users
        and profiles with it, all or nothing)."""
        who.require(Role.OPERATOR)
        check_name(name, "tenant name")
        check_description(description)
        check_tags(tags)
        with self._db.unit(who) as uow:
            parent_id = uow.tenants.owner(parent)
            if parent_id is None:
                who.require(Role.ADMIN)
            if uow.tenants.find(name, parent_id) is not None:
                raise NameClash(f"a tenant named {name!r} already exists there", name=name)
            tenant = uow.tenants.insert(
                Tenant(
                    id=new_id or str(uuid.uuid4()),
                    name=name,
                    parent_id=parent_id,
                    description=description,
                    created_at=self._clock(),
                )
            )
            add_tags(uow, TagKind.TENANT, tenant.id, tuple(tags))
            if also is not None:
                also(uow)
            detail = f"parent:{parent_id or 'system'}"
            self._audit.done(uow, who, "tenant.create", f"tenant:{name}", detail, owner=tenant.id)
            return self._view(uow, who, tenant, self._running_owners())

    def update(
        self, who: Principal, ref: str, *, name: str | None = None, description: str | None = None
    ) -> TenantView:
        who.require(Role.OPERATOR)
        if description is not None:
            check_description(description)
        with self._db.unit(who) as uow:
            tenant = uow.tenants.resolve(ref)
            changes: dict[str, str] = {}
            if name is not None and name != tenant.name:
                check_name(name, "tenant name")
                if uow.tenants.find(name, tenant.parent_id) is not None:
                    raise NameClash(f"a tenant named {name!r} already exists there", name=name)
                changes["name"] = name
            if description is not None:
                changes["description"] = description
            tenant = uow.tenants.update(tenant.id, **changes)
            self._audit.done(uow, who, "tenant.update", f"tenant:{tenant.name}", owner=tenant.id)
            return self._view(uow, who, tenant, self._running_owners())

    # --- looking --------------------------------------------------------------------------------------
    def _running_owners(self) -> dict[str | None, bool]:
        """Owner id -> whether one of its own VMs runs now (libvirt's word)."""
        running: dict[str | None, bool] = {}
        for vm in self._vms.listing(who=SYSTEM):  # online-ness, for tenants the caller sees
            if vm.state == VMState.RUNNING:
                running[vm.owner_tenant_id] = True
        return running

    def _view(self, uow: Unit, who: Principal, tenant: Tenant, running: dict[str | None, bool]) -> TenantView:
        names = [tenant.name]
        current = tenant
        while current.parent_id is not None and current.id != who.tenant_id:
            current = uow.tenants.get(current.parent_id)
            names.append(current.name)
        online = any(running.get(t) for t in uow.tenants.subtree_ids(tenant.id))
        tags = uow.tags.of(TagKind.TENANT, tenant.id)
        return TenantView(tenant, "/".join(reversed(names)), len(names) - 1, online, tags)

    def get(self, who: Principal, ref: str) -> TenantView:
        with self._db.unit(who) as uow:
            return self._view(uow, who, uow.tenants.resolve(ref), self._running_owners())

    def tree(self, who: Principal) -> list[TenantView]:
        """Every tenant the caller sees, depth first (each parent before its children), siblings by name."""
        running = self._running_owners()
        with self._db.unit(who) as uow:
            views = [self._view(uow, who, t, running) for t in uow.tenants.visible()]
        return sorted(views, key=lambda v: v.path.split("/"))

    def paths(self, who: Principal) -> dict[str, str]:
        """Tenant id -> its path as the caller sees it (``acme/dev``): for naming owners, without asking
        libvirt which VMs run (as :meth:`tree` does)."""
        with self._db.unit(who) as uow:
            return uow.tenants.paths()

    def page(self, who: Principal, window: Window) -> Page[TenantView]:
        """:meth:`tree` a page at a time, keyed by the tenant's path (names hold no ``/``)."""
        return page_of(self.tree(who), window, lambda v: (v.path,), lambda key: str(key[0]).split("/"))

    def subtree(self, who: Principal, ref: str) -> Subtree:
        with self._db.unit(who) as uow:
            root = uow.tenants.resolve(ref)
            ids = uow.tenants.subtree_ids(root.id)
            tenants = [t for t in uow.tenants.visible() if t.id in ids]
            depth = {t.id: self._view(uow, who, t, {}).depth for t in tenants}
            return Subtree(
                root=root,
                tenants=tuple(sorted(tenants, key=lambda t: -depth[t.id])),
                vms=tuple(v for v in uow.vms.list() if v.owner_tenant_id in ids),
                volumes=tuple(v for v in uow.volumes.list() if v.owner_tenant_id in ids),
                networks=tuple(self._networks.in_subtree(uow, sorted(ids))),
                snapshots=tuple(s for s in uow.snapshots.list() if s.owner_tenant_id in ids or _of_one(s, ids)),
            )

    def _claim(self, who: Principal, ref: str, operation: str, needs: Callable[[Subtree], list[Need]]) -> Claim:
        """The guards of the subtree's objects that ``needs`` names, all or nothing; claimed again if the
        subtree changed while they were being claimed."""
        for _ in range(3):
            plan = self.subtree(who, ref)
            claim = self._guards.claim(operation, needs(plan))
            if self.subtree(who, ref).ids() <= plan.ids():
                return claim
            claim.release()
        raise Busy(f"tenant {ref!r} keeps changing; try again", tenant=ref)

    # --- power ----------------------------------------------------------------------------------------
    def submit_power(self, who: Principal, ref: str, on: bool, force: bool = False, timeout: float = 60.0) -> Job:
        """Start (``on``) or stop every VM of the tenant's subtree, as a job holding all their guards."""
        who.require(Role.OPERATOR)
        operation = "tenant.start" if on else "tenant.stop"
        with self._claim(who, ref, operation, lambda s: [exclusive("vm", v.id, v.name) for v in s.vms]) as claim:
            plan = self.subtree(who, ref)

            def run(progress: Progress) -> dict[str, Any]:
                return self._power(who, plan, on, force, timeout, progress)

            params = {"tenant": plan.root.name, "force": force} if not on else {"tenant": plan.root.name}
            return self._jobs.submit(operation, params, run, claim=claim, owner_tenant_id=plan.root.id)

    def power(self, who: Principal, ref: str, on: bool, force: bool = False, timeout: float = 60.0) -> dict[str, Any]:
        """:meth:`submit_power`, in the caller's thread."""
        who.require(Role.OPERATOR)
        operation = "tenant.start" if on else "tenant.stop"
        with self._claim(who, ref, operation, lambda s: [exclusive("vm", v.id, v.name) for v in s.vms]):
            return self._power(who, self.subtree(who, ref), on, force, timeout, lambda _f, _m: None)

    def _power(
        self, who: Principal, plan: Subtree, on: bool, force: bool, timeout: float, progress: Progress
    ) -> dict[str, Any]:
        changed = []
        for i, record in enumerate(plan.vms):
            vm = self._vms.get(record.id, who=who)
            if on and vm.state != VMState.RUNNING:
                self._vms.start(vm.id, who=who)
                changed.append(vm.name)
            elif not on and vm.state not in _OFF:
                self._vms.stop(vm.id, force, timeout, who=who)
                changed.append(vm.name)
            progress((i + 1) / len(plan.vms), vm.name)
        with self._db.unit(who) as uow:
            action = "tenant.start" if on else "tenant.stop"
            self._audit.done(uow, who, action, f"tenant:{plan.root.name}", ",".join(changed), owner=plan.root.id)
        return {"tenant_id": plan.root.id, "started" if on else "stopped": changed}

    # --- deleting -------------------------------------------------------------------------------------
    def check_may_delete(self, who: Principal, plan: Subtree, force: bool) -> None:
        """Refuse (changing nothing) while a VM of the subtree runs, unless ``force``, or while one of its
        snapshots is immutable and locked (or still being taken). A tenant at the top (under the system) is
        deleted by an admin of the system only; a caller never deletes its own tenant (its whole scope)."""
        if plan.root.parent_id is None:
            who.require(Role.ADMIN)
        if plan.root.id == who.tenant_id:
            raise Forbidden(f"token {who.name!r} belongs to tenant {plan.root.name!r} and cannot delete it")
        running = [r.name for r in plan.vms if self._vms.get(r.id, who=who).state not in _OFF]
        if running and not force:
            raise TenantOnline(
                f"tenant {plan.root.name!r} is online: VM(s) {', '.join(sorted(running))} run; "
                "power it off first or delete with force",
                tenant=plan.root.name,
                running=sorted(running),
            )
        for snap in plan.snapshots:
            self._snapshots.check_deletable(snap, who)

    def submit_delete(self, who: Principal, ref: str, force: bool = False) -> Job:
        """Check everything, claim every object of the subtree, and delete it as a job."""
        who.require(Role.OPERATOR)
        with self._claim(who, ref, "tenant.delete", Subtree.needs) as claim:
            plan = self.subtree(who, ref)
            self.check_may_delete(who, plan, force)

            def run(progress: Progress) -> dict[str, Any]:
                return self._delete(who, plan, progress)

            # the job outlives the tenant: it belongs to the parent (whose callers may delete the tenant)
            params = {"tenant": plan.root.name, "force": force}
            return self._jobs.submit("tenant.delete", params, run, claim=claim, owner_tenant_id=plan.root.parent_id)

    def delete(self, who: Principal, ref: str, force: bool = False) -> dict[str, Any]:
        """:meth:`submit_delete`, in the caller's thread."""
        who.require(Role.OPERATOR)
        with self._claim(who, ref, "tenant.delete", Subtree.needs):
            plan = self.subtree(who, ref)
            self.check_may_delete(who, plan, force)
            return self._delete(who, plan, lambda _f, _m: None)

    def _delete(self, who: Principal, plan: Subtree, progress: Progress) -> dict[str, Any]:
        steps = len(plan.vms) + len(plan.volumes) + 1
        for i, vm in enumerate(plan.vms):
            progress(i / steps, f"VM {vm.name}")
            self._vms.delete(vm.id, self._snapshots, True, who=who)  # running ones were allowed (force)
        for i, volume in enumerate(plan.volumes):
            progress((len(plan.vms) + i) / steps, f"volume {volume.name}")
            self._volumes.delete(volume.id, self._snapshots, who=who)
        with self._db.unit(who) as uow:  # snapshots whose subject had gone already (none of VMs/volumes)
            left = [s for s in plan.snapshots if s.id in {x.id for x in uow.snapshots.list()}]
        for snap in left:
            self._snapshots.delete(snap.id, who=who)
        progress((steps - 1) / steps, "networks and tenants")
        with self._db.unit(who) as uow:
            for network in plan.networks:
                self._networks.remove(uow, who, network)
            subtree_ids = {t.id for t in plan.tenants}
            uow.jobs.hand_over(subtree_ids, plan.root.parent_id)  # the jobs' history outlives the tenants
            uow.audit.hand_over(subtree_ids, plan.root.parent_id)  # and so does the audit log's
            for token in uow.tokens.list():  # its tokens stop working with it
                if token.tenant_id in subtree_ids:
                    uow.tokens.delete(token.id)
            for user in uow.users.in_tenants(frozenset(subtree_ids)):  # and its users (their sessions end)
                uow.users.delete(user.id)
            uow.assignments.forget_tenants(frozenset(subtree_ids))  # their profiles and schedules
            for tenant in plan.tenants:
                uow.settings.replace(tenant.id, {})
                uow.tenants.delete(tenant.id)
            detail, parent = f"{len(plan.tenants)} tenant(s)", plan.root.parent_id
            self._audit.done(uow, who, "tenant.delete", f"tenant:{plan.root.name}", detail, owner=parent)
        return {
            "tenant_id": plan.root.id,
            "tenants": len(plan.tenants),
            "vms": len(plan.vms),
            "volumes": len(plan.volumes),
            "networks": len(plan.networks),
            "snapshots": len(plan.snapshots),
        }
