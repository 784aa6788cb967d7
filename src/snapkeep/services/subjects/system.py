"""The system, a tenant's own system, and a tenant seen from its parent, as subjects: everything in a subtree
captured at one instant.

- ``system`` snapshots: of the whole system (subject ``system``, owned by the system) or of one tenant's
  subtree taken as that tenant's own (subject the tenant, owned by it). A caller scoped to a tenant who asks
  for ``system`` gets its own tenant's.
- ``tenant`` snapshots: one tenant's subtree, taken by its parent (owned by the parent, so the tenant itself
  does not see them).

One instant: every running VM in the subtree is paused (crash-consistent; no guest freeze, which would take
each agent's time in turn) and every volume with a filesystem of its own frozen, for the capture of all
datasets, in one engine plan (:func:`snapkeep.engine.capture.capture`) whose ``finally`` resumes them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from snapkeep.catalog.stores import Unit
from snapkeep.engine.capture import Hold, Holding
from snapkeep.engine.holds import GuestsPaused, VolumeFrozen
from snapkeep.engine.intents import Intents
from snapkeep.errors import Forbidden, InvalidInput, TenantOnline, VMStateConflict
from snapkeep.hypervisor import Hypervisor
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.principal import Principal
from snapkeep.model.selection import FULL, Selection
from snapkeep.model.types import RestoreMode, Snapshot, SnapshotKind, SubjectType
from snapkeep.model.vmspec import VMState
from snapkeep.services.subjects.base import WHOLE_SYSTEM, Effects, RestoreOptions, Subject
from snapkeep.services.subjects.estate import Estate, EstateCache
from snapkeep.services.subjects.vm import VmKind
from snapkeep.services.subjects.volume import VolumeKind
from snapkeep.storage.pool import Pool

if TYPE_CHECKING:  # these use the services built after the kinds (snapshots, tenants)
    from snapkeep.services.subjects.rebuild import Rebuild
    from snapkeep.services.subjects.tenant_copy import TenantCopy


@dataclass(frozen=True)
class SubtreeSubject(Subject):
    estate: Estate | None = None  # what the subtree holds, read when the subject was resolved


def _estate(subject: Subject) -> Estate:
    assert isinstance(subject, SubtreeSubject) and subject.estate is not None, "not a subtree subject"
    return subject.estate


class _SubtreeKind:
    """What system and tenant snapshots share: the estate of a subtree, held still all at once."""

    type: SubjectType
    snapshot_kind: SnapshotKind
    keeps_failed_takes = False  # a failed system take records nothing (its job and the audit log say why)

    def __init__(
        self, host: Hypervisor, pool: Pool, vm_kind: VmKind, volume_kind: VolumeKind, intents: Intents
    ) -> None:
        self._host = host
        self._pool = pool
        self._vm_kind = vm_kind
        self._volume_kind = volume_kind
        self._intents = intents
        self._restorers: tuple[Rebuild, TenantCopy] | None = None
        self._estates = EstateCache()

    def use(self, rebuild: Rebuild, copies: TenantCopy) -> None:
        """Restores of the whole subtree go through ``rebuild`` (in place) and ``copies`` (as a new tenant),
        built after the kinds: they delete and make objects through the services that need the kinds."""
        self._restorers = (rebuild, copies)

    @property
    def rebuild(self) -> Rebuild:
        assert self._restorers is not None, "the container hands every subtree kind its restorers"
        return self._restorers[0]

    @property
    def copies(self) -> TenantCopy:
        assert self._restorers is not None, "the container hands every subtree kind its restorers"
        return self._restorers[1]

    def _root(self, source: ManifestObject) -> str | None:
        """The tenant whose subtree ``source`` is (None: the whole system)."""
        if source.type == "system":
            root = source.config["root"]
            return None if root is None else str(root)
        return source.id

    def _subject(
        self, uow: Unit, subject_id: str, name: str, owner: str | None, root: str | None, selection: Selection
    ) -> Subject:
        estate = self._estates.read(uow, root, selection, self._vm_kind, self._volume_kind)
        return SubtreeSubject(
            type=self.type,
            id=subject_id,
            name=name,
            owner_tenant_id=owner,
            datasets=estate.datasets(),
            config={"root": root, "selection": selection.as_json()},
            members=estate.members(),
            estate=estate,
        )

    def holds(self, subject: Subject, quiesce: bool, snap_id: str) -> Holding:
        """Every image volume frozen, then every running VM paused: crash-consistent across all of them (a
        guest writing to a frozen volume, through NFS say, is paused with that write still pending). The
        freezes come first so that their time is not spent with the guests paused; the disks of VMs that
        are off are at rest (the take holds their guards), captured before anything is held."""
        if quiesce:
            raise InvalidInput(
                "system and tenant snapshots are crash-consistent: every VM is paused at one instant; "
                "quiesce applies to VM and volume snapshots"
            )
        estate = _estate(subject)
        holds: list[Hold] = []
        images = [d for s in estate.volumes for d in s.datasets if self._pool.is_image_volume(d)]
        if images:
            holds.append(VolumeFrozen(self._pool, images, self._intents, snap_id, quiesce=False))
        states = self._states(estate)
        domains = [estate.domains[vm_id] for vm_id, state in sorted(states.items()) if state is VMState.RUNNING]
        if domains:
            holds.append(GuestsPaused(self._host, domains, self._intents, snap_id))
        off = [vm for vm in estate.vms if states[vm.id] is VMState.SHUTOFF]
        at_rest = frozenset(d for vm in off for d in vm.datasets)
        running = frozenset(vm_id for vm_id, state in states.items() if state is VMState.RUNNING)
        return Holding(holds, at_rest, running, partial(self._still_off, estate, off))

    def manifest_objects(self, subject: Subject, holding: Holding) -> list[ManifestObject]:
        """Every member; a VM is recorded as running if it ran at the capture (a VM paused by someone else
        is not: a whole restore leaves it off)."""
        objects = _estate(subject).objects(holding.running)
        return [subject.manifest_object(), *objects] if self.type is SubjectType.SYSTEM else objects

    def _still_off(self, estate: Estate, off: Sequence[Subject]) -> None:
        """Refuse a capture in which a VM whose disks were captured at rest (it was off) was started before
        the others were captured: its disks would be from before its start, not from the instant of the rest."""
        states = self._host.states([estate.domains[vm.id] for vm in off])
        started = [vm.name for vm in off if states.get(estate.domains[vm.id], VMState.SHUTOFF) is not VMState.SHUTOFF]
        if started:
            raise VMStateConflict(
                f"VM {', '.join(repr(name) for name in started)} started while the snapshot was being taken (its "
                "disks were captured while it was off, before the others): take the snapshot again",
                vms=started,
            )

    def _states(self, estate: Estate) -> dict[str, VMState]:
        """Each VM's state by id, as libvirt says now (a VM without a domain is off)."""
        states = self._host.states(list(estate.domains.values()))
        return {vm_id: states.get(domain, VMState.SHUTOFF) for vm_id, domain in estate.domains.items()}

    # --- restore (the whole subtree) ---------------------------------------------------------------------
    def check_options(self, options: RestoreOptions) -> None:
        if options.mode is not RestoreMode.DATA or options.preserve_macs:
            raise InvalidInput("mode and preserve_macs apply to volume and VM restores; name a --vm or --volume")

    def check_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> Effects:
        """Everything :meth:`Rebuild.check_over` checks (again in the job, once every member is held), and
        that a tenant deleted since is not asked for a pre-restore snapshot: there is nothing to take."""
        root = self._root(source)
        if root is not None and options.pre_restore and not self.rebuild.exists(root):
            raise InvalidInput(
                f"tenant {source.name!r} no longer exists, so there is nothing to take a pre-restore snapshot "
                "of: restore it without one (pre_restore off), or as a new tenant",
                tenant=source.name,
            )
        return self.rebuild.effects(
            self.rebuild.check_over(snap, self.rebuild.manifest(snap), root, who, options.started_at)
        )

    def restore_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        """The whole subtree as the snapshot recorded it (:meth:`Rebuild.over`)."""
        self.rebuild.over(snap, self.rebuild.manifest(snap), self._root(source), who, options.started_at)
        return source.id

    def new_name(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        raise InvalidInput(f"a {self.type} cannot be restored as new; restore one tenant of it as new")

    def restore_as_new(
        self, snap: Snapshot, source: ManifestObject, name: str, options: RestoreOptions, who: Principal
    ) -> tuple[str, str]:
        raise InvalidInput(f"a {self.type} cannot be restored as new; restore one tenant of it as new")


class SystemKind(_SubtreeKind):
    type = SubjectType.SYSTEM
    snapshot_kind = SnapshotKind.SYSTEM

    def resolve(self, uow: Unit, ref: str, selection: Selection = FULL) -> Subject:
        """``system``: the caller's whole scope (the system, or its own tenant); else a tenant, whose own
        system snapshot it is."""
        top = uow.tenants.owner(None)  # the scope's own tenant, None for the system
        tenant = uow.tenants.get(top) if ref == WHOLE_SYSTEM and top is not None else None
        if ref != WHOLE_SYSTEM:
            tenant = uow.tenants.resolve(ref)
        if tenant is None:
            return self._subject(uow, WHOLE_SYSTEM, WHOLE_SYSTEM, None, None, selection)
        return self._subject(uow, tenant.id, tenant.name, tenant.id, tenant.id, selection)


class TenantKind(_SubtreeKind):
    type = SubjectType.TENANT
    snapshot_kind = SnapshotKind.TENANT

    def resolve(self, uow: Unit, ref: str, selection: Selection = FULL) -> Subject:
        """A tenant's subtree, as its parent's snapshot: the caller must see the parent (a tenant's own
        snapshots of itself are system snapshots)."""
        tenant = uow.tenants.resolve(ref)
        if tenant.id == uow.tenants.owner(None):
            raise Forbidden(
                f"a tenant snapshot of {tenant.name!r} is its parent's to take; take a system snapshot "
                "of your own tenant instead",
                tenant=tenant.name,
            )
        return self._subject(uow, tenant.id, tenant.name, tenant.parent_id, tenant.id, selection)

    # --- restore: the tenant's subtree over itself, or as a new tenant ----------------------------------
    def check_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> Effects:
        """Refused while the tenant is online (a VM of its subtree runs): its owner stops it first."""
        self._refuse_online(source)
        return super().check_over(snap, source, options, who)

    def _refuse_online(self, source: ManifestObject) -> None:
        running = self.rebuild.running(source.id)
        if running:
            raise TenantOnline(
                f"tenant {source.name!r} is online: VM(s) {', '.join(running)} run; power it off first",
                tenant=source.name,
                running=running,
            )

    def restore_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        """``source`` is the tenant as recorded: of a tenant snapshot, or one tenant of a system snapshot.
        Still offline? (A VM may have been started since the request; the rebuild then holds them all.)"""
        self._refuse_online(source)
        return super().restore_over(snap, source, options, who)

    def new_name(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        return self.copies.new_name(source, options.name, who)

    def restore_as_new(
        self, snap: Snapshot, source: ManifestObject, name: str, options: RestoreOptions, who: Principal
    ) -> tuple[str, str]:
        """A new tenant beside the original, with a copy of its recorded subtree (:mod:`.tenant_copy`)."""
        return self.copies.as_new(snap, self.rebuild.manifest(snap), source, name, who)
