"""Virtual machines: create, look up, power, delete. The VM's state always comes from libvirt.

A VM is a catalog row (its configuration), a dataset in the pool (its raw sparse disk files) and a
libvirt domain defined from both. Creating writes the dataset first, the row second, the domain last;
deleting goes in reverse. Starting, stopping and deleting hold the VM's guard
(:mod:`snapkeep.services.guards`), so none of them interleaves with a snapshot or restore of the VM.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import InvalidPath, NameClash, PoolUnreachable, VMStateConflict
from snapkeep.hypervisor import Hypervisor
from snapkeep.model.names import check_description, check_name
from snapkeep.model.tags import TagKind, check_tags
from snapkeep.model.types import VM, QuiescePolicy, VmRecord
from snapkeep.model.vmconfig import DiskConfig, NicConfig, VMConfig, disk_target, new_mac, new_serial
from snapkeep.model.vmspec import VMSpec, VMState
from snapkeep.services.audit import Audit
from snapkeep.services.guards import Claim, Guards, exclusive
from snapkeep.services.networks import network_nics, realise_nics
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.tags import add_tags
from snapkeep.storage.pool import Pool

AGENT_PROBE_SECONDS = 2.0


class VMs:
    def __init__(
        self,
        db: Database,
        pool: Pool,
        audit: Audit,
        clock: Callable[[], datetime],
        host: Hypervisor,
        log_dir: str,
        guards: Guards,
    ) -> None:
        self._guards = guards
        self._db = db
        self._pool = pool
        self._audit = audit
        self._clock = clock
        self.host = host
        self._log_dir = log_dir

    # --- looking up ----------------------------------------------------------------------------------
    def spec(self, record: VmRecord) -> VMSpec:
        """The libvirt description of the VM as the catalog has it."""
        config = VMConfig.model_validate(record.spec)
        serial_log = os.path.join(self._log_dir, f"{record.name}.log")
        return config.to_spec(record.name, record.domain_uuid, self._pool.dataset_path(record.dataset), serial_log)

    def to_vm(self, record: VmRecord, probe_agent: bool = False) -> VM:
        state = self.host.state(record.name) if self.host.exists(record.name) else VMState.OTHER
        answers = None
        if probe_agent:
            answers = state is VMState.RUNNING and self.host.agent_ping(record.name, AGENT_PROBE_SECONDS)
        return VM(
            id=record.id,
            name=record.name,
            description=record.description,
            dataset=record.dataset,
            path=self._pool.dataset_path(record.dataset),
            domain_uuid=record.domain_uuid,
            config=record.spec,
            quiesce_policy=record.quiesce_policy,
            agent_timeout=record.agent_timeout,
            created_at=record.created_at,
            state=str(state),
            agent_answers=answers,
            owner_tenant_id=record.owner_tenant_id,
        )

    def record(self, vm_id: str) -> VmRecord:
        """The VM as the catalog has it, by id."""
        with self._db.unit() as uow:
            return uow.vms.get(vm_id)

    def get(self, ref: str, probe_agent: bool = False) -> VM:
        with self._db.unit() as uow:
            record = uow.vms.resolve(ref)
            tags = uow.tags.of(TagKind.VM, record.id)
        return replace(self.to_vm(record, probe_agent), tags=tags)

    def listing(self, tenant: str | None = None) -> list[VM]:
        """Every VM the caller sees; with ``tenant``, those that tenant owns itself."""
        with self._db.unit() as uow:
            records = uow.vms.list()
            if tenant is not None:
                owner = uow.tenants.resolve(tenant).id
                records = [r for r in records if r.owner_tenant_id == owner]
            tags = uow.tags.of_all(TagKind.VM)
        return [replace(self.to_vm(record), tags=tags.get(record.id, ())) for record in records]

    def check_free_name(self, uow: Unit, name: str, owner_tenant_id: str | None = None) -> None:
        """Names are unique per owner; and, while a VM's libvirt domain carries its name, on the host."""
        check_name(name, "VM name")
        if uow.vms.find(name, owner_tenant_id) is not None:
            raise NameClash(f"a VM named {name!r} already exists", name=name)
        if self.host.exists(name):
            raise NameClash(
                f"libvirt already has a domain named {name!r} (one snapkeep does not manage, or another owner's "
                "VM: a VM's domain carries its name, so VM names are unique on the host)",
                name=name,
            )

    def check_pool_reachable(self) -> None:
        """Refuse (``PoolUnreachable``, saying how to fix it) when QEMU could not open disks in the pool."""
        datasets = os.path.dirname(self._pool.dataset_path("x"))  # the directory every dataset lies in
        reason = self.host.unreachable_reason(datasets)
        if reason is not None:
            raise PoolUnreachable(reason, path=datasets)

    # --- creating ------------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        *,
        vcpus: int,
        memory_mib: int,
        disk_sizes: Sequence[int],
        kernel: str | None = None,
        initrd: str | None = None,
        cmdline: str | None = None,
        nics: int = 1,
        description: str = "",
        quiesce_policy: QuiescePolicy = QuiescePolicy.FALLBACK,
        agent_timeout: float = 10.0,
        guest_agent: bool = True,
        actor: str = "system",
        tenant: str | None = None,
        networks: Sequence[str] = (),
        tags: Sequence[str] = (),
    ) -> VM:
        """A new VM, stopped, with empty sparse raw disks, owned by ``tenant`` (else the caller's own owner).
        With ``networks`` (ids, or names within the owner), its NICs are one on each of them, not ``nics``."""
        check_description(description)
        with self._db.unit() as uow:
            owner = uow.tenants.owner(tenant)
            nic_configs = network_nics(uow, owner, networks) if networks else None
        for what, path in (("kernel", kernel), ("initrd", initrd)):
            if path is not None and not os.path.isfile(path):
                raise InvalidPath(f"the {what} {path!r} is not a file on this host", path=path)
        config = VMConfig(
            vcpus=vcpus,
            memory_mib=memory_mib,
            kernel=kernel,
            initrd=initrd,
            cmdline=cmdline,
            disks=tuple(
                DiskConfig(file=f"disk{i}.raw", size=size, serial=new_serial(), target=disk_target(i))
                for i, size in enumerate(disk_sizes)
            ),
            nics=nic_configs if nic_configs is not None else tuple(NicConfig(mac=new_mac()) for _ in range(nics)),
            guest_agent=guest_agent,
        )

        def make_disks(dataset: str) -> None:
            self._pool.create_dataset(dataset, kind="vm")
            for disk in config.disks:
                self._pool.create_sparse_file(dataset, disk.file, disk.size)

        return self.create_with(
            name,
            config,
            make_disks,
            description=description,
            quiesce_policy=quiesce_policy,
            agent_timeout=agent_timeout,
            actor=actor,
            owner_tenant_id=owner,
            tags=tags,
        )

    def create_with(
        self,
        name: str,
        config: VMConfig,
        make_data: Callable[[str], object],
        *,
        description: str,
        quiesce_policy: QuiescePolicy,
        agent_timeout: float,
        actor: str,
        owner_tenant_id: str | None = None,
        tags: Sequence[str] = (),
    ) -> VM:
        """Dataset first (``make_data``), then the row, then the libvirt domain; undone on failure."""
        check_tags(tags)
        self.check_pool_reachable()
        with self._db.unit() as uow:
            self.check_free_name(uow, name, owner_tenant_id)
        vm_id = str(uuid.uuid4())
        dataset = f"vm-{vm_id}"
        make_data(dataset)
        defined = False
        try:
            with self._db.unit() as uow:
                self.check_free_name(uow, name, owner_tenant_id)
                record = uow.vms.insert(
                    VmRecord(
                        id=vm_id,
                        name=name,
                        description=description,
                        owner_tenant_id=owner_tenant_id,
                        dataset=dataset,
                        domain_uuid=str(uuid.uuid4()),
                        spec=config.as_dict(),
                        quiesce_policy=quiesce_policy,
                        agent_timeout=agent_timeout,
                        created_at=self._clock(),
                    )
                )
                self.host.define(self.spec(record))
                defined = True
                shown = add_tags(uow, TagKind.VM, record.id, tuple(tags))
                self._audit.done(uow, actor, "vm.create", f"vm:{name}")
                return replace(self.to_vm(record), tags=shown)
        except BaseException:
            if defined:  # only the domain this call defined: never another VM's of the same name
                self.host.undefine(name)
            self._pool.destroy_dataset(dataset)
            raise

    # --- power ---------------------------------------------------------------------------------------
    def claim_power(self, vm: VM, operation: str) -> Claim:
        """Starting or stopping holds the VM: not while it is snapshotted, restored, cloned or deleted."""
        return self._guards.claim(operation, [exclusive("vm", vm.id, vm.name)]).verified(lambda: self.get(vm.id))

    def start(self, ref: str, actor: str = "system") -> VM:
        vm = self.get(ref)
        with self.claim_power(vm, "vm.start"):
            vm = self.get(vm.id)
            if vm.state != VMState.RUNNING:
                self.check_pool_reachable()
                realise_nics(self._db, self.host, vm.config)
                self.host.start(vm.name)
            return self.get(vm.id)

    def stop(self, ref: str, force: bool = False, timeout: float = 60.0, actor: str = "system") -> VM:
        """Graceful shutdown within ``timeout`` seconds, or power off with ``force``."""
        vm = self.get(ref)
        with self.claim_power(vm, "vm.stop"):
            vm = self.get(vm.id)
            if vm.state == VMState.SHUTOFF:
                return vm
            if force:
                self.host.power_off(vm.name)
            else:
                self.host.shutdown(vm.name, timeout)
            return self.get(vm.id)

    def check_may_overwrite(self, vm: VM, power_off: bool) -> None:
        """A VM must be off to be overwritten, unless the caller lets snapkeep switch it off."""
        if vm.state not in (VMState.SHUTOFF, VMState.OTHER) and not power_off:
            raise VMStateConflict(f"VM {vm.name!r} is {vm.state}; stop it first or ask to power it off", vm=vm.name)

    def require_off(self, vm: VM, power_off: bool) -> None:
        """Make sure the VM is off before it is overwritten (see :meth:`check_may_overwrite`)."""
        self.check_may_overwrite(vm, power_off)
        if vm.state not in (VMState.SHUTOFF, VMState.OTHER):
            self.host.power_off(vm.name)

    # --- deleting ------------------------------------------------------------------------------------
    def check_may_delete(self, vm: VM, snapshots: Snapshots, force: bool, actor: str) -> None:
        """Refuse (changing nothing) to delete a running VM without ``force``, or one with a locked snapshot."""
        if vm.state not in (VMState.SHUTOFF, VMState.OTHER) and not force:
            raise VMStateConflict(f"VM {vm.name!r} is {vm.state}; stop it first or delete with force", vm=vm.name)
        for snap in snapshots.listing(vm.id, "vm"):
            snapshots.check_deletable(snap, actor)

    def claim_delete(self, vm: VM, snapshots: Snapshots) -> Claim:
        """Deleting holds the VM and every snapshot of it (they go with it)."""
        return snapshots.claim_with_snapshots("vm.delete", "vm", vm.id, vm.name)

    def delete(self, ref: str, snapshots: Snapshots, force: bool = False, actor: str = "system") -> None:
        """Delete the VM with its own snapshots (refused, changing nothing, while one is locked)."""
        vm = self.get(ref)
        with self.claim_delete(vm, snapshots):
            self._delete(vm.id, snapshots, force, actor)

    def _delete(self, vm_id: str, snapshots: Snapshots, force: bool, actor: str) -> None:
        vm = self.get(vm_id)
        self.check_may_delete(vm, snapshots, force, actor)
        if vm.state not in (VMState.SHUTOFF, VMState.OTHER):
            self.host.power_off(vm.name)
        snapshots.delete_all_of("vm", vm.id, actor)
        self.host.undefine(vm.name)
        with self._db.unit() as uow:
            uow.vms.delete(vm.id)
            self._audit.done(uow, actor, "vm.delete", f"vm:{vm.name}")
        self._pool.destroy_dataset(vm.dataset)
