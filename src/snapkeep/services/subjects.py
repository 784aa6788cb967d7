"""What a snapshot can be of: each kind of subject says how to find one, what data it has and what must
hold still while it is captured. Volumes now; VMs, tenants and the system plug in the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from snapkeep.catalog.stores import Unit
from snapkeep.engine.capture import Hold
from snapkeep.engine.holds import CannotQuiesce, GuestFrozen, GuestPaused, VolumeFrozen, WritersPaused
from snapkeep.engine.intents import Intents
from snapkeep.hypervisor import Hypervisor
from snapkeep.model.types import QuiescePolicy, SnapshotKind
from snapkeep.model.vmspec import VMState
from snapkeep.storage.pool import Pool
from snapkeep.writers.pause import kernel_served


@dataclass(frozen=True)
class Subject:
    type: str
    id: str
    name: str
    owner_tenant_id: str | None
    datasets: tuple[str, ...]
    config: dict[str, Any]
    quiesce_policy: QuiescePolicy = QuiescePolicy.FALLBACK  # when the request does not say


class SubjectKind(Protocol):
    type: str
    snapshot_kind: SnapshotKind

    def resolve(self, uow: Unit, ref: str) -> Subject:
        """The subject by id or name; :class:`NotFound` if there is none (or the unit's scope hides it)."""
        ...

    def holds(self, subject: Subject, quiesce: bool, snap_id: str) -> list[Hold]:
        """What must hold still, in acquisition order, to capture ``subject`` (quiesced if asked)."""
        ...


class VolumeSubjects:
    type = "volume"
    snapshot_kind = SnapshotKind.VOLUME

    def __init__(self, pool: Pool, quiesce_timeout: float, intents: Intents) -> None:
        self._pool = pool
        self._timeout = quiesce_timeout
        self._intents = intents

    def resolve(self, uow: Unit, ref: str) -> Subject:
        volume = uow.volumes.resolve(ref)
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
            },
        )

    def holds(self, subject: Subject, quiesce: bool, snap_id: str) -> list[Hold]:
        """A volume with a filesystem of its own is always frozen (that is its quiesce); any other is
        quiesced, when asked, by pausing the writers snapkeep can see."""
        if all(self._pool.is_image_volume(d) for d in subject.datasets):
            return [VolumeFrozen(self._pool, subject.datasets, self._intents, snap_id, quiesce=quiesce)]
        if not quiesce:
            return []
        trees = [self._pool.dataset_tree(d) for d in subject.datasets]
        for tree in trees:
            export = kernel_served(tree)
            if export is not None:
                return [CannotQuiesce(f"the volume is served by the kernel NFS server (export {export})")]
        return [WritersPaused(trees, self._timeout, self._intents, snap_id)]


class VmSubjects:
    """A VM's disks are captured at one instant: a running guest is frozen through its agent (if asked)
    and paused for the capture; a stopped one is captured as it lies."""

    type = "vm"
    snapshot_kind = SnapshotKind.VM

    def __init__(self, host: Hypervisor, intents: Intents) -> None:
        self._host = host
        self._intents = intents

    def resolve(self, uow: Unit, ref: str) -> Subject:
        vm = uow.vms.resolve(ref)
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
            },
            quiesce_policy=vm.quiesce_policy,
        )

    def holds(self, subject: Subject, quiesce: bool, snap_id: str) -> list[Hold]:
        """Running: freeze (if asked), then pause. Off: nothing to hold, the disks are at rest. Paused by
        someone else: not resumed by snapkeep, and a quiesce cannot happen (its agent is paused too)."""
        state = self._host.state(subject.name) if self._host.exists(subject.name) else VMState.SHUTOFF
        if state is VMState.SHUTOFF:
            return []
        if state is not VMState.RUNNING:
            return [CannotQuiesce(f"the VM is {state}; its guest agent cannot freeze it")] if quiesce else []
        holds: list[Hold] = []
        if quiesce and not subject.config["vm"].get("guest_agent", True):
            holds.append(CannotQuiesce("the VM has no guest-agent channel"))
        elif quiesce:
            timeout = float(subject.config["agent_timeout"])
            holds.append(GuestFrozen(self._host, subject.name, timeout, self._intents, snap_id))
        holds.append(GuestPaused(self._host, subject.name, self._intents, snap_id))
        return holds
