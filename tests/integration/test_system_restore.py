"""Whole-system and tenant restores from system and tenant snapshots, with real guests on real pools.

A system with two tenants (``acme`` and ``acme/dev`` inside it), four running writer guests (two of the
system's, acme's and dev's) and an idle VM in dev, three volumes with files, two networks and settings: a
system snapshot; then objects and data changed, deleted and created; the whole system restored in place
(every object with its id, configuration and bytes as at snapshot time; the guests that ran boot again on
their restored disks and write on, and their disks are clean) and the restore undone through its
pre-restore snapshot. On btrfs and on XFS.

Then, on both drivers: a tenant's restore over itself is refused while it is online and allowed once it is
off; two restores as new make ``shop (1)`` and ``shop (2)`` beside it (new ids, MACs and ranges), a third
takes a given name once; a deleted tenant comes back with its VM, volume and network. On btrfs: restores
refused up front, partial snapshots, objects that swapped names or ranges since. Last, on both drivers, the
service is killed with SIGKILL in the middle of a whole-system restore: after its restart no guest is
paused, nothing half-made is left and the system is as restored.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from snapkeep.config import Settings
from snapkeep.errors import InvalidInput, NameClash, NetworkInUse, NotFound, SnapshotLocked, TenantOnline
from snapkeep.model.network import libvirt_network_name
from snapkeep.model.principal import SYSTEM
from snapkeep.model.profile import Frequency, Period, SubjectOfProfile
from snapkeep.model.selection import Selection
from snapkeep.model.tags import TagKind
from snapkeep.model.types import VM, JobStatus, Snapshot, SubjectType
from snapkeep.model.vmspec import VMState
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage.pool import Pool
from snapkeep.testguest import GuestImage, fsck, read_counter
from tests.conftest import Mounted, make_traversable_tmp, mount_fs, start_server, stop_server, unmount_fs
from tests.integration.test_cli import unique
from tests.integration.test_vm_crash import wait_for
from tests.integration.test_vm_snapshots import (
    BOOT_TIMEOUT,
    _discard_vms,
    console_ready,
    digest,
    image,
    journal_replayed_copy,
    services_on,
)
from tests.integration.test_vm_tenants import make_vm
from tests.integration.test_volume_service import profile_of
from tests.treeutil import users_entries

__all__ = ["image"]  # fixtures used here

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MiB = 1 << 20


def shape(svc: Services) -> dict[str, Any]:
    """Every object of the catalog with its id and configuration (not when it was made: an object brought
    back is made again), settings and tags."""
    with svc.db.unit() as uow:
        tenants = uow.tenants.visible()

        def rows(objects: list[Any]) -> list[Any]:
            return sorted((replace(o, created_at=EPOCH) for o in objects), key=lambda o: o.id)

        return {
            "tenants": rows(tenants),
            "volumes": rows(uow.volumes.list()),
            "vms": rows(uow.vms.list()),
            "networks": rows(uow.networks.list()),
            "settings": {t.id: uow.settings.document(t.id) for t in tenants} | {None: uow.settings.document(None)},
            "tags": {kind: uow.tags.of_all(kind) for kind in TagKind},
        }


def tree_digest(path: str) -> str:
    """The names and bytes of every file under ``path``."""
    h = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            h.update(os.path.relpath(full, path).encode() + b"\0" + digest(full).encode())
    return h.hexdigest()


def data(svc: Services) -> dict[str, str]:
    """Digests of every volume, and of the disks of the VMs that are off (a running guest writes)."""
    found = {f"volume:{v.name}": tree_digest(v.path) for v in svc.volumes.list(who=SYSTEM)}
    for vm in svc.vms.listing(who=SYSTEM):
        if vm.state == VMState.SHUTOFF:
            found[f"vm:{vm.name}"] = digest(disk(vm))
    return found


def disk(vm: VM) -> str:
    return os.path.join(vm.path, vm.config["disks"][0]["file"])


def running(svc: Services) -> list[str]:
    return sorted(vm.name for vm in svc.vms.listing(who=SYSTEM) if vm.state == VMState.RUNNING)


def in_other_namespaces(path: str) -> list[str]:
    """The processes whose mount namespace (QEMU's own, libvirt's default) still holds a mount under
    ``path``: an image volume mounted when a guest started stays mounted there until its QEMU has gone, and
    the pool's filesystem cannot be unmounted before."""
    mine = os.readlink("/proc/self/ns/mnt")
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/ns/mnt") == mine:
                continue
            with open(f"/proc/{pid}/mountinfo") as f:
                if path in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def boot_all(svc: Services, *vms: VM) -> None:
    """Start every guest at once, then wait until each has booted (its writer is then running)."""
    for vm in vms:
        svc.vms.start(vm.id, who=SYSTEM)
    deadline = time.monotonic() + BOOT_TIMEOUT
    for vm in vms:
        while not (console_ready(svc, vm) and svc.host.agent_ping(vm.domain, 1.0)):
            assert time.monotonic() < deadline, f"{vm.name} did not boot within {BOOT_TIMEOUT} s"
            time.sleep(0.2)


