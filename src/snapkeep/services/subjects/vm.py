"""VMs as subjects: their disks captured at one instant (a running guest frozen through its agent when asked,
and paused for the capture); restored over the VM (disks and configuration, the VM off) or as a new VM.

Restoring over a VM swaps its dataset for the snapshot's in one atomic exchange and redefines its domain
from the snapshot's configuration, keeping its name and libvirt UUID. A new VM gets a new UUID and new MACs
(unless asked to keep them), and keeps the disk serials, so guests that name disks by serial find them.
"""

from __future__ import annotations

import logging
import uuid

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.engine.capture import Hold, Holding
from snapkeep.engine.holds import CannotQuiesce, GuestFrozen, GuestsPaused
from snapkeep.engine.intents import Intents
from snapkeep.errors import InvalidInput, NotFound, SnapkeepError
from snapkeep.hypervisor import Hypervisor
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.names import numbered_name, restored_vm_name
from snapkeep.model.principal import Principal
from snapkeep.model.profile import SubjectOfProfile
from snapkeep.model.selection import FULL, Selection
from snapkeep.model.types import VM, QuiescePolicy, RestoreMode, Snapshot, SnapshotKind, SubjectType, VmRecord
from snapkeep.model.vmconfig import VMConfig
from snapkeep.model.vmspec import VMState
from snapkeep.services.audit import Audit, from_snapshot
from snapkeep.services.freeing import Freeing
from snapkeep.services.subjects.base import (
    Effects,
    RestoreOptions,
    Subject,
    recorded_name,
    refuse_partial,
    require_owner,
)
from snapkeep.services.subjects.profile_back import PROFILE, PutBack, assigned_profile, put_back_profile
from snapkeep.services.vms import VMs
from snapkeep.storage.pool import Pool

log = logging.getLogger(__name__)


