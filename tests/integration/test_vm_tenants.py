"""Tenants with real guests on the real libvirtd: power a tenant off and on, and delete it.

A tenant with a child tenant, one VM in each (the test guest, booted from its kernel and initramfs) and a
system VM beside them: powering the parent off stops exactly its subtree's two VMs, never the system's;
powering it on starts them again. The parent's VM has a NIC on the parent's network: its libvirt network
exists while the VM runs, and is gone with the tenant (skipped, saying why, where no bridge can be made).
Stops are forced: what is tested is which VMs the tenant reaches, not the guest's shutdown.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from snapkeep.errors import NameClash, NetworkInUse, NotFound, SnapkeepError, TenantOnline
from snapkeep.model.network import libvirt_network_name
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import VM
from snapkeep.model.vmspec import VMState
from snapkeep.services.container import Services
from snapkeep.testguest import GuestImage, make_data_disk
from tests.integration.test_networks import bridges_unavailable, free_ranges
from tests.integration.test_tenants import state
from tests.integration.test_vm_snapshots import image, services_on

__all__ = ["free_ranges", "image"]  # fixtures used here


@pytest.fixture
def vm_services(libvirtd: None) -> Iterator[Services]:
    with services_on("btrfs") as services:
        yield services


def make_vm(svc: Services, image: GuestImage, name: str, tenant: str | None, networks: list[str]) -> VM:
    vm = svc.vms.create(
        name,
        vcpus=1,
        memory_mib=256,
        disk_sizes=[128 << 20],
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.cmdline,
        tenant=tenant,
        networks=networks,
        who=SYSTEM,
    )
    path = os.path.join(vm.path, vm.config["disks"][0]["file"])
    os.unlink(path)
    make_data_disk(path, 128 << 20)
    return vm


def states(svc: Services, *vms: VM) -> list[str]:
    return [svc.vms.get(vm.id, who=SYSTEM).state for vm in vms]


def test_tenant_power_and_delete_reach_exactly_its_subtree(
    vm_services: Services, image: GuestImage, free_ranges: Callable[[], str]
) -> None:
    svc = vm_services
    tag = uuid.uuid4().hex[:6]
    parent = svc.tenants.create(SYSTEM, "acme").tenant
    child = svc.tenants.create(SYSTEM, "dev", parent="acme").tenant
    no_bridges = bridges_unavailable()
    network = None if no_bridges else svc.networks.create(SYSTEM, "lan", free_ranges(), tenant="acme")
    libvirt_net = libvirt_network_name(network.id) if network else None
    try:
        parent_vm = make_vm(svc, image, f"tnt-{tag}-a", "acme", ["lan"] if network else [])
        child_vm = make_vm(svc, image, f"tnt-{tag}-b", "acme/dev", [])
        system_vm = make_vm(svc, image, f"tnt-{tag}-s", None, [])
        assert parent_vm.owner_tenant_id == parent.id and child_vm.owner_tenant_id == child.id
        # names are unique per owner: the system may have a VM of the same name, with a domain of its own
        twin = make_vm(svc, image, parent_vm.name, None, [])
        assert twin.name == parent_vm.name and twin.domain != parent_vm.domain
        svc.vms.delete(twin.id, svc.snapshots, who=SYSTEM)
        before = state(svc)
        with pytest.raises(NameClash):
            make_vm(svc, image, parent_vm.name, "acme", [])
        if network is not None:
            assert parent_vm.config["nics"][0]["network_id"] == network.id
            with pytest.raises(NotFound):  # a NIC only on a network of the VM's own owner
                make_vm(svc, image, f"tnt-{tag}-x", "acme/dev", [network.id])
        assert state(svc) == before
        svc.vms.start(system_vm.id, who=SYSTEM)

        started = svc.tenants.power(SYSTEM, "acme", on=True)
        assert sorted(started["started"]) == sorted([parent_vm.name, child_vm.name])
        assert states(svc, parent_vm, child_vm, system_vm) == [VMState.RUNNING] * 3
        assert svc.tenants.get(SYSTEM, "acme").online and svc.tenants.get(SYSTEM, "acme/dev").online
        if libvirt_net is not None:
            assert svc.host.network_exists(libvirt_net)  # realised when its VM started
        else:
            print(f"network not realised: {no_bridges}")

        before = state(svc)  # refused deletes change nothing
        with pytest.raises(TenantOnline):
            svc.tenants.delete(SYSTEM, "acme")
        if network is not None:
            with pytest.raises(NetworkInUse):
                svc.networks.delete(SYSTEM, network.id)
        assert state(svc) == before

        stopped = svc.tenants.power(SYSTEM, "acme", on=False, force=True)
        assert sorted(stopped["stopped"]) == sorted([parent_vm.name, child_vm.name])
        assert states(svc, parent_vm, child_vm, system_vm) == [VMState.SHUTOFF, VMState.SHUTOFF, VMState.RUNNING]
        assert not svc.tenants.get(SYSTEM, "acme").online

        job = svc.tenants.submit_power(SYSTEM, "acme/dev", on=True)  # a child alone, as the API does it
        assert svc.jobs.wait(job.id, 60, who=SYSTEM).status == "succeeded"
        assert states(svc, parent_vm, child_vm, system_vm) == [VMState.SHUTOFF, VMState.RUNNING, VMState.RUNNING]
        svc.tenants.power(SYSTEM, "acme", on=True)
        assert states(svc, parent_vm, child_vm) == [VMState.RUNNING] * 2

        removed = svc.tenants.delete(SYSTEM, "acme", force=True)
        assert removed["vms"] == 2 and removed["tenants"] == 2
        assert not svc.host.exists(parent_vm.domain) and not svc.host.exists(child_vm.domain)
        assert not os.path.exists(parent_vm.path) and not os.path.exists(child_vm.path)
        if libvirt_net is not None:
            assert not svc.host.network_exists(libvirt_net)
        assert [vm.name for vm in svc.vms.listing(who=SYSTEM)] == [system_vm.name]
        assert svc.vms.get(system_vm.id, who=SYSTEM).state == VMState.RUNNING
        assert svc.tenants.tree(SYSTEM) == []
    finally:
        if libvirt_net is not None:
            with contextlib.suppress(SnapkeepError):
                for vm in svc.vms.listing(who=SYSTEM):
                    svc.host.power_off(vm.domain)
                svc.host.remove_network(libvirt_net)
