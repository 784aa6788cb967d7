"""VM snapshots and restores through the services, with real libvirtd, real QEMU guests and their agent.

One running test guest (its init appends a counter to /data/counter every 50 ms) is shared by the module;
stopped VMs cover restore semantics without booting. Real boots are kept few: the shared guest, the
restored copy that is booted once, and one agent-less guest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from snapkeep.config import Settings
from snapkeep.errors import Conflict, HypervisorError, NameClash, QuiesceFailed, SnapkeepError
from snapkeep.hypervisor import Hypervisor
from snapkeep.model.network import libvirt_network_name
from snapkeep.model.principal import SYSTEM
from snapkeep.model.profile import Frequency, Period, SubjectOfProfile
from snapkeep.model.types import VM, QuiescePolicy
from snapkeep.model.vmspec import VMState
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage.pool import Pool
from snapkeep.testguest import (
    GuestImage,
    build_test_guest,
    counter_is_intact,
    fsck,
    make_data_disk,
    parse_counter,
    read_counter,
    read_mirror,
)
from tests.conftest import Mounted, make_traversable_tmp, mount_fs, unmount_fs, vm_restored_as_new
from tests.integration.test_volume_service import profile_of

BOOT_TIMEOUT = 90.0


@contextlib.contextmanager
def services_on(fstype: str, host: Hypervisor | None = None) -> Iterator[Services]:
    """Services on a pool of their own on a fresh ``fstype`` filesystem (on ``host``, a wrapper with fault
    switches, if given); every VM removed at the end."""
    mounted: Mounted = mount_fs(fstype, "20G")
    data_dir = make_traversable_tmp("snapkeep-vm-data-")
    settings = Settings(data_dir=data_dir, pool_dir=mounted.new_dir("pool"), sweep_interval=3600)
    services = Services.build(settings, Pool.open(settings.pool_path), host=host)
    try:
        yield services
    finally:
        _discard_vms(services)
        services.close()
        unmount_fs(mounted)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def vm_services(libvirtd: None) -> Iterator[Services]:
    """Services on a btrfs pool, shared by the module, with libvirtd running."""
    with services_on("btrfs") as services:
        yield services


def _discard_vms(services: Services) -> None:
    """Teardown never stops half-way: each VM is deleted through the service, else by libvirt directly;
    then every network of the catalog leaves the host (a VM that ran realised it)."""
    try:
        vms = services.vms.listing(who=SYSTEM)
        networks = services.networks.list(SYSTEM)
    except SnapkeepError as exc:
        print(f"cleanup: cannot list VMs or networks: {exc.message}")
        return
    for vm in vms:
        try:
            services.vms.delete(vm.id, services.snapshots, force=True, who=SYSTEM)
        except SnapkeepError as exc:
            print(f"cleanup of {vm.name}: {exc.message}")
            for step in (services.host.power_off, services.host.undefine):
                with contextlib.suppress(SnapkeepError):
                    step(vm.domain)
    for network in networks:
        try:
            services.host.remove_network(libvirt_network_name(network.id))
        except SnapkeepError as exc:
            print(f"cleanup of network {network.name}: {exc.message}")


@pytest.fixture(scope="module")
def image() -> GuestImage:
    return build_test_guest()


def make_vm(svc: Services, image: GuestImage, name: str, disks: int = 1) -> VM:
    vm = svc.vms.create(
        name,
        vcpus=1,
        memory_mib=256,
        disk_sizes=[128 << 20] * disks,
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.cmdline,
        agent_timeout=2.0,
        who=SYSTEM,
    )
    for disk in vm.config["disks"]:
        path = os.path.join(vm.path, disk["file"])
        os.unlink(path)
        make_data_disk(path, disk["size"])
    return vm


def disk_path(vm: VM, index: int = 0) -> str:
    return os.path.join(vm.path, vm.config["disks"][index]["file"])


def console_ready(svc: Services, vm: VM) -> bool:
    try:
        with open(os.path.join(svc.settings.log_dir, f"{vm.domain}.log")) as f:
            return "snapkeep-testguest: ready" in f.read()
    except OSError:
        return False


def boot(svc: Services, vm: VM) -> None:
    svc.vms.start(vm.id, who=SYSTEM)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not (console_ready(svc, vm) and svc.host.agent_ping(vm.domain, 1.0)):
        assert time.monotonic() < deadline, f"{vm.name} did not boot with its agent within {BOOT_TIMEOUT} s"
        time.sleep(0.2)


def digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def running(vm_services: Services, image: GuestImage) -> VM:
    vm = make_vm(vm_services, image, "writer-guest")
    boot(vm_services, vm)
    time.sleep(1.0)  # let the writer append a few values
    return vm


def test_quiesced_snapshot_of_running_guest_restores_as_new_and_boots(
    vm_services: Services, running: VM, image: GuestImage
) -> None:
    svc = vm_services
    snap = svc.snapshots.take(TakeRequest(ref=running.id, subject_type="vm", name="quiet", quiesce=True), who=SYSTEM)
    tail = svc.host.read_guest_file(running.domain, "/data/counter", 5.0, limit=64, tail=True)  # type: ignore[attr-defined]
    seen_after_snapshot = parse_counter(tail)[-1]
    assert snap.quiesced and snap.quiesce_note is None
    assert snap.quiesce_window_ms is not None and snap.paused_window_ms is not None
    assert snap.paused_window_ms <= snap.quiesce_window_ms
    assert svc.vms.get(running.id, who=SYSTEM).state == VMState.RUNNING
    assert not svc.host.frozen(running.domain, 5.0), "the guest was left frozen"

    copy = vm_restored_as_new(svc, snap.id)
    assert copy.name == "quiet restored" and copy.state == VMState.SHUTOFF
    assert copy.domain_uuid != running.domain_uuid
    assert [n["mac"] for n in copy.config["nics"]] != [n["mac"] for n in running.config["nics"]]
    assert [d["serial"] for d in copy.config["disks"]] == [d["serial"] for d in running.config["disks"]]

    snapshot_counter = read_counter(
        svc.pool.snapshot_data_path(snap.id, running.dataset) + "/" + running.config["disks"][0]["file"]
    )
    assert snapshot_counter and counter_is_intact(snapshot_counter)
    assert snapshot_counter[-1] <= seen_after_snapshot
    boot(svc, copy)
    svc.vms.stop(copy.id, timeout=60, who=SYSTEM)
    assert svc.vms.get(copy.id, who=SYSTEM).state == VMState.SHUTOFF
    assert fsck(disk_path(copy)).clean
    values = read_counter(disk_path(copy))
    assert counter_is_intact(values)
    assert values[: len(snapshot_counter)] == snapshot_counter, "the copy did not start from the snapshot"


def test_reconciler_thaws_and_resumes_a_guest_left_frozen_and_paused(vm_services: Services, running: VM) -> None:
    """What a SIGKILL between freeze and thaw leaves: intent files, a frozen and paused guest."""
    from snapkeep.engine.holds import GuestFrozen, GuestsPaused

    svc = vm_services
    run_dir = svc.settings.run_dir
    GuestFrozen(svc.host, running.domain, 5.0, svc.intents, "crashed").acquire()  # never released: a crash
    GuestsPaused(svc.host, [running.domain], svc.intents, "crashed").acquire()
    assert svc.vms.get(running.id, who=SYSTEM).state == VMState.PAUSED

    report = svc.reconcile()
    assert report.guests_released == 2
    assert svc.vms.get(running.id, who=SYSTEM).state == VMState.RUNNING
    assert not svc.host.frozen(running.domain, 5.0)
    assert [f for f in os.listdir(run_dir) if "guest-" in f] == []


def test_restore_over_running_vm_needs_power_off_and_clashes_are_refused(vm_services: Services, running: VM) -> None:
    svc = vm_services
    snap = svc.snapshots.take(TakeRequest(ref=running.id, subject_type="vm", name="plain"), who=SYSTEM)
    assert not snap.quiesced and snap.paused_window_ms is not None
    before = svc.snapshots.listing(running.id, "vm", who=SYSTEM)
    with pytest.raises(Conflict, match="running"):
        svc.restores.over_source(snap.id, RestoreOptions(), SYSTEM)
    with pytest.raises(NameClash):
        vm_restored_as_new(svc, snap.id, name=running.name)
    assert svc.vms.get(running.id, who=SYSTEM).state == VMState.RUNNING
    assert svc.snapshots.listing(running.id, "vm", who=SYSTEM) == before
    assert {vm.name for vm in svc.vms.listing(who=SYSTEM)} >= {running.name}


def test_restore_to_any_snapshot_and_undo_byte_for_byte(vm_services: Services, image: GuestImage) -> None:
    svc = vm_services
    vm = make_vm(svc, image, "history", disks=2)
    digests: list[tuple[str, str]] = []
    snaps = []
    for i in range(5):
        for index in (0, 1):
            with open(disk_path(vm, index), "r+b") as f:
                f.seek((i + 1) * (1 << 20) + index)
                f.write(f"generation {i} disk {index}".encode() * 100)
        digests.append((digest(disk_path(vm, 0)), digest(disk_path(vm, 1))))
        snaps.append(svc.snapshots.take(TakeRequest(ref=vm.id, subject_type="vm", name=f"gen{i}"), who=SYSTEM))
    current = (digest(disk_path(vm, 0)), digest(disk_path(vm, 1)))

    first = svc.restores.over_source(snaps[0].id, RestoreOptions(), SYSTEM)
    assert (digest(disk_path(vm, 0)), digest(disk_path(vm, 1))) == digests[0]
    svc.restores.over_source(snaps[3].id, RestoreOptions(pre_restore=False), SYSTEM)
    assert (digest(disk_path(vm, 0)), digest(disk_path(vm, 1))) == digests[3]
    assert first["pre_restore_snapshot_id"] is not None
    svc.restores.over_source(str(first["pre_restore_snapshot_id"]), RestoreOptions(pre_restore=False), SYSTEM)
    assert (digest(disk_path(vm, 0)), digest(disk_path(vm, 1))) == current
    safety = svc.snapshots.get(str(first["pre_restore_snapshot_id"]), who=SYSTEM)
    assert safety.name.startswith("pre-restore_") and safety.expires_at is not None
    assert abs(safety.expires_at - safety.created_at - timedelta(days=7)) < timedelta(seconds=5)


def test_a_vms_snapshot_profile_comes_back_with_its_configuration(vm_services: Services, image: GuestImage) -> None:
    """SPEC §1: a VM's snapshot profile is part of its configuration; a restore over the VM puts back the one
    its snapshot recorded. A copy restored as new starts with none."""
    svc = vm_services
    vm = make_vm(svc, image, "scheduled")
    nightly = Period(name="nightly", frequency=Frequency.DAILY, hour=2)
    gold, bronze = (svc.profiles.create(f"{n}-{vm.id[:8]}", SYSTEM, periods=(nightly,)).profile for n in "gb")
    svc.profiles.assign(gold.id, SubjectOfProfile.VM, vm.id, SYSTEM)
    snap = svc.snapshots.take(TakeRequest(ref=vm.id, subject_type="vm", name="with-gold"), who=SYSTEM)
    svc.profiles.assign(bronze.id, SubjectOfProfile.VM, vm.id, SYSTEM)

    svc.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)

    assert profile_of(svc, SubjectOfProfile.VM, vm.id) == gold.name
    copy = vm_restored_as_new(svc, snap.id, f"copy-{vm.id[:8]}")
    assert profile_of(svc, SubjectOfProfile.VM, copy.id) is None


def test_clone_and_delete(vm_services: Services, image: GuestImage) -> None:
    svc = vm_services
    vm = make_vm(svc, image, "original")
    with open(disk_path(vm), "r+b") as f:
        f.write(b"cloned bytes")
    clone = svc.clones.clone(vm.id, "original-clone", preserve_macs=True, who=SYSTEM)
    assert digest(disk_path(clone)) == digest(disk_path(vm))
    assert [n["mac"] for n in clone.config["nics"]] == [n["mac"] for n in vm.config["nics"]]
    assert svc.snapshots.listing(vm.id, "vm", who=SYSTEM) == []  # the clone's source snapshot is gone
    snap = svc.snapshots.take(TakeRequest(ref=clone.id, subject_type="vm", name="s"), who=SYSTEM)
    svc.vms.delete(clone.id, svc.snapshots, who=SYSTEM)
    assert not svc.host.exists("original-clone")
    assert snap.id not in svc.pool.list_snapshots()
    assert clone.dataset not in svc.pool.list_datasets()


def test_guest_without_agent_require_fails_fallback_says_why(vm_services: Services, image: GuestImage) -> None:
    """An agent that never answers: the VM has no guest-agent channel at all."""
    svc = vm_services
    vm = svc.vms.create(
        "no-agent",
        vcpus=1,
        memory_mib=256,
        disk_sizes=[128 << 20],
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.cmdline,
        agent_timeout=1.0,
        guest_agent=False,
        who=SYSTEM,
    )
    os.unlink(disk_path(vm))
    make_data_disk(disk_path(vm), 128 << 20)
    svc.vms.start(vm.id, who=SYSTEM)
    deadline = time.monotonic() + BOOT_TIMEOUT
    while not console_ready(svc, vm):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with pytest.raises(QuiesceFailed):
        svc.snapshots.take(
            TakeRequest(ref=vm.id, subject_type="vm", name="must", quiesce=True, quiesce_policy=QuiescePolicy.REQUIRE),
            who=SYSTEM,
        )
    assert svc.snapshots.listing(vm.id, "vm", who=SYSTEM) == []
    assert svc.vms.get(vm.id, who=SYSTEM).state == VMState.RUNNING
    snap = svc.snapshots.take(TakeRequest(ref=vm.id, subject_type="vm", name="may", quiesce=True), who=SYSTEM)
    assert not snap.quiesced and snap.quiesce_note and "not quiesced" in snap.quiesce_note
    assert svc.vms.get(vm.id, who=SYSTEM).state == VMState.RUNNING
    svc.vms.delete(vm.id, svc.snapshots, force=True, who=SYSTEM)


def wait_for_agent(svc: Services, vm: VM, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not svc.host.agent_ping(vm.domain, 1.0):
        assert time.monotonic() < deadline, "the guest agent did not come back"


@pytest.mark.parametrize(
    "fault",
    [
        "killall -STOP qemu-ga; sleep 6; killall -CONT qemu-ga",  # slower than the 2 s timeout
        "killall -STOP qemu-ga; sleep 1; killall -9 qemu-ga",  # killed while a freeze waits on it
    ],
    ids=["agent-slower-than-timeout", "agent-killed-during-freeze"],
)
def test_agent_faults_never_leave_the_guest_frozen(vm_services: Services, running: VM, fault: str) -> None:
    svc = vm_services
    wait_for_agent(svc, running)
    svc.host.guest_exec(running.domain, ["/bin/sh", "-c", fault], 5.0)  # type: ignore[attr-defined]
    time.sleep(0.3)
    with pytest.raises(QuiesceFailed):
        svc.snapshots.take(
            TakeRequest(
                ref=running.id,
                subject_type="vm",
                name="must-quiesce",
                quiesce=True,
                quiesce_policy=QuiescePolicy.REQUIRE,
            ),
            who=SYSTEM,
        )
    assert "must-quiesce" not in {s.name for s in svc.snapshots.listing(running.id, "vm", who=SYSTEM)}
    assert svc.vms.get(running.id, who=SYSTEM).state == VMState.RUNNING

    wait_for_agent(svc, running)
    svc.release_pending()  # what the service's periodic loop does every few seconds
    assert not svc.host.frozen(running.domain, 5.0), "the guest stayed frozen after the agent came back"
    assert [f for f in os.listdir(svc.settings.run_dir) if "guest-" in f] == []

    svc.host.guest_exec(running.domain, ["/bin/sh", "-c", fault], 5.0)  # type: ignore[attr-defined]
    time.sleep(0.3)
    snap = svc.snapshots.take(
        TakeRequest(ref=running.id, subject_type="vm", name=f"fallback-{abs(hash(fault))}", quiesce=True), who=SYSTEM
    )
    assert not snap.quiesced and snap.quiesce_note and "not quiesced" in snap.quiesce_note
    assert snap.paused_window_ms is not None
    wait_for_agent(svc, running)
    svc.release_pending()
    assert not svc.host.frozen(running.domain, 5.0)
    assert svc.vms.get(running.id, who=SYSTEM).state == VMState.RUNNING
    assert [f for f in os.listdir(svc.settings.run_dir) if "guest-" in f] == []


@pytest.fixture(params=["btrfs", "xfs"])
def pool_kind(request: pytest.FixtureRequest, libvirtd: None) -> Iterator[Services]:
    """Services on a pool of each kind: on XFS the disks are cloned one after the other, so only the pause
    makes them one instant."""
    with services_on(request.param) as services:
        yield services


def journal_replayed_copy(image: str, workdir: Path) -> str:
    """A crash-consistent ext4 image as the guest would see it after a reboot: the journal replayed (on a
    copy; the snapshot stays untouched)."""
    copy = str(workdir / f"replayed-{os.path.basename(image)}")
    subprocess.run(["cp", "--reflink=auto", "--sparse=always", image, copy], check=True)
    done = subprocess.run(["e2fsck", "-fy", copy], capture_output=True)
    assert done.returncode in (0, 1), done.stderr  # 1: errors corrected (the journal replay itself)
    return copy


def test_two_disks_of_a_running_guest_are_captured_at_one_instant(
    pool_kind: Services, image: GuestImage, tmp_path: Path
) -> None:
    """Not quiesced on purpose: only the pause makes the two disks one instant."""
    svc = pool_kind
    vm = make_vm(svc, image, f"two-disks-{svc.pool.driver.name.split()[0]}", disks=2)
    boot(svc, vm)
    time.sleep(1.0)
    for i in range(3):
        snap = svc.snapshots.take(TakeRequest(ref=vm.id, subject_type="vm", name=f"both-{i}"), who=SYSTEM)
        data = svc.pool.snapshot_data_path(snap.id, vm.dataset)
        counter = read_counter(journal_replayed_copy(os.path.join(data, vm.config["disks"][0]["file"]), tmp_path))
        mirror = read_mirror(os.path.join(data, vm.config["disks"][1]["file"]))
        assert counter and mirror is not None and counter_is_intact(counter)
        assert 0 <= counter[-1] - mirror <= 1, f"disks captured apart: counter {counter[-1]}, mirror {mirror}"
        time.sleep(0.3)
    svc.vms.stop(vm.id, force=True, who=SYSTEM)


class DefineFails:
    """The real hypervisor, with a fault switch on ``define`` (everything else passes through)."""

    def __init__(self, host: object) -> None:
        self._host = host
        self.fail = False

    def define(self, spec: object) -> None:
        if self.fail:
            self.fail = False  # only the restore's own define fails; putting the old one back works
            raise HypervisorError("define refused (fault switch)")
        self._host.define(spec)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._host, name)


def test_vm_restore_whose_define_fails_puts_disks_and_configuration_back(image: GuestImage, libvirtd: None) -> None:
    from snapkeep.hypervisor.libvirt_host import LibvirtHost

    mounted = mount_fs("btrfs", "20G")
    data_dir = make_traversable_tmp("snapkeep-vm-fault-")
    settings = Settings(data_dir=data_dir, pool_dir=mounted.new_dir("pool"), sweep_interval=3600)
    host = DefineFails(LibvirtHost())
    svc = Services.build(settings, Pool.open(settings.pool_path), host=host)  # type: ignore[arg-type]
    try:
        vm = make_vm(svc, image, "define-fails")
        with open(disk_path(vm), "r+b") as f:
            f.write(b"state at the snapshot")
        snap = svc.snapshots.take(TakeRequest(ref=vm.id, subject_type="vm", name="s"), who=SYSTEM)
        with open(disk_path(vm), "r+b") as f:
            f.write(b"state after the snapshot")
        before = digest(disk_path(vm))
        host.fail = True
        with pytest.raises(HypervisorError):
            svc.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)
        assert digest(disk_path(vm)) == before, "the disks were left from the snapshot"
        assert svc.vms.get(vm.id, who=SYSTEM).config == vm.config
        assert svc.pool.list_staging() == []
    finally:
        _discard_vms(svc)
        svc.close()
        unmount_fs(mounted)
        shutil.rmtree(data_dir, ignore_errors=True)
