"""Virtual machines: create, look up, power, delete. The VM's state always comes from libvirt.

A VM is a catalog row (its configuration), a dataset in the pool (its raw sparse disk files) and a
libvirt domain defined from both. Creating writes the dataset first, the row second, the domain last;
deleting goes in reverse. Starting, stopping and deleting hold the VM's guard
(:mod:`snapkeep.services.guards`), so none of them interleaves with a snapshot or restore of the VM.

Each method takes the caller (``who``): the role it needs is in the table of :mod:`snapkeep.services`
(booting a host file as kernel or initrd hands it to the guest, so only an admin may name one), and the
catalog is read in the caller's scope (a VM outside it is :class:`NotFound`).
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
from snapkeep.model.paging import Page, Window
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.tags import TagKind, check_tags
from snapkeep.model.types import VM, Job, QuiescePolicy, VmRecord
from snapkeep.model.vmconfig import DiskConfig, NicConfig, VMConfig, disk_target, new_mac, new_serial
from snapkeep.model.vmspec import VMSpec, VMState
from snapkeep.services.audit import Audit
from snapkeep.services.guards import Claim, Guards, exclusive
from snapkeep.services.jobs import JobRunner, Progress
from snapkeep.services.networks import network_nics, realise_nics
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.tags import add_tags
from snapkeep.storage.pool import Pool

AGENT_PROBE_SECONDS = 2.0


def domain_name(vm_id: str) -> str:
    """The libvirt domain of a VM made by snapkeep: named by its id, so that two owners' VMs may share a
    name. (VMs made before keep their domain, named after the VM; its title is the VM's name either way.)"""
    return f"sk-vm-{vm_id}"


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
        jobs: JobRunner,
    ) -> None:
        self._guards = guards
        self._jobs = jobs
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
        serial_log = os.path.join(self._log_dir, f"{record.domain_name}.log")
        dataset_path = self._pool.dataset_path(record.dataset)
        return config.to_spec(record.domain_name, record.domain_uuid, dataset_path, serial_log, title=record.name)

    def to_vm(self, record: VmRecord, probe_agent: bool = False) -> VM:
        domain = record.domain_name
        state = self.host.state(domain) if self.host.exists(domain) else VMState.OTHER
        answers = None
        if probe_agent:
            answers = state is VMState.RUNNING and self.host.agent_ping(domain, AGENT_PROBE_SECONDS)
        return VM(
            id=record.id,
            name=record.name,
            description=record.description,
            dataset=record.dataset,
            path=self._pool.dataset_path(record.dataset),
            domain_uuid=record.domain_uuid,
            domain=record.domain_name,
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

    def get(self, ref: str, probe_agent: bool = False, *, who: Principal) -> VM:
        """Any role."""
        with self._db.unit(who) as uow:
            record = uow.vms.resolve(ref)
            tags = uow.tags.of(TagKind.VM, record.id)
        return replace(self.to_vm(record, probe_agent), tags=tags)

    def listing(self, tenant: str | None = None, *, who: Principal) -> list[VM]:
        """The VMs the caller's scope sees (any role); with ``tenant``, those that tenant owns itself."""
        with self._db.unit(who) as uow:
            records = uow.vms.list(owned_by=uow.tenants.id_of(tenant))
            tags = uow.tags.of_all(TagKind.VM)
        return [replace(self.to_vm(record), tags=tags.get(record.id, ())) for record in records]

    def page(self, window: Window, tenant: str | None = None, *, who: Principal) -> Page[VM]:
        """:meth:`listing` a page at a time (by name, then id): libvirt is asked about this page's VMs only."""
        with self._db.unit(who) as uow:
            records = uow.vms.page(window, owned_by=uow.tenants.id_of(tenant))
            tags = uow.tags.of_all(TagKind.VM)
        return Page([replace(self.to_vm(r), tags=tags.get(r.id, ())) for r in records.items], records.next)

    def check_free_name(self, uow: Unit, name: str, owner_tenant_id: str | None = None) -> None:
        """Names are unique per owner (the libvirt domain has a name of its own: ``domain_name``)."""
        check_name(name, "VM name")
        if uow.vms.find(name, owner_tenant_id) is not None:
            raise NameClash(f"a VM named {name!r} already exists", name=name)

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
        tenant: str | None = None,
        networks: Sequence[str] = (),
        tags: Sequence[str] = (),
        who: Principal,
    ) -> VM:
        """A new VM, stopped, with empty sparse raw disks, owned by ``tenant`` (else the caller's own owner);
        operator, and admin to boot a host kernel or initrd. With ``networks`` (ids, or names within the
        owner), its NICs are one on each of them, not ``nics``."""
        who.require(Role.OPERATOR if kernel is None and initrd is None else Role.ADMIN)
        check_description(description)
        with self._db.unit(who) as uow:
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
            who=who,
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
        who: Principal,
        owner_tenant_id: str | None = None,
        tags: Sequence[str] = (),
        new_id: str | None = None,
        new_domain_uuid: str | None = None,
    ) -> VM:
        """Dataset first (``make_data``), then the row, then the libvirt domain; undone on failure. A rebuild
        from a system snapshot brings a deleted VM back with its old id and domain UUID (``new_id``,
        ``new_domain_uuid``); otherwise both are new."""
        check_tags(tags)
        self.check_pool_reachable()
        with self._db.unit(who) as uow:
            self.check_free_name(uow, name, owner_tenant_id)
        vm_id = new_id or str(uuid.uuid4())
        dataset = f"vm-{vm_id}"
        make_data(dataset)
        defined = False
        try:
            with self._db.unit(who) as uow:
                self.check_free_name(uow, name, owner_tenant_id)
                record = uow.vms.insert(
                    VmRecord(
                        id=vm_id,
                        name=name,
                        description=description,
                        owner_tenant_id=owner_tenant_id,
                        dataset=dataset,
                        domain_uuid=new_domain_uuid or str(uuid.uuid4()),
                        domain_name=domain_name(vm_id),
                        spec=config.as_dict(),
                        quiesce_policy=quiesce_policy,
                        agent_timeout=agent_timeout,
                        created_at=self._clock(),
                    )
                )
                self.host.define(self.spec(record))
                defined = True
                shown = add_tags(uow, TagKind.VM, record.id, tuple(tags))
                self._audit.done(uow, who, "vm.create", f"vm:{name}", owner=record.owner_tenant_id)
                return replace(self.to_vm(record), tags=shown)
        except BaseException:
            if defined:
                self.host.undefine(domain_name(vm_id))
            self._pool.destroy_dataset(dataset)
            raise

    # --- power ---------------------------------------------------------------------------------------
    def claim_power(self, vm: VM, operation: str) -> Claim:
        """Starting or stopping holds the VM: not while it is snapshotted, restored, cloned or deleted."""
        return self._guards.claim(operation, [exclusive("vm", vm.id, vm.name)]).verified(
            lambda: self.get(vm.id, who=SYSTEM)
        )

    def start(self, ref: str, *, who: Principal) -> VM:
        """Start the VM (operator); one already running is left as it is."""
        who.require(Role.OPERATOR)
        vm = self.get(ref, who=who)
        with self.claim_power(vm, "vm.start"):
            vm = self.get(vm.id, who=who)
            if vm.state != VMState.RUNNING:
                self.check_pool_reachable()
                realise_nics(self._db, self.host, vm.config)
                self.host.start(vm.domain)
            return self.get(vm.id, who=who)

    def submit_start(self, ref: str, *, who: Principal) -> Job:
        """:meth:`start` as a job, refused synchronously while the VM is busy."""
        who.require(Role.OPERATOR)
        vm = self.get(ref, who=who)

        def run(_progress: Progress) -> dict[str, object]:
            return {"state": self.start(vm.id, who=who).state}

        with self.claim_power(vm, "vm.start") as claim:
            return self._submit("vm.start", vm, {"vm": vm.name}, run, claim)

    def stop(self, ref: str, force: bool = False, timeout: float = 60.0, *, who: Principal) -> VM:
        """Graceful shutdown within ``timeout`` seconds, or power off with ``force`` (operator)."""
        who.require(Role.OPERATOR)
        vm = self.get(ref, who=who)
        with self.claim_power(vm, "vm.stop"):
            vm = self.get(vm.id, who=who)
            if vm.state == VMState.SHUTOFF:
                return vm
            if force:
                self.host.power_off(vm.domain)
            else:
                self.host.shutdown(vm.domain, timeout)
            return self.get(vm.id, who=who)

    def submit_stop(self, ref: str, force: bool = False, timeout: float = 60.0, *, who: Principal) -> Job:
        """:meth:`stop` as a job, refused synchronously while the VM is busy."""
        who.require(Role.OPERATOR)
        vm = self.get(ref, who=who)

        def run(_progress: Progress) -> dict[str, object]:
            return {"state": self.stop(vm.id, force, timeout, who=who).state}

        with self.claim_power(vm, "vm.stop") as claim:
            return self._submit("vm.stop", vm, {"vm": vm.name, "force": force, "timeout": timeout}, run, claim)

    def _submit(
        self, kind: str, vm: VM, params: dict[str, object], run: Callable[[Progress], dict[str, object]], claim: Claim
    ) -> Job:
        owner = self.record(vm.id).owner_tenant_id
        return self._jobs.submit(kind, params, run, claim=claim, owner_tenant_id=owner)

    def check_may_overwrite(self, vm: VM, power_off: bool) -> None:
        """A VM must be off to be overwritten, unless the caller lets snapkeep switch it off."""
        if vm.state not in (VMState.SHUTOFF, VMState.OTHER) and not power_off:
            raise VMStateConflict(f"VM {vm.name!r} is {vm.state}; stop it first or ask to power it off", vm=vm.name)

    def require_off(self, vm: VM, power_off: bool) -> None:
        """Make sure the VM is off before it is overwritten (see :meth:`check_may_overwrite`)."""
        self.check_may_overwrite(vm, power_off)
        if vm.state not in (VMState.SHUTOFF, VMState.OTHER):
            self.host.power_off(vm.domain)

    # --- deleting ------------------------------------------------------------------------------------
    def check_may_delete(self, vm: VM, snapshots: Snapshots, force: bool, who: Principal) -> None:
        """Refuse (changing nothing) to delete a running VM without ``force``, or one with a locked snapshot."""
        if vm.state not in (VMState.SHUTOFF, VMState.OTHER) and not force:
            raise VMStateConflict(f"VM {vm.name!r} is {vm.state}; stop it first or delete with force", vm=vm.name)
        for snap in snapshots.listing(vm.id, "vm", who=who):
            snapshots.check_deletable(snap, who)

    def claim_delete(self, vm: VM, snapshots: Snapshots) -> Claim:
        """Deleting holds the VM and every snapshot of it (they go with it)."""
        return snapshots.claim_with_snapshots("vm.delete", "vm", vm.id, vm.name)

    def delete(self, ref: str, snapshots: Snapshots, force: bool = False, *, who: Principal) -> None:
        """Delete the VM with its own snapshots (operator; refused, changing nothing, while one is locked)."""
        who.require(Role.OPERATOR)
        vm = self.get(ref, who=who)
        with self.claim_delete(vm, snapshots):
            self._delete(vm.id, snapshots, force, who)

    def submit_delete(self, ref: str, snapshots: Snapshots, force: bool = False, *, who: Principal) -> Job:
        """:meth:`delete` as a job, refused synchronously while the VM runs (without ``force``), is busy or
        has a locked snapshot."""
        who.require(Role.OPERATOR)
        vm = self.get(ref, who=who)

        def run(_progress: Progress) -> dict[str, object]:
            self.delete(vm.id, snapshots, force, who=who)
            return {"vm_id": vm.id}

        with self.claim_delete(vm, snapshots) as claim:
            self.check_may_delete(self.get(vm.id, who=who), snapshots, force, who)
            return self._submit("vm.delete", vm, {"vm": vm.name, "force": force}, run, claim)

    def _delete(self, vm_id: str, snapshots: Snapshots, force: bool, who: Principal) -> None:
        vm = self.get(vm_id, who=who)
        self.check_may_delete(vm, snapshots, force, who)
        if vm.state not in (VMState.SHUTOFF, VMState.OTHER):
            self.host.power_off(vm.domain)
        snapshots.delete_all_of("vm", vm.id, who)
        self.host.undefine(vm.domain)
        with self._db.unit(who) as uow:
            uow.vms.delete(vm.id)
            uow.assignments.forget("vm", vm.id)
            self._audit.done(uow, who, "vm.delete", f"vm:{vm.name}", owner=vm.owner_tenant_id)
        self._pool.destroy_dataset(vm.dataset)
