"""Restoring VMs from their snapshots: over the VM (it must be off), as a new VM, and clones.

Restoring over a VM swaps its dataset for the snapshot's in one atomic exchange and redefines its domain
from the snapshot's configuration, keeping its name and libvirt UUID; a pre-restore snapshot is taken first
unless the caller opts out. A new VM gets a new UUID and new MACs (unless asked to keep them), and keeps the
disk serials, so guests that name disks by serial find them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from snapkeep.catalog.db import Database
from snapkeep.errors import InvalidInput, NotFound, SnapkeepError
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.names import restored_vm_name
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import VM, Job, QuiescePolicy
from snapkeep.model.vmconfig import VMConfig
from snapkeep.services.audit import Audit
from snapkeep.services.freeing import Freeing
from snapkeep.services.guards import Claim, exclusive
from snapkeep.services.jobs import JobRunner, Progress
from snapkeep.services.snapshots import Snapshots, TakeRequest
from snapkeep.services.vms import VMs
from snapkeep.storage.pool import Pool

log = logging.getLogger(__name__)


class VMRestores:
    def __init__(
        self,
        db: Database,
        pool: Pool,
        audit: Audit,
        vms: VMs,
        snapshots: Snapshots,
        clock: Callable[[], datetime],
        *,
        pre_restore_keep: timedelta,
        freeing: Freeing,
        jobs: JobRunner,
    ) -> None:
        self._jobs = jobs
        self._freeing = freeing
        self._db = db
        self._pool = pool
        self._audit = audit
        self._vms = vms
        self._snapshots = snapshots
        self._clock = clock
        self._pre_restore_keep = pre_restore_keep

    def _source(self, snap_id: str) -> ManifestObject:
        self._snapshots.restorable(snap_id)
        source = self._snapshots.manifest(snap_id).objects[0]
        if source.type != "vm":
            raise InvalidInput(f"snapshot {snap_id} is of a {source.type}, not a VM", snapshot=snap_id)
        return source

    def over_source(
        self, snap_id: str, *, power_off: bool = False, pre_restore: bool = True, actor: str = "system"
    ) -> dict[str, str | None]:
        """Replace the VM's disks and configuration by the snapshot's; refused while it runs unless
        ``power_off``. The replaced disks are freed in the background, after this returns."""
        with self._snapshots.claim_restore(snap_id, as_new=False):
            return self._over_source(snap_id, power_off, pre_restore, actor)

    def _over_source(self, snap_id: str, power_off: bool, pre_restore: bool, actor: str) -> dict[str, str | None]:
        snap = self._snapshots.restorable(snap_id)
        source = self._source(snap_id)
        try:
            vm = self._vms.get(source.id)
        except NotFound as exc:
            raise NotFound(
                f"VM {source.name!r} no longer exists; restore the snapshot as a new VM", vm=source.name
            ) from exc
        self._vms.require_off(vm, power_off)
        safety = self._snapshots.take_pre_restore("vm", vm.id, self._pre_restore_keep, actor) if pre_restore else None
        op_id = f"restore-{uuid.uuid4()}"
        previous = self._vms.spec(self._vms.record(vm.id))
        self._pool.swap_in_snapshot(snap_id, source.datasets[0], op_id)
        try:
            with self._db.unit() as uow:
                record = uow.vms.update(
                    vm.id, spec=dict(source.config["vm"]), description=str(source.config["description"])
                )
                self._vms.host.define(self._vms.spec(record))
                self._audit.done(uow, actor, "vm.restore", f"vm:{vm.name}", f"from {snap.name}")
        except BaseException:
            # disks and configuration go back together: the old disks in place, the old domain defined
            self._pool.swap_back(source.datasets[0], op_id)
            try:
                self._vms.host.define(previous)
            except SnapkeepError as exc:
                log.error("restoring the definition of %s after a failed restore: %s", vm.name, exc.message)
            raise
        self._pool.retire(op_id)
        self._freeing.wake()
        return {"vm_id": vm.id, "pre_restore_snapshot_id": safety.id if safety else None}

    def check_new_name(self, snap_id: str, name: str | None) -> str:
        """The name a restore as new would use, refused (before any work) if invalid or taken."""
        new_name = name or restored_vm_name(self._snapshots.get(snap_id).name)
        with self._db.unit() as uow:
            self._vms.check_free_name(uow, new_name)
        return new_name

    def as_new(self, snap_id: str, name: str | None = None, preserve_macs: bool = False, actor: str = "system") -> VM:
        """A new, stopped VM from the snapshot: new UUID, new MACs unless ``preserve_macs``, same serials."""
        with self._snapshots.claim_restore(snap_id, as_new=True):
            return self._as_new(snap_id, name, preserve_macs, actor)

    def _as_new(self, snap_id: str, name: str | None, preserve_macs: bool, actor: str) -> VM:
        source = self._source(snap_id)
        new_name = self.check_new_name(snap_id, name)
        config = VMConfig.model_validate(source.config["vm"])
        if not preserve_macs:
            config = config.with_new_macs()

        def clone(dataset: str) -> None:
            self._pool.clone_dataset(snap_id, source.datasets[0], dataset)

        return self._vms.create_with(
            new_name,
            config,
            clone,
            description=str(source.config["description"]),
            quiesce_policy=QuiescePolicy(str(source.config["quiesce_policy"])),
            agent_timeout=float(source.config["agent_timeout"]),
            actor=actor,
        )

    def check_clone_name(self, name: str) -> None:
        with self._db.unit() as uow:
            self._vms.check_free_name(uow, name)

    def claim_clone(self, vm: VM) -> Claim:
        """A clone holds its source VM: it is snapshotted, and must not start, stop or change meanwhile."""
        return self._snapshots.guards.claim("vm.clone", [exclusive("vm", vm.id, vm.name)])

    def clone(self, ref: str, name: str, preserve_macs: bool = False, *, who: Principal) -> VM:
        """A new VM from the current state of ``ref`` (crash-consistent; running guests paused briefly);
        operator."""
        who.require(Role.OPERATOR)
        vm = self._vms.get(ref, who=who)
        with self.claim_clone(vm):
            return self._clone(vm, name, preserve_macs, who)

    def submit_clone(self, ref: str, name: str, preserve_macs: bool = False, *, who: Principal) -> Job:
        """:meth:`clone` as a job, refused synchronously if the name is taken or the VM is busy."""
        who.require(Role.OPERATOR)
        vm = self._vms.get(ref, who=who)
        self.check_clone_name(name)

        def run(_progress: Progress) -> dict[str, object]:
            clone = self.clone(vm.id, name, preserve_macs, who=who)
            return {"vm_id": clone.id, "vm": clone.name}

        params = {"vm": vm.name, "name": name, "preserve_macs": preserve_macs}
        owner = self._vms.record(vm.id).owner_tenant_id
        with self.claim_clone(vm) as claim:
            return self._jobs.submit("vm.clone", params, run, claim=claim, owner_tenant_id=owner)

    def _clone(self, vm: VM, name: str, preserve_macs: bool, who: Principal) -> VM:
        self.check_clone_name(name)
        source = self._snapshots.take(
            TakeRequest(
                ref=vm.id,
                subject_type="vm",
                name=f"clone-source_{uuid.uuid4().hex[:12]}",
                origin="clone",
                expires_at=self._clock() + timedelta(hours=1),  # swept even if a crash skips the delete below
            ),
            who=who,
        )
        try:
            return self.as_new(source.id, name, preserve_macs, who.name)
        finally:
            self._snapshots.delete(source.id, who=who)