def wait_for_agents(svc: Services, vms: list[VM]) -> None:
    """Until every guest's agent answers: booted (its init starts the writer before the agent)."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    for vm in vms:
        while not svc.host.agent_ping(vm.domain, 1.0):
            assert time.monotonic() < deadline, f"{vm.name} did not boot again within {BOOT_TIMEOUT} s"
            time.sleep(0.2)


def restore(svc: Services, snap: Snapshot, options: RestoreOptions | None = None) -> dict[str, Any]:
    return restore_watched(svc, snap, options)[0]


def restore_watched(
    svc: Services, snap: Snapshot, options: RestoreOptions | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The restore as a job, with the progress messages seen while it ran (read every 10 ms)."""
    job = svc.restores.submit(snap.id, options or RestoreOptions(), SYSTEM)
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while (done := svc.jobs.get(job.id, who=SYSTEM)).status in (JobStatus.QUEUED, JobStatus.RUNNING):
        assert time.monotonic() < deadline, "the restore did not end within 120 s"
        if done.message and done.message not in seen:
            seen.append(done.message)
        time.sleep(0.01)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.result is not None and done.finished_at is not None
    took = (done.finished_at - done.created_at).total_seconds()
    print(f"restore of {snap.name} ({svc.pool.driver.name}): {took * 1000:.0f} ms")  # for the report (-s)
    return done.result, seen


def write(path: str, content: bytes) -> None:
    with open(path, "wb") as f:
        f.write(content)


@dataclass
class Estate:
    svc: Services
    guests: list[VM]  # four running writers: two of the system's, acme's, and its child dev's
    idle: VM  # dev's, off


def build_estate(svc: Services, image: GuestImage, wait_boot: bool = True) -> Estate:
    svc.tenants.create(SYSTEM, "acme", description="a customer", tags=["prod"])
    svc.tenants.create(SYSTEM, "dev", parent="acme")
    svc.networks.create(SYSTEM, "lan", "10.231.7.0/24", tenant="acme")
    svc.networks.create(SYSTEM, "backbone", "10.231.8.0/24")
    svc.settings_docs.patch(SYSTEM, {"colour": "blue"})
    svc.settings_docs.patch(SYSTEM, {"retention": {"days": 7}}, tenant="acme")
    for name, tenant in (("files", None), ("shared", "acme"), ("scratch", "acme/dev")):
        volume = svc.volumes.create(name, 64 * MiB, tenant=tenant, tags=["nas"], who=SYSTEM)
        os.makedirs(os.path.join(volume.path, "docs"))
        write(os.path.join(volume.path, "docs", "a.txt"), f"{name} at snapshot time\n".encode() * 1000)
        write(os.path.join(volume.path, "big.bin"), os.urandom(2 * MiB))
    guests = [
        make_vm(svc, image, "sys-writer", None, []),
        make_vm(svc, image, "ops-writer", None, []),
        make_vm(svc, image, "acme-writer", "acme", []),
        make_vm(svc, image, "dev-writer", "acme/dev", []),  # deleted with dev, back and running after
    ]
    idle = make_vm(svc, image, "dev-idle", "acme/dev", [])
    if wait_boot:
        boot_all(svc, *guests)
        time.sleep(1.0)  # a few counter values on the disks
    else:  # running is enough: the take pauses them, the restore stops and starts them
        for vm in guests:
            svc.vms.start(vm.id, who=SYSTEM)
    return Estate(svc, guests, idle)


