"""The rules live in the services (issue 7, "operations out of the API"): called in-process, without the API
in front, a service refuses a caller whose role is too low (``Forbidden``) and hides what lies outside the
caller's scope (``NotFound``, as for a missing object), and a refusal changes nothing."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from snapkeep.api.schemas import SnapshotPublic
from snapkeep.errors import Busy, Forbidden, InvalidName, NameClash, NotFound
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.types import QuiescePolicy, Tenant, VmRecord
from snapkeep.services.container import Services
from snapkeep.services.guards import exclusive
from snapkeep.services.snapshots import TakeRequest

VIEWER = Principal("viewer", Role.VIEWER, None)
OPERATOR = Principal("operator", Role.OPERATOR, None)
TENANT_ADMIN = Principal("tenant-admin", Role.ADMIN, "t-a")


@dataclass(frozen=True)
class World:
    """Everything here belongs to the system; tenant ``t-a`` exists and owns nothing."""

    volume: str
    snapshot: str
    vm: str
    job: str


@pytest.fixture
def world(services: Services) -> World:
    volume = services.volumes.create("system-data", 64 << 20, who=SYSTEM)
    with open(os.path.join(volume.path, "file.txt"), "w") as f:
        f.write("kept")
    snap = services.snapshots.take(TakeRequest(ref=volume.id, name="s"), who=SYSTEM)
    job = services.jobs.wait(services.snapshots.submit_space(snap.id, who=SYSTEM).id, 30, SYSTEM)
    with services.db.unit() as uow:  # no tenant service yet: the row goes in through the catalog's unit
        uow.tenants.insert(Tenant(id="t-a", name="a", parent_id=None, description="", created_at=services.clock()))
        vm = uow.vms.insert(  # a catalog row is enough: every call below is refused before libvirt is asked
            VmRecord(
                id="vm-system",
                name="system-vm",
                description="",
                owner_tenant_id=None,
                dataset="vm-vm-system",
                domain_uuid="00000000-0000-0000-0000-000000000001",
                domain_name="sk-vm-rules",
                spec={"vcpus": 1},
                quiesce_policy=QuiescePolicy.FALLBACK,
                agent_timeout=10.0,
                created_at=services.clock(),
            )
        )
    return World(volume=volume.id, snapshot=snap.id, vm=vm.id, job=job.id)


Call = Callable[[Services, World, Principal], Any]

CHANGES: dict[str, Call] = {
    "volume create": lambda s, w, who: s.volumes.create("new", 64 << 20, who=who),
    "volume update": lambda s, w, who: s.volumes.update(w.volume, description="changed", who=who),
    "volume delete": lambda s, w, who: s.volumes.delete(w.volume, s.snapshots, who=who),
    "volume submit_delete": lambda s, w, who: s.volumes.submit_delete(w.volume, s.snapshots, who=who),
    "snapshot take": lambda s, w, who: s.snapshots.take(TakeRequest(ref=w.volume, name="t"), who=who),
    "snapshot submit_take": lambda s, w, who: s.snapshots.submit_take(TakeRequest(ref=w.volume, name="t"), who=who),
    "snapshot pre-restore": lambda s, w, who: s.snapshots.take_pre_restore("volume", w.volume, timedelta(days=1), who),
    "snapshot delete": lambda s, w, who: s.snapshots.delete(w.snapshot, who=who),
    "snapshot submit_delete": lambda s, w, who: s.snapshots.submit_delete(w.snapshot, who=who),
    "snapshot unlock": lambda s, w, who: s.snapshots.unlock(w.snapshot, who=who),
    "snapshot measure_space": lambda s, w, who: s.snapshots.measure_space(w.snapshot, who=who),
    "snapshot submit_space": lambda s, w, who: s.snapshots.submit_space(w.snapshot, who=who),
    "snapshot sweep": lambda s, w, who: s.snapshots.sweep_expired(who),
    "snapshot submit_sweep": lambda s, w, who: s.snapshots.submit_sweep(who),
    "files extract": lambda s, w, who: s.files.extract(w.snapshot, "file.txt", to_path="copy.txt", who=who),
    "files submit_extract": lambda s, w, who: s.files.submit_extract(
        w.snapshot, "file.txt", to_path="copy.txt", params={}, who=who
    ),
    "vm create": lambda s, w, who: s.vms.create("new-vm", vcpus=1, memory_mib=64, disk_sizes=[1 << 20], who=who),
    "vm start": lambda s, w, who: s.vms.start(w.vm, who=who),
    "vm submit_start": lambda s, w, who: s.vms.submit_start(w.vm, who=who),
    "vm stop": lambda s, w, who: s.vms.stop(w.vm, who=who),
    "vm submit_stop": lambda s, w, who: s.vms.submit_stop(w.vm, who=who),
    "vm delete": lambda s, w, who: s.vms.delete(w.vm, s.snapshots, who=who),
    "vm submit_delete": lambda s, w, who: s.vms.submit_delete(w.vm, s.snapshots, who=who),
    "vm clone": lambda s, w, who: s.clones.clone(w.vm, "copy", who=who),
    "vm submit_clone": lambda s, w, who: s.clones.submit_clone(w.vm, "copy", who=who),
}
ADMIN_ONLY = {"snapshot unlock", "snapshot sweep", "snapshot submit_sweep"}

READS: dict[str, Call] = {
    "volume get": lambda s, w, who: s.volumes.get(w.volume, who),
    "snapshot get": lambda s, w, who: s.snapshots.get(w.snapshot, who),
    "snapshot listing of a volume": lambda s, w, who: s.snapshots.listing(w.volume, who=who),
    "snapshot find": lambda s, w, who: s.snapshots.find(w.volume, "s", who=who),
    "files browse": lambda s, w, who: s.files.browse(w.snapshot, who=who),
    "vm get": lambda s, w, who: s.vms.get(w.vm, who=who),
    "job get": lambda s, w, who: s.jobs.get(w.job, who),
    "job wait": lambda s, w, who: s.jobs.wait(w.job, 0.1, who),
}
# an admin of the tenant passes every role check: what refuses it is the scope alone
HIDDEN = {name: call for name, call in CHANGES.items() if name not in {"volume create", "vm create"}} | READS
HIDDEN.pop("snapshot sweep")  # an admin's sweep of its own scope: allowed, and finds nothing (tested below)
HIDDEN.pop("snapshot submit_sweep")


def state(services: Services) -> tuple[Any, ...]:
    """What a refused call must leave as it was: catalog rows, the pool's datasets and snapshots, changes
    audited, guards held."""
    with services.db.unit() as uow:
        rows = (uow.volumes.list(), uow.vms.list(), uow.snapshots.list(), uow.jobs.list(), uow.tenants.children(None))
        done = [e for e in uow.audit.list(1000) if e.outcome == "done"]
    return rows, done, services.pool.list_datasets(), services.guards.held()


@pytest.mark.parametrize("operation", sorted(CHANGES))
def test_a_viewer_is_refused_every_change_and_nothing_changes(services: Services, world: World, operation: str) -> None:
    before = state(services)
    with pytest.raises(Forbidden):
        CHANGES[operation](services, world, VIEWER)
    assert state(services) == before


@pytest.mark.parametrize("operation", sorted(ADMIN_ONLY))
def test_an_operator_is_refused_what_only_an_admin_may_do(services: Services, world: World, operation: str) -> None:
    before = state(services)
    with pytest.raises(Forbidden):
        CHANGES[operation](services, world, OPERATOR)
    assert state(services) == before


def test_only_an_admin_may_boot_a_host_kernel(services: Services, world: World) -> None:
    before = state(services)
    with pytest.raises(Forbidden):
        services.vms.create("kernel-vm", vcpus=1, memory_mib=64, disk_sizes=[1 << 20], kernel="/boot/x", who=OPERATOR)
    assert state(services) == before


@pytest.mark.parametrize("operation", sorted(HIDDEN))
def test_a_tenant_gets_not_found_for_the_systems_objects_by_id(
    services: Services, world: World, operation: str
) -> None:
    before = state(services)
    with pytest.raises(NotFound):
        HIDDEN[operation](services, world, TENANT_ADMIN)
    assert state(services) == before


def test_a_tenant_lists_none_of_the_systems_objects_and_sweeps_only_its_own(
    services: Services, world: World, clock: Any
) -> None:
    assert services.volumes.list(who=TENANT_ADMIN) == []
    assert services.vms.listing(who=TENANT_ADMIN) == []
    assert services.snapshots.listing(who=TENANT_ADMIN) == []
    assert services.jobs.list(TENANT_ADMIN) == []
    expiring = services.snapshots.take(
        TakeRequest(ref=world.volume, name="soon", expires_at=clock() + timedelta(hours=1)), who=SYSTEM
    )
    clock.advance(timedelta(hours=2))
    assert services.snapshots.sweep_expired(TENANT_ADMIN) == []
    assert services.snapshots.sweep_expired(SYSTEM) == [expiring.id]


def test_a_tenant_reads_nothing_of_the_systems_audit_log(services: Services, world: World) -> None:
    assert any(e.action == "volume.create" for e in services.audit.entries(VIEWER))
    assert services.audit.entries(TENANT_ADMIN) == []  # everything here is the system's


def test_jobs_belong_to_the_owner_of_what_they_work_on(services: Services, world: World) -> None:
    job = services.jobs.get(world.job, SYSTEM)
    assert job.kind == "snapshot.space" and job.owner_tenant_id is None
    assert [j.id for j in services.jobs.list(VIEWER)] == [world.job]


def test_a_take_jobs_result_is_the_snapshot_as_the_api_shows_it(services: Services, world: World) -> None:
    """The take job's result is rendered by the service now, not by the route: it must not drift."""
    locked = services.snapshots.take(TakeRequest(ref=world.volume, name="locked", immutable=True), who=SYSTEM)
    for snap in (locked, services.snapshots.get(world.snapshot, who=SYSTEM)):
        shown = SnapshotPublic.of(snap, "system", services.snapshots.deletable_at(snap)).model_dump(mode="json")
        assert services.snapshots.as_json(snap, None) == shown


def test_a_bad_or_taken_name_is_said_even_while_the_subject_is_busy(services: Services, world: World) -> None:
    """Refusals of the input come first: two takes sent at once with bad names each hear why, not that the
    other one holds the subject; only a good name waits for the guard."""
    volume = services.volumes.get(world.volume, SYSTEM)
    held, done = threading.Event(), threading.Event()

    def other_operation() -> None:  # another thread: a claim is re-entrant within its own thread
        with services.snapshots.guards.claim("test", [exclusive("volume", volume.id, volume.name)]):
            held.set()
            done.wait(timeout=60)

    holder = threading.Thread(target=other_operation)
    holder.start()
    try:
        assert held.wait(timeout=60)
        for name, refusal in (("a/b", InvalidName), ("s", NameClash), ("new", Busy)):
            with pytest.raises(refusal):
                services.snapshots.submit_take(TakeRequest(ref=volume.id, name=name), who=SYSTEM)
    finally:
        done.set()
        holder.join()
    assert {"a/b", "new"}.isdisjoint(s.name for s in services.snapshots.listing(volume.id, who=SYSTEM))
