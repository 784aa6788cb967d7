"""System and tenant snapshots through the services, with real libvirtd, real guests and real pools.

One small system per driver (btrfs, XFS), shared by the module: a tenant ``acme`` with a sub-tenant
``acme/dev``, a sibling tenant, a volume of the system's and one of acme's with files, and two running
guests (one of the system's, one of acme/dev's) whose init appends a counter to their data disk every 50 ms.
What is checked: every guest's disk is captured at one instant (between what it wrote just before the
pause and just after its resume), a system snapshot lists its contents (as at snapshot time) and shows a
tenant only its own part (a private one not at all), a partial one holds only what its tags pick, it keeps
its description, expiry and lock, one VM comes back out of it as a new VM that boots with its data (refused
first when the pool has no room), one VM's state is imported as a VM snapshot, one volume is restored over
itself (data only, then with its settings) and its files are read out of it, and a failed pause leaves
every guest running and records nothing.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapkeep.errors import (
    Forbidden,
    HypervisorError,
    InvalidInput,
    NotFound,
    PoolFull,
    SnapshotLocked,
    VMStateConflict,
)
from snapkeep.hypervisor import Hypervisor
from snapkeep.hypervisor.base import Guest, GuestByName
from snapkeep.hypervisor.libvirt_host import LibvirtHost
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.selection import FULL, Selection
from snapkeep.model.types import VM, RestoreMode, SnapshotKind, SubjectType, Volume
from snapkeep.model.vmspec import VMState
from snapkeep.services.container import Services
from snapkeep.services.contents import read_contents
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.space import CLONE_ALLOWANCE
from snapkeep.services.subjects import RestoreOptions
from snapkeep.testguest import GuestImage, counter_is_intact, fsck, read_counter
from tests.integration.test_restore_space import filled
from tests.integration.test_vm_snapshots import (
    boot,
    digest,
    disk_path,
    image,
    journal_replayed_copy,
    services_on,
)
from tests.integration.test_vm_tenants import make_vm

__all__ = ["image"]  # a fixture used here


@dataclass(frozen=True)
class World:
    svc: Services
    acme: str
    dev: str
    other: str
    system_vm: VM
    dev_vm: VM
    system_volume: Volume
    acme_volume: Volume

    def admin_of(self, tenant_id: str) -> Principal:
        return Principal(f"admin-of-{tenant_id[:8]}", Role.ADMIN, tenant_id)


class PauseFails:
    """The real hypervisor, with fault switches: while ``domain`` is set, pausing that domain fails; once
    ``stops_at_resume`` is resumed, libvirt is made to say it is off (a guest that shut down right away);
    ``starts_at_pause`` is started for real when the guests are looked up to be paused (someone starting a
    VM whose disks the take has just captured at rest). ``at_pause`` is called just before the guests are
    paused, ``at_resume`` with each domain just after it was resumed (to read what the guests wrote)."""

    def __init__(self, host: Hypervisor) -> None:
        self._host = host
        self.domain: str | None = None
        self.stops_at_resume: str | None = None
        self.starts_at_pause: str | None = None
        self.at_pause: Callable[[], None] | None = None
        self.at_resume: Callable[[str], None] | None = None
        self._stopped: set[str] = set()

    def pause(self, domain: str) -> None:
        if domain == self.domain:
            raise HypervisorError(f"pause of {domain} refused (fault switch)")
        self._host.pause(domain)

    def resume(self, domain: str) -> None:
        self._host.resume(domain)
        if self.at_resume is not None:
            self.at_resume(domain)
        if domain == self.stops_at_resume:
            self._stopped.add(domain)

    def guests(self, names: Sequence[str]) -> list[Guest]:
        if self.starts_at_pause is not None:
            self._host.start(self.starts_at_pause)
        if self.at_pause is not None:
            self.at_pause()
        return [GuestByName(self, name) for name in names]  # type: ignore[arg-type]

    def state(self, domain: str) -> VMState:
        return VMState.SHUTOFF if domain in self._stopped else self._host.state(domain)

    def states(self, domains: Sequence[str]) -> dict[str, VMState]:
        found = self._host.states(domains)
        return {domain: VMState.SHUTOFF if domain in self._stopped else state for domain, state in found.items()}

    def reset(self) -> None:
        self.domain = self.stops_at_resume = self.starts_at_pause = None
        self.at_pause = self.at_resume = None
        self._stopped.clear()

    def __getattr__(self, name: str) -> object:
        return getattr(self._host, name)


@pytest.fixture(scope="module", params=["btrfs", "xfs"])
def world(request: pytest.FixtureRequest, libvirtd: None, image: GuestImage) -> Iterator[World]:
    with services_on(request.param, PauseFails(LibvirtHost())) as svc:  # type: ignore[arg-type]
        acme = svc.tenants.create(SYSTEM, "acme", tags=["prod"]).tenant.id
        dev = svc.tenants.create(SYSTEM, "dev", parent="acme").tenant.id
        other = svc.tenants.create(SYSTEM, "other").tenant.id
        system_volume = svc.volumes.create("docs", 64 << 20, who=SYSTEM)
        acme_volume = svc.volumes.create("acme-docs", 64 << 20, tenant="acme", who=SYSTEM)
        for volume, text in ((system_volume, b"the system's\n"), (acme_volume, b"acme's\n")):
            Path(volume.path, "readme.txt").write_bytes(text)
        system_vm = make_vm(svc, image, "sys-guest", None, [])
        dev_vm = make_vm(svc, image, "dev-guest", "acme/dev", [])
        for vm in (system_vm, dev_vm):
            boot(svc, vm)
        time.sleep(1.0)  # a few counter values on each disk
        yield World(svc, acme, dev, other, system_vm, dev_vm, system_volume, acme_volume)


def take(
    world: World,
    name: str,
    ref: str = "system",
    who: Principal = SYSTEM,
    subject_type: str = "system",
    private: bool | None = None,
    selection: Selection = FULL,
) -> str:
    request = TakeRequest(ref=ref, subject_type=subject_type, name=name, private=private, selection=selection)
    return world.svc.snapshots.take(request, who=who).id


def captured_counter(world: World, snap_id: str, vm: VM, workdir: Path) -> list[int]:
    data = world.svc.pool.snapshot_data_path(snap_id, vm.dataset)
    return read_counter(journal_replayed_copy(os.path.join(data, vm.config["disks"][0]["file"]), workdir))


def live_counter(vm: VM, workdir: Path) -> list[int]:
    """What the running guest has written so far, as a crash would leave it (a copy, journal replayed)."""
    return read_counter(journal_replayed_copy(disk_path(vm), workdir))


def take_between_reads(world: World, name: str, workdir: Path) -> tuple[str, dict[str, int], dict[str, int]]:
    """A system take, with each guest's last counter value read just before the guests are paused and just
    after each is resumed (through the fault-switch host; the take itself is unchanged). Each read is kept
    a few of the guests' writes (50 ms apart) away from the window: the value before is read 150 ms after
    the take asked for the pause, the take goes on 150 ms after the value after was read, so a disk
    captured outside the window holds a value outside the two."""
    guests = {vm.domain: vm for vm in (world.system_vm, world.dev_vm)}
    faults: PauseFails = world.svc.host  # type: ignore[assignment]
    before: dict[str, int] = {}
    after: dict[str, int] = {}

    def last_written(vm: VM, when: str) -> int:
        own = workdir / f"{when}-{vm.name}"  # the resumes read on threads of their own
        own.mkdir(parents=True)
        return live_counter(vm, own)[-1]

    def read_before() -> None:
        time.sleep(0.15)
        before.update({vm.id: last_written(vm, "before") for vm in guests.values()})

    def read_after(domain: str) -> None:
        after[guests[domain].id] = last_written(guests[domain], "after")
        time.sleep(0.15)

    faults.at_pause, faults.at_resume = read_before, read_after
    try:
        return take(world, name), before, after
    finally:
        faults.reset()


def test_every_guest_is_captured_inside_one_paused_window(world: World, tmp_path: Path) -> None:
    """Each guest's captured counter lies between what it had written just before the guests were paused
    and just after it was resumed (:func:`take_between_reads`)."""
    guests = (world.system_vm, world.dev_vm)
    for attempt in range(2):
        snap_id, before, after = take_between_reads(world, f"instant-{attempt}", tmp_path / str(attempt))
        snap = world.svc.snapshots.get(snap_id, SYSTEM)
        assert snap.kind is SnapshotKind.SYSTEM and snap.private and snap.paused_window_ms is not None
        assert set(before) == set(after) == {vm.id for vm in guests}
        for vm in guests:
            counter = captured_counter(world, snap_id, vm, tmp_path)
            assert counter_is_intact(counter)
            assert before[vm.id] <= counter[-1] <= after[vm.id], (vm.name, before, counter[-1], after)
        assert all(world.svc.vms.get(vm.id, who=SYSTEM).state == VMState.RUNNING for vm in guests)
    assert glob.glob(os.path.join(world.svc.settings.run_dir, "*.json")) == []  # every hold released


def test_contents_show_the_tree_and_a_tenant_only_its_own_part(world: World) -> None:
    svc = world.svc
    svc.settings_docs.patch(SYSTEM, {"colour": "green"})
    svc.settings_docs.patch(SYSTEM, {"region": "eu"}, tenant="acme")
    svc.networks.create(SYSTEM, "acme-lan", "10.219.45.0/24", tenant="acme")
    snap_id = take(world, "contents", private=False)
    svc.settings_docs.patch(SYSTEM, {"colour": "red"})  # the contents say what was, not what is
    everything = read_contents(svc.snapshots, snap_id, SYSTEM)
    assert [t.path for t in everything.tenants] == ["acme", "acme/dev", "other"]
    documents = {s.id: s.config["document"] for s in everything.settings}
    assert documents["system"]["colour"] == "green" and documents[world.acme]["region"] == "eu"
    assert [(n.name, n.config["cidr"]) for n in everything.networks] == [("acme-lan", "10.219.45.0/24")]
    assert {v.name for v in everything.vms} == {"sys-guest", "dev-guest"}
    assert {v.name: v.config["running"] for v in everything.vms} == {"sys-guest": True, "dev-guest": True}
    assert {v.name for v in everything.volumes} == {"docs", "acme-docs"}
    assert everything.selection == "full"

    acme = read_contents(svc.snapshots, snap_id, world.admin_of(world.acme))  # exposed to acme: not private
    assert [t.path for t in acme.tenants] == ["acme", "acme/dev"]
    assert [v.name for v in acme.vms] == ["dev-guest"] and [v.name for v in acme.volumes] == ["acme-docs"]
    assert acme.vms[0].config["vm"]["kernel"] is None  # host paths for admins of the system only
    assert {s.id for s in acme.settings} == {world.acme, world.dev} and [n.name for n in acme.networks] == ["acme-lan"]

    private_one = take(world, "private-one")
    with pytest.raises(NotFound):  # private: not exposed to the tenants beneath
        read_contents(svc.snapshots, private_one, world.admin_of(world.other))
    acme_admin = world.admin_of(world.acme)
    own_volume = RestoreOptions(member_type=SubjectType.VOLUME, member="acme-docs")
    for hidden in (  # a private snapshot is not there for acme, whatever it asks of it
        lambda: read_contents(svc.snapshots, private_one, acme_admin),
        lambda: svc.files.browse(private_one, "", volume="acme-docs", who=acme_admin),
        lambda: svc.restores.over_source(private_one, own_volume, acme_admin),
        lambda: svc.restores.as_new(private_one, replace(own_volume, as_new=True), acme_admin),
    ):
        with pytest.raises(NotFound):
            hidden()
    svc.settings_docs.patch(SYSTEM, {"expose_snapshots": False}, tenant="other")
    with pytest.raises(NotFound):  # not exposed to it any more
        svc.snapshots.get(snap_id, world.admin_of(world.other))
    assert svc.snapshots.get(snap_id, world.admin_of(world.acme)).id == snap_id
    with pytest.raises(Forbidden):  # read, not changed
        svc.snapshots.delete(snap_id, who=world.admin_of(world.acme))
    with pytest.raises(Forbidden):
        svc.restores.over_source(snap_id, RestoreOptions(), world.admin_of(world.acme))
    with pytest.raises(NotFound):  # the system's VM is not in acme's part of it
        svc.restores.as_new(
            snap_id, RestoreOptions(as_new=True, member_type=SubjectType.VM, member="sys-guest"),
            world.admin_of(world.acme),
        )  # fmt: skip


def test_partial_snapshot_holds_only_what_its_tags_pick(world: World) -> None:
    svc = world.svc
    only = read_contents(svc.snapshots, take(world, "prod-only", selection=Selection(include=("prod",))), SYSTEM)
    assert {v.name for v in only.vms} == {"dev-guest"} and {v.name for v in only.volumes} == {"acme-docs"}
    assert only.selection == "partial: only objects tagged prod" and len(only.tenants) == 3
    but = read_contents(svc.snapshots, take(world, "not-prod", selection=Selection(exclude=("prod",))), SYSTEM)
    assert {v.name for v in but.vms} == {"sys-guest"} and {v.name for v in but.volumes} == {"docs"}
    with pytest.raises(InvalidInput):
        take(world, "vm-partial", ref=world.dev_vm.id, subject_type="vm", selection=Selection(include=("prod",)))


def test_tenant_snapshot_is_the_parents(world: World) -> None:
    svc = world.svc
    acme_admin, dev_admin = world.admin_of(world.acme), world.admin_of(world.dev)
    snap = svc.snapshots.get(take(world, "dev-subtree", ref="dev", who=acme_admin, subject_type="tenant"), SYSTEM)
    assert snap.kind is SnapshotKind.TENANT and snap.owner_tenant_id == world.acme and not snap.private
    assert snap.id not in {s.id for s in svc.snapshots.listing(who=dev_admin)}  # its parent's, not its own
    with pytest.raises(Forbidden):
        take(world, "self", ref=world.dev, who=dev_admin, subject_type="tenant")
    own = svc.snapshots.get(take(world, "dev-own", who=dev_admin), SYSTEM)  # a tenant's own system snapshot
    assert own.kind is SnapshotKind.SYSTEM and own.subject_id == world.dev and own.owner_tenant_id == world.dev

    gone = svc.tenants.create(acme_admin, "short-lived", parent=world.acme).tenant
    of_it = take(world, "of-it", ref=gone.id, who=acme_admin, subject_type="tenant")
    svc.tenants.delete(acme_admin, gone.id)
    with pytest.raises(NotFound):  # a tenant's snapshots go with it (its parent's system snapshots stay)
        svc.snapshots.get(of_it, SYSTEM)
    assert svc.snapshots.get(snap.id, SYSTEM).id == snap.id


def test_a_system_snapshot_keeps_its_description_expiry_and_lock(world: World) -> None:
    """As a volume or VM snapshot does: recorded in the catalog and in the manifest; immutable, it cannot be
    deleted (the refusal changes nothing); without an expiry it never expires."""
    svc = world.svc
    expires = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    request = TakeRequest(
        ref="system", subject_type="system", name="locked", description="before the upgrade", expires_at=expires,
        immutable=True,
    )  # fmt: skip
    snap = svc.snapshots.take(request, who=SYSTEM)
    assert snap.private and (snap.description, snap.expires_at, snap.immutable) == (request.description, expires, True)
    recorded = svc.snapshots.manifest(snap.id).snapshot
    assert (recorded.description, recorded.expires_at, recorded.immutable) == (request.description, expires, True)
    with pytest.raises(SnapshotLocked):
        svc.snapshots.delete(snap.id, who=SYSTEM)
    assert svc.snapshots.get(snap.id, SYSTEM) == snap
    assert svc.snapshots.get(take(world, "never"), SYSTEM).expires_at is None


def test_one_vm_imported_as_its_own_snapshot_then_restored(world: World, tmp_path: Path) -> None:
    svc = world.svc
    snap_id = take(world, "to-import", private=False)
    disk_file = world.dev_vm.config["disks"][0]["file"]
    system_copy = os.path.join(svc.pool.snapshot_data_path(snap_id, world.dev_vm.dataset), disk_file)
    imported = svc.imports.run(snap_id, SubjectType.VM, "dev-guest", who=world.admin_of(world.acme))
    assert imported.kind is SnapshotKind.VM and imported.subject_id == world.dev_vm.id
    assert imported.name == "to-import" and imported.created_at == svc.snapshots.get(snap_id, SYSTEM).created_at
    with pytest.raises(Exception, match="already has a snapshot named"):
        svc.imports.run(snap_id, SubjectType.VM, "dev-guest", who=SYSTEM)
    copy = svc.restores.as_new(imported.id, RestoreOptions(as_new=True), SYSTEM)  # like any VM snapshot
    disk = disk_path(svc.vms.get(str(copy["vm_id"]), who=SYSTEM))
    assert digest(disk) == digest(system_copy)  # byte for byte the system snapshot's copy
    svc.vms.delete(str(copy["vm_id"]), svc.snapshots, who=SYSTEM)


def test_files_of_one_volume_read_out_of_a_system_snapshot(world: World) -> None:
    svc = world.svc
    snap_id = take(world, "files", private=False)
    Path(world.acme_volume.path, "readme.txt").write_bytes(b"overwritten\n")
    acme_admin = world.admin_of(world.acme)
    names = [e.name for e in svc.files.browse(snap_id, "", volume="acme-docs", who=acme_admin)]
    assert "readme.txt" in names
    svc.files.extract(snap_id, "readme.txt", volume="acme-docs", who=acme_admin)
    assert Path(world.acme_volume.path, "readme.txt").read_bytes() == b"acme's\n"
    with pytest.raises(InvalidInput):  # many volumes: which one?
        svc.files.browse(snap_id, "", who=SYSTEM)
    with pytest.raises(NotFound):
        svc.files.browse(snap_id, "", volume="docs", who=acme_admin)


def test_one_volume_restored_over_itself_out_of_a_system_snapshot(world: World) -> None:
    """By acme, its own volume out of its parent's exposed snapshot: data only keeps the volume's settings as
    they are now, data and settings puts them back too; each after a pre-restore snapshot of the volume,
    through which the first is undone."""
    svc, volume = world.svc, world.acme_volume
    svc.volumes.update(volume.id, description="at snapshot time", settings={"tier": "gold"}, who=SYSTEM)
    Path(volume.path, "kept.txt").write_bytes(b"at snapshot time\n")
    snap_id = take(world, "volume-over", private=False)
    Path(volume.path, "kept.txt").write_bytes(b"changed later\n")
    Path(volume.path, "made-later.txt").write_bytes(b"made later\n")
    changed = {"description": "changed later", "size_limit": 96 << 20, "settings": {"tier": None, "added": 1}}
    svc.volumes.update(volume.id, **changed, who=SYSTEM)  # type: ignore[arg-type]

    def files() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in Path(volume.path).iterdir() if p.is_file()}

    def settings() -> tuple[str, int, dict[str, object]]:
        live = svc.volumes.get(volume.id, who=SYSTEM)
        return live.description, live.size_limit, live.settings

    acme_admin = world.admin_of(world.acme)
    data_only = RestoreOptions(member_type=SubjectType.VOLUME, member="acme-docs")
    first = svc.restores.over_source(snap_id, data_only, acme_admin)
    assert files() == {"readme.txt": b"acme's\n", "kept.txt": b"at snapshot time\n"}
    assert settings() == ("changed later", 96 << 20, {"added": 1})
    pre = svc.snapshots.get(str(first["pre_restore_snapshot_id"]), SYSTEM)
    assert pre.kind is SnapshotKind.VOLUME and pre.subject_id == volume.id and first["volume_id"] == volume.id

    both = replace(data_only, mode=RestoreMode.DATA_AND_SETTINGS, pre_restore=False)
    svc.restores.over_source(snap_id, both, acme_admin)
    assert settings() == ("at snapshot time", 64 << 20, {"tier": "gold"})
    assert files()["kept.txt"] == b"at snapshot time\n"

    svc.restores.over_source(pre.id, RestoreOptions(mode=RestoreMode.DATA_AND_SETTINGS), acme_admin)  # undo
    assert files()["kept.txt"] == b"changed later\n" and files()["made-later.txt"] == b"made later\n"
    assert settings() == ("changed later", 96 << 20, {"added": 1})


def test_a_vm_as_new_without_room_is_refused_and_makes_nothing(world: World) -> None:
    """Its disks' clone is estimated first: with less room than that beside the minimum kept free, refused
    before anything is made (the pool really full, filled beside it)."""
    svc = world.svc
    snap_id = take(world, "no-room")
    options = RestoreOptions(as_new=True, member_type=SubjectType.VM, member=world.system_vm.name)
    before = sorted(vm.name for vm in svc.vms.listing(who=SYSTEM)), svc.pool.list_datasets()
    with filled(svc.pool, (svc.settings.restore_min_free_mib << 20) + CLONE_ALLOWANCE // 2):
        with pytest.raises(PoolFull, match="1 dataset clone"):
            svc.restores.submit(snap_id, options, SYSTEM)
        with pytest.raises(PoolFull, match="1 dataset clone"):  # the job's own check
            svc.restores.as_new(snap_id, options, SYSTEM)
    assert (sorted(vm.name for vm in svc.vms.listing(who=SYSTEM)), svc.pool.list_datasets()) == before


def test_a_guest_that_stops_right_after_the_window_is_recorded_as_running(world: World) -> None:
    """What ran at the capture is recorded as running (a whole restore starts it again), whatever libvirt
    says once the guests are resumed."""
    faults: PauseFails = world.svc.host  # type: ignore[assignment]
    faults.stops_at_resume = world.dev_vm.domain
    try:
        snap_id = take(world, "stops-after")
    finally:
        faults.reset()
    recorded = {o.id: o.config["running"] for o in world.svc.snapshots.manifest(snap_id).objects if o.type == "vm"}
    assert (recorded[world.system_vm.id], recorded[world.dev_vm.id]) == (True, True)


def test_a_guest_that_cannot_be_paused_leaves_every_guest_running_and_nothing_recorded(world: World) -> None:
    svc = world.svc
    faults: PauseFails = svc.host  # type: ignore[assignment]
    faults.domain = max(vm.domain for vm in (world.system_vm, world.dev_vm))  # paused last: the first is resumed
    before = {s.id for s in svc.snapshots.listing(who=SYSTEM)}
    try:
        with pytest.raises(HypervisorError):
            take(world, "pause-fails")
    finally:
        faults.reset()
    assert {s.id for s in svc.snapshots.listing(who=SYSTEM)} == before
    assert all(svc.vms.get(vm.id, who=SYSTEM).state == VMState.RUNNING for vm in (world.system_vm, world.dev_vm))
    assert glob.glob(os.path.join(svc.settings.run_dir, "*.json")) == []
    assert svc.guards.held() == []


def test_a_vm_started_after_its_disks_were_captured_at_rest_fails_the_take(world: World, image: GuestImage) -> None:
    """Its disks would be from before it started, everything else from the window: the take records nothing
    and leaves every guest running."""
    svc = world.svc
    late = make_vm(svc, image, "late-guest", None, [])
    faults: PauseFails = svc.host  # type: ignore[assignment]
    faults.starts_at_pause = late.domain
    before = {s.id for s in svc.snapshots.listing(who=SYSTEM)}
    try:
        with pytest.raises(VMStateConflict, match="'late-guest' started while the snapshot was being taken"):
            take(world, "started-meanwhile")
        assert {s.id for s in svc.snapshots.listing(who=SYSTEM)} == before
        running = (world.system_vm, world.dev_vm, late)
        assert all(svc.vms.get(vm.id, who=SYSTEM).state == VMState.RUNNING for vm in running)
        assert glob.glob(os.path.join(svc.settings.run_dir, "*.json")) == []
        assert svc.guards.held() == []
    finally:
        faults.reset()
        svc.vms.stop(late.id, force=True, who=SYSTEM)
        svc.vms.delete(late.id, svc.snapshots, True, who=SYSTEM)


def test_a_deleted_vm_comes_back_as_new_and_boots_with_its_data(world: World, tmp_path: Path) -> None:
    """Last in the module: it deletes acme/dev's running guest."""
    svc = world.svc
    doomed = world.dev_vm
    snap_id = take(world, "before-delete", private=False)  # acme restores its own VM out of it
    captured = captured_counter(world, snap_id, doomed, tmp_path)
    svc.vms.delete(doomed.id, svc.snapshots, True, who=SYSTEM)

    options = RestoreOptions(as_new=True, member_type=SubjectType.VM, member=doomed.name)
    restored = svc.restores.as_new(snap_id, options, world.admin_of(world.acme))
    copy = svc.vms.get(str(restored["vm_id"]), who=SYSTEM)
    assert copy.name == f"{doomed.name} (1)" and copy.owner_tenant_id == world.dev
    assert copy.config["nics"] == [] or copy.config["nics"][0]["mac"] != doomed.config["nics"][0]["mac"]
    assert fsck(journal_replayed_copy(disk_path(copy), tmp_path)).clean
    boot(svc, copy)
    time.sleep(0.5)
    svc.vms.stop(copy.id, force=True, who=SYSTEM)
    after = read_counter(journal_replayed_copy(disk_path(copy), tmp_path))
    assert after[: len(captured)] == captured and len(after) > len(captured)  # its data, then new writes
    again = svc.restores.as_new(snap_id, options, SYSTEM)
    assert again["vm"] == f"{doomed.name} (2)"
    for vm_id in (copy.id, str(again["vm_id"])):
        svc.vms.delete(vm_id, svc.snapshots, True, who=SYSTEM)