@pytest.fixture(scope="module", params=["btrfs", "xfs"])
def estate(request: pytest.FixtureRequest, libvirtd: None, image: GuestImage) -> Iterator[Estate]:
    with services_on(request.param) as svc:
        yield build_estate(svc, image)
        _discard_vms(svc)
        deadline = time.monotonic() + 30  # then unmount anyway: a QEMU of another test run may hold it longer
        while in_other_namespaces(svc.settings.pool_dir) and time.monotonic() < deadline:
            time.sleep(0.2)


def change_everything(svc: Services, image: GuestImage) -> None:
    """Change, delete and create objects and data of every kind."""
    files = svc.volumes.get("files", SYSTEM)
    write(os.path.join(files.path, "docs", "a.txt"), b"changed after the snapshot\n")
    os.unlink(os.path.join(files.path, "big.bin"))
    svc.volumes.update(files.id, description="renamed later", size_limit=96 * MiB, who=SYSTEM)
    svc.tenants.update(SYSTEM, "acme", name="acme-renamed", description="changed")
    svc.tags.add(SYSTEM, TagKind.TENANT, "acme-renamed", "later")
    svc.tenants.delete(SYSTEM, "acme-renamed/dev", force=True)  # its VM, volume with it
    shared = next(v for v in svc.volumes.list(who=SYSTEM) if v.name == "shared")
    svc.volumes.delete(shared.id, svc.snapshots, who=SYSTEM)
    svc.tenants.create(SYSTEM, "beta")
    svc.volumes.create("beta-data", 16 * MiB, tenant="beta", who=SYSTEM)
    svc.volumes.create("files-2", 16 * MiB, who=SYSTEM)
    svc.networks.update(SYSTEM, "backbone", cidr="10.231.9.0/24")
    svc.networks.delete(SYSTEM, _network_id(svc, "lan"))
    svc.networks.create(SYSTEM, "lan", "10.231.7.0/25", tenant="beta")  # half the deleted one's range
    svc.settings_docs.patch(SYSTEM, {"colour": None, "size": 3})
    make_vm(svc, image, "newcomer", None, [])
    writer = svc.vms.get("sys-writer", who=SYSTEM)
    svc.vms.stop(writer.id, force=True, who=SYSTEM)  # stopped since: runs again after the restore


def _network_id(svc: Services, name: str) -> str:
    return next(n.id for n in svc.networks.list(SYSTEM) if n.name == name)


