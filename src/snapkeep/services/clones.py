"""Cloning a VM: a new VM from its current state, by a short-lived snapshot restored as new.

Crash-consistent: a running guest is paused only for the capture. The snapshot is deleted once the copy
exists, and expires within the hour in case a crash skips that. The clone belongs where its source does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from snapkeep.catalog.db import Database
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import VM, Job, SubjectType
from snapkeep.services.guards import Claim, exclusive
from snapkeep.services.jobs import JobRunner, Progress
from snapkeep.services.restores import Restores
from snapkeep.services.snapshots import Snapshots, TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.services.vms import VMs


class Clones:
    def __init__(
        self,
        db: Database,
        vms: VMs,
        snapshots: Snapshots,
        restores: Restores,
        jobs: JobRunner,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._vms = vms
        self._snapshots = snapshots
        self._restores = restores
        self._jobs = jobs
        self._clock = clock

    def check_clone_name(self, vm: VM, name: str) -> None:
        """A clone belongs where its source does; its name must be free there."""
        with self._db.unit() as uow:
            self._vms.check_free_name(uow, name, vm.owner_tenant_id)

    def claim_clone(self, vm: VM) -> Claim:
        """A clone holds its source VM: it is snapshotted, and must not start, stop or change meanwhile."""
        return self._snapshots.guards.claim("vm.clone", [exclusive("vm", vm.id, vm.name)])

    def submit_clone(self, ref: str, name: str, preserve_macs: bool = False, *, who: Principal) -> Job:
        """:meth:`clone` as a job, refused synchronously if the name is taken or the VM is busy."""
        who.require(Role.OPERATOR)
        vm = self._vms.get(ref, who=who)
        self.check_clone_name(vm, name)

        def run(_progress: Progress) -> dict[str, object]:
            clone = self.clone(vm.id, name, preserve_macs, who=who)
            return {"vm_id": clone.id, "vm": clone.name}

        params = {"vm": vm.name, "name": name, "preserve_macs": preserve_macs}
        with self.claim_clone(vm) as claim:
            return self._jobs.submit("vm.clone", params, run, claim=claim, owner_tenant_id=vm.owner_tenant_id)

    def clone(self, ref: str, name: str, preserve_macs: bool = False, *, who: Principal) -> VM:
        """A new, stopped VM from the current state of ``ref``: new UUID, new MACs unless ``preserve_macs``."""
        who.require(Role.OPERATOR)
        vm = self._vms.get(ref, who=who)
        with self.claim_clone(vm):
            self.check_clone_name(vm, name)
            source = self._snapshots.take(
                TakeRequest(
                    ref=vm.id,
                    subject_type=SubjectType.VM,
                    name=f"clone-source_{uuid.uuid4().hex[:12]}",
                    origin="clone",
                    expires_at=self._clock() + timedelta(hours=1),  # swept even if a crash skips the delete
                ),
                who=who,
            )
            try:
                options = RestoreOptions(as_new=True, name=name, preserve_macs=preserve_macs)
                made = self._restores.as_new(source.id, options, who)
            finally:
                self._snapshots.delete(source.id, who=who)
            return self._vms.get(str(made["vm_id"]), who=who)