class VmKind:
    type = SubjectType.VM
    snapshot_kind = SnapshotKind.VM
    keeps_failed_takes = True  # the row says why, until the name is wanted again

    def __init__(
        self,
        host: Hypervisor,
        pool: Pool,
        db: Database,
        audit: Audit,
        vms: VMs,
        freeing: Freeing,
        intents: Intents,
        put_back: PutBack,
    ) -> None:
        self._put_back = put_back  # the profile service's: a restore of the configuration brings its profile back
        self._host = host
        self._pool = pool
        self._db = db
        self._audit = audit
        self._vms = vms
        self._freeing = freeing
        self._intents = intents

    def bring_back_profile(self, recorded: ManifestObject, vm_id: str, who: Principal) -> None:
        """The snapshot profile ``recorded`` says, assigned again (a whole-subtree restore asks it too)."""
        put_back_profile(self._put_back, recorded, SubjectOfProfile.VM, vm_id, who)

    # --- capture -------------------------------------------------------------------------------------
    def resolve(self, uow: Unit, ref: str, selection: Selection = FULL) -> Subject:
        refuse_partial(selection, self.type)
        vm = uow.vms.resolve(ref)
        return self.subject_of(vm, assigned_profile(uow, SubjectOfProfile.VM, vm.id))

    def subject_of(self, vm: VmRecord, profile_id: str | None) -> Subject:
        """The VM as a snapshot of it records it, from its catalog record (one already read: a system
        snapshot reads every VM in one query) and its snapshot profile."""
        return Subject(
            type=self.type,
            id=vm.id,
            name=vm.name,
            owner_tenant_id=vm.owner_tenant_id,
            datasets=(vm.dataset,),
            config={
                "description": vm.description,
                "domain_uuid": vm.domain_uuid,
                "vm": dict(vm.spec),
                "quiesce_policy": str(vm.quiesce_policy),
                "agent_timeout": vm.agent_timeout,
                PROFILE: profile_id,
            },
            quiesce_policy=vm.quiesce_policy,
        )

    def holds(self, subject: Subject, quiesce: bool, snap_id: str) -> Holding:
        """Running: freeze (if asked), then pause. Off: nothing to hold, the disks are at rest. Paused by
        someone else: not resumed by snapkeep, and a quiesce cannot happen (its agent is paused too)."""
        domain = self._vms.record(subject.id).domain_name
        state = self._host.state(domain) if self._host.exists(domain) else VMState.SHUTOFF
        if state is VMState.SHUTOFF:
            return Holding()
        if state is not VMState.RUNNING:
            return Holding([CannotQuiesce(f"the VM is {state}; its guest agent cannot freeze it")] if quiesce else [])
        holds: list[Hold] = []
        if quiesce and not subject.config["vm"].get("guest_agent", True):
            holds.append(CannotQuiesce("the VM has no guest-agent channel"))
        elif quiesce:
            timeout = float(subject.config["agent_timeout"])
            holds.append(GuestFrozen(self._host, domain, timeout, self._intents, snap_id))
        holds.append(GuestsPaused(self._host, [domain], self._intents, snap_id))
        return Holding(holds)

    def manifest_objects(self, subject: Subject, holding: Holding) -> list[ManifestObject]:
        return [subject.manifest_object()]

    # --- restore -------------------------------------------------------------------------------------
    def check_options(self, options: RestoreOptions) -> None:
        if options.mode is not RestoreMode.DATA:
            raise InvalidInput("a VM restore always replaces its disks and configuration; mode is for volumes")

    def check_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> Effects:
        vm = self._current(source, who)
        self._vms.check_may_overwrite(vm, options.power_off)
        with self._db.unit() as uow:
            self._require_networks(uow, snap, source)
        return Effects.over(source, vm.name)

    def _require_networks(self, uow: Unit, snap: Snapshot, source: ManifestObject) -> None:
        """The snapkeep networks the recorded NICs are on must still exist: else refused up front, naming
        the network as the snapshot recorded it, instead of a restored VM that cannot start."""
        for nic in VMConfig.model_validate(source.config["vm"]).nics:
            if nic.network_id is None:
                continue
            try:
                uow.networks.get(nic.network_id)
            except NotFound:
                network = recorded_name(self._pool, snap, "network", nic.network_id)
                raise NotFound(
                    f"network {network!r}, which VM {source.name!r} was on, no longer exists; restore the "
                    "whole system (or the VM's tenant) to bring it back with the VM",
                    network=network,
                ) from None

    def restore_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        """Disks and configuration replaced together (or, on failure, both put back); the replaced disks
        are freed in the background, after the restore answers."""
        vm = self._current(source, who)
        self._vms.require_off(vm, options.power_off)
        op_id = f"restore-{uuid.uuid4()}"
        previous = self._vms.spec(self._vms.record(vm.id))
        self._pool.swap_in_snapshot(snap.id, source.datasets[0], op_id)
        try:
            with self._db.unit() as uow:
                record = uow.vms.update(
                    vm.id, spec=dict(source.config["vm"]), description=str(source.config["description"])
                )
                self._host.define(self._vms.spec(record))
                owner = record.owner_tenant_id
                self._audit.done(uow, who, "vm.restore", f"vm:{vm.name}", from_snapshot(snap, owner), owner=owner)
        except BaseException:
            self._pool.swap_back(source.datasets[0], op_id)
            try:
                self._host.define(previous)
            except SnapkeepError as exc:
                log.error("restoring the definition of %s after a failed restore: %s", vm.name, exc.message)
            raise
        self.bring_back_profile(source, vm.id, who)
        self._pool.retire(op_id)
        self._freeing.wake()
        return vm.id

    def new_name(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        """The given name, else ``<snapshot> restored`` from a VM snapshot and ``<VM> (n)`` out of a system
        snapshot (SPEC §3); refused if the owner has a VM of that name."""
        with self._db.unit() as uow:
            require_owner(uow, self._pool, snap, source)
            self._require_networks(uow, snap, source)
            if options.name is None and snap.kind is not SnapshotKind.VM:
                return numbered_name(source.name, lambda n: uow.vms.find(n, source.owner_tenant_id) is not None)
            name = options.name or restored_vm_name(snap.name)
            self._vms.check_free_name(uow, name, source.owner_tenant_id)
        return name

    def restore_as_new(
        self, snap: Snapshot, source: ManifestObject, name: str, options: RestoreOptions, who: Principal
    ) -> tuple[str, str]:
        """A new, stopped VM: new UUID, new MACs unless ``preserve_macs``, the same disk serials."""
        config = VMConfig.model_validate(source.config["vm"])
        if not options.preserve_macs:
            config = config.with_new_macs()

        def clone(dataset: str) -> None:
            self._pool.clone_dataset(snap.id, source.datasets[0], dataset)

        vm = self._vms.create_with(
            name,
            config,
            clone,
            description=str(source.config["description"]),
            quiesce_policy=QuiescePolicy(str(source.config["quiesce_policy"])),
            agent_timeout=float(source.config["agent_timeout"]),
            who=who,
            owner_tenant_id=source.owner_tenant_id,  # the copy belongs where the original did
        )
        return vm.id, vm.name

    def _current(self, source: ManifestObject, who: Principal) -> VM:
        try:
            return self._vms.get(source.id, who=who)
        except NotFound as exc:
            raise NotFound(
                f"VM {source.name!r} no longer exists; restore the snapshot as a new VM", vm=source.name
            ) from exc