def test_whole_system_restore_and_undo(estate: Estate, image: GuestImage, tmp_path: Path) -> None:
    svc = estate.svc
    snap = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name="before"), who=SYSTEM)
    at_snapshot, data_at_snapshot = shape(svc), data(svc)
    counters = {
        vm.name: read_counter(
            journal_replayed_copy(os.path.join(svc.pool.snapshot_data_path(snap.id, vm.dataset), "disk0.raw"), tmp_path)
        )
        for vm in estate.guests
    }
    assert all(counters.values())

    change_everything(svc, image)
    changed, data_changed = shape(svc), data(svc)
    assert changed != at_snapshot

    effects = svc.restores.preview(snap.id, RestoreOptions(), SYSTEM)  # what the confirmation names
    assert {name for _vm, name in effects.stopped} == set(running(svc))
    assert {name for _vm, name in effects.started} == {vm.name for vm in estate.guests}
    assert {("tenant", "beta"), ("volume", "files-2"), ("vm", "newcomer")} <= set(effects.removed)
    assert {("tenant", "dev"), ("volume", "shared"), ("network", "lan")} <= set(effects.brought_back)
    assert ("tenant", "acme") in effects.overwritten  # under its recorded name
    assert (shape(svc), data(svc)) == (changed, data_changed)  # and it changed nothing

    result, progress = restore_watched(svc, snap)
    assert result["pre_restore_snapshot_id"]
    assert "stopping the VMs" in progress  # shown while the running guests are powered off (seconds)
    assert shape(svc) == at_snapshot  # every object with its id (UUIDs, MACs, datasets) and configuration
    assert data(svc) == data_at_snapshot  # every volume's bytes and the idle VM's disk
    assert running(svc) == sorted(vm.name for vm in estate.guests)
    undo = svc.snapshots.get(str(result["pre_restore_snapshot_id"]), SYSTEM)

    # the guests boot again on their restored disks and write on: stopped after, each disk is clean once its
    # journal is replayed (as after any crash) and holds the snapshot's counter, then more
    wait_for_agents(svc, estate.guests)
    time.sleep(1.0)
    for vm in estate.guests:
        svc.vms.stop(vm.id, force=True, who=SYSTEM)
        replayed = journal_replayed_copy(disk(vm), tmp_path)
        checked = fsck(replayed)
        assert checked.clean, (vm.name, checked.report)
        values = read_counter(replayed)
        assert values[: len(counters[vm.name])] == counters[vm.name] and len(values) > len(counters[vm.name])

    restore(svc, undo, RestoreOptions(pre_restore=False))
    assert shape(svc) == changed
    assert data(svc) == data_changed
    assert running(svc) == ["acme-writer", "ops-writer"]  # what ran when the restore was asked


@pytest.fixture(scope="module")
def btrfs_services(libvirtd: None) -> Iterator[Services]:
    with services_on("btrfs") as svc:
        yield svc


@pytest.fixture(scope="module", params=["btrfs", "xfs"])
def services_each(request: pytest.FixtureRequest, libvirtd: None) -> Iterator[Services]:
    with services_on(request.param) as svc:
        yield svc


def test_tenant_restore_over_itself_refused_online_and_as_new(services_each: Services, image: GuestImage) -> None:
    svc = services_each
    shop = svc.tenants.create(SYSTEM, "shop").tenant
    svc.tenants.create(SYSTEM, "eu", parent="shop")
    lan = svc.networks.create(SYSTEM, "lan", "10.232.4.0/24", tenant="shop")
    volume = svc.volumes.create("orders", 32 * MiB, tenant="shop/eu", who=SYSTEM)
    write(os.path.join(volume.path, "order-1"), b"one")
    vm = make_vm(svc, image, "till", "shop", [])
    snap = svc.snapshots.take(TakeRequest(ref="shop", subject_type="tenant", name="t1"), who=SYSTEM)
    write(os.path.join(volume.path, "order-2"), b"two")

    svc.vms.start(vm.id, who=SYSTEM)
    before = shape(svc), data(svc)
    with pytest.raises(TenantOnline):
        svc.restores.submit(snap.id, RestoreOptions(), SYSTEM)
    with pytest.raises(TenantOnline):  # what a confirmation page asks first
        svc.restores.preview(snap.id, RestoreOptions(), SYSTEM)
    assert (shape(svc), data(svc)) == before
    svc.vms.stop(vm.id, force=True, who=SYSTEM)
    recorded = {("tenant", "shop"), ("tenant", "eu"), ("network", "lan"), ("volume", "orders"), ("vm", "till")}
    effects = svc.restores.preview(snap.id, RestoreOptions(), SYSTEM)
    assert set(effects.overwritten) == recorded
    assert effects.removed == effects.brought_back == effects.stopped == effects.started == ()
    restore(svc, snap)
    assert users_entries(svc.volumes.get(volume.id, SYSTEM).path) == ["order-1"]

    copies = [restore(svc, snap, RestoreOptions(as_new=True)) for _ in range(2)]
    assert [c["tenant"] for c in copies] == ["shop (1)", "shop (2)"]
    for copy in copies:
        subtree = svc.tenants.subtree(SYSTEM, str(copy["tenant_id"]))
        assert sorted(t.name for t in subtree.tenants) == ["eu", str(copy["tenant"])]
        (new_vm,) = subtree.vms
        assert new_vm.id != vm.id and new_vm.domain_uuid != vm.domain_uuid
        assert [n["mac"] for n in new_vm.spec["nics"]] != [n["mac"] for n in vm.config["nics"]]
        (new_volume,) = subtree.volumes
        assert users_entries(svc.volumes.get(new_volume.id, SYSTEM).path) == ["order-1"]
        (new_lan,) = subtree.networks
        assert new_lan.name == "lan" and new_lan.cidr != lan.cidr  # beside the original, not over it
    assert shop.id not in {c["tenant_id"] for c in copies}
    named = RestoreOptions(as_new=True, name="shop-copy")
    assert restore(svc, snap, named)["tenant"] == "shop-copy"
    with pytest.raises(NameClash):  # refused before anything is made
        svc.restores.submit(snap.id, named, SYSTEM)

    # a deleted tenant comes back with its ids out of a system snapshot (its own tenant snapshots went with it)
    whole = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name="all"), who=SYSTEM)
    at_snapshot = shape(svc), data(svc)
    svc.tenants.delete(SYSTEM, "shop", force=True)
    with pytest.raises(NotFound):
        svc.snapshots.get(snap.id, SYSTEM)
    member = {"member_type": SubjectType.TENANT, "member": "shop"}
    with pytest.raises(InvalidInput):  # nothing left to take a pre-restore snapshot of
        svc.restores.submit(whole.id, RestoreOptions(**member), SYSTEM)  # type: ignore[arg-type]
    effects = svc.restores.preview(whole.id, RestoreOptions(pre_restore=False, **member), SYSTEM)  # type: ignore[arg-type]
    assert set(effects.brought_back) == recorded and effects.overwritten == effects.removed == ()
    restore(svc, whole, RestoreOptions(pre_restore=False, **member))  # type: ignore[arg-type]
    assert (shape(svc), data(svc)) == at_snapshot
    assert svc.vms.get(vm.id, who=SYSTEM).state == VMState.SHUTOFF  # it was off when the snapshot was taken
    snap = svc.snapshots.take(TakeRequest(ref="shop", subject_type="tenant", name="t2"), who=SYSTEM)

    # what was created since holds a locked snapshot: refused before anything changes
    late = svc.volumes.create("late", 16 * MiB, tenant="shop", who=SYSTEM)
    svc.snapshots.take(TakeRequest(ref=late.id, name="kept", immutable=True), who=SYSTEM)
    before = shape(svc), data(svc), svc.pool.list_snapshots()
    with pytest.raises(SnapshotLocked):
        svc.restores.submit(snap.id, RestoreOptions(), SYSTEM)
    with pytest.raises(SnapshotLocked):
        svc.restores.preview(snap.id, RestoreOptions(), SYSTEM)
    assert (shape(svc), data(svc), svc.pool.list_snapshots()) == before  # not even a pre-restore snapshot


def test_a_vm_whose_network_is_gone_is_refused_up_front_naming_it(btrfs_services: Services, image: GuestImage) -> None:
    """A VM out of a system snapshot whose network was deleted since would be made but could never start:
    refused before anything is made, naming the network as recorded."""
    svc = btrfs_services
    svc.tenants.create(SYSTEM, "kiosk")
    net = svc.networks.create(SYSTEM, "shopfloor", "10.232.9.0/24", tenant="kiosk")
    vm = make_vm(svc, image, "till-2", "kiosk", ["shopfloor"])
    snap = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name="with-net"), who=SYSTEM)
    svc.vms.delete(vm.id, svc.snapshots, force=True, who=SYSTEM)  # the VM, then its network, go
    svc.networks.delete(SYSTEM, net.id)
    before = shape(svc)
    options = RestoreOptions(as_new=True, member_type=SubjectType.VM, member=vm.id)
    with pytest.raises(NotFound, match="network 'shopfloor'"):
        svc.restores.submit(snap.id, options, SYSTEM)
    assert shape(svc) == before


def test_a_whole_restore_brings_back_each_objects_snapshot_profile(btrfs_services: Services, image: GuestImage) -> None:
    """SPEC §1: the snapshot profile is part of a VM's (and volume's) configuration. Deleted since, the VM
    and volume come back with their profiles; reassigned since, the recorded one is put back."""
    svc = btrfs_services
    vm = make_vm(svc, image, unique("sched-vm"), None, [])
    volume = svc.volumes.create(unique("sched-vol"), 16 * MiB, who=SYSTEM)
    nightly = Period(name="nightly", frequency=Frequency.DAILY, hour=2)
    gold, bronze = (svc.profiles.create(unique(n), SYSTEM, periods=(nightly,)).profile for n in ("gold", "bronze"))
    svc.profiles.assign(gold.id, SubjectOfProfile.VM, vm.id, SYSTEM)
    svc.profiles.assign(bronze.id, SubjectOfProfile.VOLUME, volume.id, SYSTEM)
    snap = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name=unique("s")), who=SYSTEM)

    svc.vms.delete(vm.id, svc.snapshots, who=SYSTEM)
    svc.profiles.assign(gold.id, SubjectOfProfile.VOLUME, volume.id, SYSTEM)
    restore(svc, snap, RestoreOptions(pre_restore=False))

    assert profile_of(svc, SubjectOfProfile.VM, vm.id) == gold.name  # made again, its profile with it
    assert profile_of(svc, SubjectOfProfile.VOLUME, volume.id) == bronze.name  # put back


def test_partial_snapshot_restores_only_what_it_selects_and_refuses_a_clash(btrfs_services: Services) -> None:
    """A snapshot of the volumes tagged ``nas``: restoring it touches those and the ``nas`` volumes made
    since, never an untagged one; an untagged volume that took the name of a selected one is a clash."""
    svc = btrfs_services
    svc.tenants.create(SYSTEM, "lab")
    kept = svc.volumes.create("docs", 16 * MiB, tenant="lab", tags=["nas"], who=SYSTEM)
    write(os.path.join(kept.path, "v1"), b"first")
    other = svc.volumes.create("scratch", 16 * MiB, tenant="lab", who=SYSTEM)
    selection = Selection(include=("nas",))
    request = TakeRequest(ref="lab", subject_type="tenant", name="nas-only", selection=selection)
    snap = svc.snapshots.take(request, who=SYSTEM)
    assert [o.name for o in svc.snapshots.manifest(snap.id).objects if o.type == "volume"] == ["docs"]

    write(os.path.join(other.path, "untouched"), b"written after the snapshot")
    svc.volumes.delete(kept.id, svc.snapshots, who=SYSTEM)
    squatter = svc.volumes.create("docs", 16 * MiB, tenant="lab", who=SYSTEM)  # untagged: not selected
    before = shape(svc), data(svc), svc.pool.list_snapshots()
    with pytest.raises(NameClash):
        svc.restores.submit(snap.id, RestoreOptions(), SYSTEM)
    assert (shape(svc), data(svc), svc.pool.list_snapshots()) == before

    svc.volumes.update(squatter.id, name="docs-2", who=SYSTEM)
    newer = svc.volumes.create("more", 16 * MiB, tenant="lab", tags=["nas"], who=SYSTEM)  # selected: goes
    restore(svc, snap)
    names = {v.name: v for v in svc.volumes.list(who=SYSTEM) if v.owner_tenant_id == kept.owner_tenant_id}
    assert sorted(names) == ["docs", "docs-2", "scratch"] and newer.id not in {v.id for v in names.values()}
    assert names["docs"].id == kept.id and os.listdir(names["docs"].path) == ["v1"]
    assert os.listdir(names["scratch"].path) == ["untouched"]


def test_objects_that_swapped_names_since_get_their_own_back(btrfs_services: Services, image: GuestImage) -> None:
    """Two tenants, two volumes and two networks swap names after the snapshot (through a third name, as an
    operator would), and the networks their ranges (one of them realised on the host by a VM that ran on
    it): each gets its own back, none clashes half-way with the other's, and the VM runs on its recorded
    range again."""
    svc = btrfs_services
    svc.tenants.create(SYSTEM, "swaps")
    tenants = [svc.tenants.create(SYSTEM, name, parent="swaps").tenant for name in ("red", "blue")]
    volumes = [svc.volumes.create(name, 16 * MiB, tenant="swaps", who=SYSTEM) for name in ("left", "right")]
    networks = [
        svc.networks.create(SYSTEM, name, cidr, tenant="swaps")
        for name, cidr in (("up", "10.81.1.0/24"), ("down", "10.81.2.0/24"))
    ]
    for i, volume in enumerate(volumes):
        write(os.path.join(volume.path, "which"), f"volume {i}".encode())
    vm = make_vm(svc, image, "on-up", "swaps", ["up"])
    svc.vms.start(vm.id, who=SYSTEM)  # realises "up" on the host
    svc.vms.stop(vm.id, force=True, who=SYSTEM)
    host_network = libvirt_network_name(networks[0].id)
    assert svc.host.network_exists(host_network)
    request = TakeRequest(ref="swaps", subject_type="tenant", name="before-the-swap")
    snap = svc.snapshots.take(request, who=SYSTEM)
    before = shape(svc), data(svc)

    for update, (a, b) in (
        (lambda ref, name: svc.tenants.update(SYSTEM, ref, name=name), tenants),
        (lambda ref, name: svc.volumes.update(ref, name=name, who=SYSTEM), volumes),
        (lambda ref, name: svc.networks.update(SYSTEM, ref, name=name), networks),
    ):
        update(a.id, "swapping")
        update(b.id, a.name)
        update(a.id, b.name)
    up, down = networks  # and their ranges
    svc.networks.update(SYSTEM, up.id, cidr="10.81.3.0/24")
    svc.networks.update(SYSTEM, down.id, cidr=up.cidr)
    svc.networks.update(SYSTEM, up.id, cidr=down.cidr)
    assert shape(svc) != before[0]
    restore(svc, snap)
    assert (shape(svc), data(svc)) == before
    svc.vms.start(vm.id, who=SYSTEM)
    try:
        xml = subprocess.run(["virsh", "net-dumpxml", host_network], check=True, capture_output=True, text=True)
        assert "address='10.81.1.1'" in xml.stdout, xml.stdout  # the recorded range, not the swapped one
    finally:
        svc.vms.stop(vm.id, force=True, who=SYSTEM)


def test_a_range_change_under_a_running_vm_left_alone_is_refused_up_front(
    btrfs_services: Services, image: GuestImage
) -> None:
    """A partial system snapshot (volumes tagged ``ranges-nas``) records the networks; a VM it does not select runs
    on that network, whose range has changed since: putting the range back would pull the network from
    under that VM, so the restore is refused before anything changes."""
    svc = btrfs_services
    svc.tenants.create(SYSTEM, "ranges")
    net = svc.networks.create(SYSTEM, "lan", "10.82.1.0/24", tenant="ranges")
    volume = svc.volumes.create("files", 16 * MiB, tenant="ranges", tags=["ranges-nas"], who=SYSTEM)
    write(os.path.join(volume.path, "f"), b"as snapshotted")
    vm = make_vm(svc, image, "apart", "ranges", ["lan"])  # untagged: not in the snapshot's selection
    request = TakeRequest(
        ref="system", subject_type="system", name="ranges-nas", selection=Selection(include=("ranges-nas",))
    )
    snap = svc.snapshots.take(request, who=SYSTEM)
    svc.networks.update(SYSTEM, net.id, cidr="10.82.2.0/24")
    write(os.path.join(volume.path, "f"), b"changed since")
    svc.vms.start(vm.id, who=SYSTEM)
    try:
        before = shape(svc), data(svc), svc.pool.list_snapshots()
        with pytest.raises(NetworkInUse) as refused:
            svc.restores.submit(snap.id, RestoreOptions(), SYSTEM)
        assert refused.value.details["vms"] == ["apart"]
        assert (shape(svc), data(svc), svc.pool.list_snapshots()) == before
        assert svc.vms.get(vm.id, who=SYSTEM).state == VMState.RUNNING
    finally:
        svc.vms.stop(vm.id, force=True, who=SYSTEM)
    restore(svc, snap)  # with the VM off, the range goes back
    assert svc.networks.get(SYSTEM, net.id).cidr == "10.82.1.0/24"
    assert Path(volume.path, "f").read_bytes() == b"as snapshotted"


@pytest.mark.parametrize("fstype", ["btrfs", "xfs"])
def test_sigkill_during_whole_system_restore_then_restart_completes_it(
    fstype: str, libvirtd: None, image: GuestImage
) -> None:
    """The state is built in-process on the service's own data; the served restore is killed once its
    rebuild has begun (SIGSTOP while its intent file exists, then SIGKILL). After the restart every object,
    configuration and byte is as at snapshot time and nothing half-made is left in the pool."""
    mounted: Mounted = mount_fs(fstype, "20G")
    data_dir = make_traversable_tmp("snapkeep-rebuild-crash-")
    pool_dir = mounted.new_dir("pool")
    settings = Settings(data_dir=data_dir, pool_dir=pool_dir, sweep_interval=3600)
    svc = Services.build(settings, Pool.open(settings.pool_path))
    server = None
    try:
        estate = build_estate(svc, image, wait_boot=False)
        snap = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name="s"), who=SYSTEM)
        at_snapshot, data_at_snapshot = shape(svc), data(svc)
        change_everything(svc, image)
        svc.close()

        server = start_server(data_dir, pool_dir)
        run_dir = os.path.join(data_dir, "run")
        server.client().post(f"/api/v1/snapshots/{snap.id}/restore", json={})
        wait_for(lambda: glob.glob(os.path.join(run_dir, "rebuild-*.json")), 60, "the rebuild's intent", 0.0005)
        os.kill(server.process.pid, signal.SIGSTOP)
        assert glob.glob(os.path.join(run_dir, "rebuild-*.json")), "the rebuild ended before the kill"
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()

        server = start_server(data_dir, pool_dir)  # its reconciler finishes the rebuild before it answers
        svc = Services.build(settings, Pool.open(settings.pool_path))  # to look, beside it
        assert glob.glob(os.path.join(run_dir, "*.json")) == []
        assert any(e.action == "rebuild" and e.target == "resumed" for e in svc.audit.entries(SYSTEM))
        assert shape(svc) == at_snapshot
        assert data(svc) == data_at_snapshot
        assert os.listdir(os.path.join(pool_dir, "staging")) == []
        assert running(svc) == sorted(vm.name for vm in estate.guests)
        paused = [vm.name for vm in svc.vms.listing(who=SYSTEM) if vm.state == VMState.PAUSED]
        assert paused == []
    finally:
        if server is not None:
            stop_server(server)
        _discard_vms(svc)
        svc.close()
        unmount_fs(mounted)
        shutil.rmtree(data_dir, ignore_errors=True)
