"""The catalog's units of work on a real SQLite catalog: frozen dataclasses in and out, commit or roll back
as a whole, and a tenant's scope applied inside every store (an object outside it is the same
:class:`NotFound` as a missing one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.catalog.stores import Unit
from snapkeep.errors import Conflict, NotFound
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import (
    Job,
    JobStatus,
    QuiescePolicy,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
    Tenant,
    VmRecord,
    VolumeRecord,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
OWNERS = {"system": None, "a": "t-a", "b": "t-b", "a1": "t-a1"}  # a and b under the system; a1 under a


@dataclass(frozen=True)
class Catalog:
    db: Database

    def unit(self, tenant: str | None = None, role: Role = Role.OPERATOR) -> AbstractContextManager[Unit]:
        """A unit seen by an operator of ``tenant`` (a key of OWNERS), or by the system."""
        scope = None if tenant is None else Principal(f"op-{tenant}", role, OWNERS[tenant])
        return self.db.unit(scope)


def volume(owner: str, name: str) -> VolumeRecord:
    return VolumeRecord(
        id=f"vol-{owner}-{name}",
        name=name,
        description="",
        size_limit=1 << 30,
        owner_tenant_id=OWNERS[owner],
        dataset=f"volume-{owner}-{name}",
        settings={"k": owner},
        created_at=T0,
    )


def vm(owner: str) -> VmRecord:
    return VmRecord(
        id=f"vm-{owner}",
        name=f"vm-{owner}",
        description="",
        owner_tenant_id=OWNERS[owner],
        dataset=f"vm-{owner}",
        domain_uuid=f"uuid-{owner}",
        domain_name=f"sk-vm-{owner}",
        spec={"vcpus": 1},
        quiesce_policy=QuiescePolicy.FALLBACK,
        agent_timeout=10.0,
        created_at=T0,
    )


def snapshot(owner: str) -> Snapshot:
    return Snapshot(
        id=f"snap-{owner}",
        kind=SnapshotKind.VOLUME,
        subject_type="volume",
        subject_id=f"vol-{owner}-data",
        subject_name="data",
        owner_tenant_id=OWNERS[owner],
        name="s1",
        description="",
        created_at=T0,
        expires_at=None,
        origin="manual",
        quiesce_requested=False,
        quiesced=False,
        quiesce_note=None,
        quiesce_window_ms=None,
        paused_window_ms=None,
        immutable=False,
        unlocked_at=None,
        private=False,
        status=SnapshotStatus.READY,
        status_reason=None,
        exclusive_bytes=None,
        shared_bytes=None,
    )


def job(owner: str) -> Job:
    return Job(
        id=f"job-{owner}",
        kind="snapshot.take",
        status=JobStatus.QUEUED,
        progress=0.0,
        message="queued",
        params={},
        result=None,
        error=None,
        created_at=T0,
        finished_at=None,
        owner_tenant_id=OWNERS[owner],
    )


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    """Tenants a and b under the system, a1 under a; each owner (and the system) has a volume named
    ``data`` and one named after it, a VM, a snapshot of its ``data`` and a job."""
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    db = Database(engine)
    with db.unit() as uow:
        for tenant_id, parent in (("t-a", None), ("t-b", None), ("t-a1", "t-a")):
            uow.tenants.insert(Tenant(id=tenant_id, name=tenant_id, parent_id=parent, description="", created_at=T0))
        for owner in OWNERS:
            uow.volumes.insert(volume(owner, "data"))
            uow.volumes.insert(volume(owner, f"only-{owner}"))
            uow.vms.insert(vm(owner))
            uow.snapshots.insert(snapshot(owner))
            uow.jobs.insert(job(owner))
            uow.audit.append(T0, "someone", "volume.update", f"volume:only-{owner}", "done", "", OWNERS[owner])
    yield Catalog(db)
    engine.dispose()


def test_stores_return_what_was_inserted_as_frozen_dataclasses(catalog: Catalog) -> None:
    with catalog.unit() as uow:
        assert uow.volumes.get("vol-a-data") == volume("a", "data")
        assert uow.vms.get("vm-b") == vm("b")
        assert uow.snapshots.get("snap-a1") == snapshot("a1")
        assert uow.jobs.get("job-system") == job("system")
        assert uow.tenants.get("t-a1").parent_id == "t-a"


def test_a_unit_commits_on_success_and_rolls_back_as_a_whole_on_error(catalog: Catalog) -> None:
    with pytest.raises(RuntimeError), catalog.unit() as uow:
        uow.volumes.update("vol-a-data", description="changed")
        uow.audit.append(T0, "me", "volume.update", "volume:data", "done", "", "t-a")
        raise RuntimeError("after both writes")
    with catalog.unit() as uow:
        assert uow.volumes.get("vol-a-data").description == ""
        assert "me" not in {e.actor for e in uow.audit.list()}
    with pytest.raises(Conflict), catalog.unit() as uow:  # the driver's refusal, translated
        uow.volumes.update("vol-a-data", name="only-a")  # names are unique per owner
    with catalog.unit() as uow:
        uow.volumes.update("vol-a-data", description="changed")
    with catalog.unit() as uow:
        assert uow.volumes.get("vol-a-data").description == "changed"


def test_update_names_existing_fields_only(catalog: Catalog) -> None:
    with pytest.raises(TypeError, match="no field"), catalog.unit() as uow:
        uow.volumes.update("vol-a-data", colour="red")


def test_the_system_sees_everything(catalog: Catalog) -> None:
    with catalog.unit() as uow:
        assert len(uow.volumes.list()) == 2 * len(OWNERS)
        assert {v.id for v in uow.vms.list()} == {f"vm-{o}" for o in OWNERS}
        assert {s.id for s in uow.snapshots.list()} == {f"snap-{o}" for o in OWNERS}
        assert {j.id for j in uow.jobs.list()} == {f"job-{o}" for o in OWNERS}
        assert uow.volumes.resolve("data").id == "vol-system-data", "names resolve within the system"
        assert uow.volumes.resolve("vol-b-data").owner_tenant_id == "t-b"
        assert {t.id for t in uow.tenants.children(None)} == {"t-a", "t-b"}


def test_a_tenant_lists_its_own_and_its_childrens_objects_only(catalog: Catalog) -> None:
    with catalog.unit("a") as uow:
        assert {v.id for v in uow.volumes.list()} == {
            "vol-a-data",
            "vol-a-only-a",
            "vol-a1-data",
            "vol-a1-only-a1",
        }
        assert {v.id for v in uow.vms.list()} == {"vm-a", "vm-a1"}
        assert {s.id for s in uow.snapshots.list()} == {"snap-a", "snap-a1"}
        assert {s.id for s in uow.snapshots.in_status(SnapshotStatus.READY)} == {"snap-a", "snap-a1"}
        assert {j.id for j in uow.jobs.list()} == {"job-a", "job-a1"}
        assert {e.target for e in uow.audit.list()} == {"volume:only-a", "volume:only-a1"}
        assert {t.id for t in uow.tenants.children(None)} == {"t-a"}
        assert uow.tenants.subtree_ids("t-a") == {"t-a", "t-a1"}
    with catalog.unit("a1") as uow:
        assert {v.id for v in uow.volumes.list()} == {"vol-a1-data", "vol-a1-only-a1"}


# (tenant asking, owner of the object it must not see): a sibling, the parent, the system
HIDDEN = [("a", "b"), ("a", "system"), ("a1", "a"), ("a1", "b"), ("b", "a1")]


def same_as_missing(call: Callable[[], object], missing: Callable[[], object]) -> None:
    """``call`` fails exactly as ``missing`` (the same lookup of an id nobody has) does, in all the caller
    sees; only the mark that makes the API audit it as a refusal differs (the object exists elsewhere)."""
    with pytest.raises(NotFound) as hidden:
        call()
    with pytest.raises(NotFound) as absent:
        missing()
    assert type(hidden.value) is type(absent.value)
    assert hidden.value.code == absent.value.code and hidden.value.http_status == absent.value.http_status
    assert set(hidden.value.details) == set(absent.value.details)
    assert hidden.value.to_body().keys() == absent.value.to_body().keys()
    assert (hidden.value.outside_scope, absent.value.outside_scope) == (True, False)


@pytest.mark.parametrize(("tenant", "owner"), HIDDEN)
def test_a_tenant_cannot_read_what_is_outside_its_subtree(catalog: Catalog, tenant: str, owner: str) -> None:
    with catalog.unit(tenant) as uow:
        same_as_missing(lambda: uow.volumes.get(f"vol-{owner}-data"), lambda: uow.volumes.get("nobody"))
        same_as_missing(lambda: uow.volumes.resolve(f"vol-{owner}-data"), lambda: uow.volumes.resolve("nobody"))
        same_as_missing(lambda: uow.volumes.resolve(f"only-{owner}"), lambda: uow.volumes.resolve("nobody"))
        assert uow.volumes.find(f"only-{owner}", OWNERS[owner]) is None
        same_as_missing(lambda: uow.vms.get(f"vm-{owner}"), lambda: uow.vms.get("nobody"))
        same_as_missing(lambda: uow.vms.resolve(f"vm-{owner}"), lambda: uow.vms.resolve("nobody"))
        same_as_missing(lambda: uow.snapshots.get(f"snap-{owner}"), lambda: uow.snapshots.get("nobody"))
        assert uow.snapshots.find("volume", f"vol-{owner}-data", "s1") is None
        assert uow.snapshots.list("volume", f"vol-{owner}-data") == []
        same_as_missing(lambda: uow.jobs.get(f"job-{owner}"), lambda: uow.jobs.get("nobody"))
        if OWNERS[owner] is not None:
            same_as_missing(lambda: uow.tenants.get(OWNERS[owner]), lambda: uow.tenants.get("nobody"))


@pytest.mark.parametrize(("tenant", "owner"), HIDDEN)
def test_a_tenant_cannot_write_what_is_outside_its_subtree(catalog: Catalog, tenant: str, owner: str) -> None:
    writes: list[Callable[[Unit], object]] = [
        lambda uow: uow.volumes.update(f"vol-{owner}-data", description="taken over"),
        lambda uow: uow.volumes.delete(f"vol-{owner}-data"),
        lambda uow: uow.vms.update(f"vm-{owner}", description="taken over"),
        lambda uow: uow.vms.delete(f"vm-{owner}"),
        lambda uow: uow.snapshots.update(f"snap-{owner}", status=SnapshotStatus.DELETING),
        lambda uow: uow.snapshots.delete(f"snap-{owner}"),
        lambda uow: uow.jobs.update(f"job-{owner}", status=JobStatus.FAILED),
        lambda uow: uow.volumes.insert(volume(owner, "planted")),
        lambda uow: uow.volumes.update(f"vol-{tenant}-data", owner_tenant_id=OWNERS[owner]),
        lambda uow: uow.tenants.insert(Tenant("t-new", "new", OWNERS[owner], "", T0)),
    ]
    with catalog.unit() as uow:
        before = (uow.volumes.list(), uow.vms.list(), uow.snapshots.list(), uow.jobs.list())
    for write in writes:
        with pytest.raises(NotFound), catalog.unit(tenant) as uow:
            write(uow)
    with catalog.unit() as uow:
        assert (uow.volumes.list(), uow.vms.list(), uow.snapshots.list(), uow.jobs.list()) == before


def test_a_tenant_reaches_its_childs_objects_by_id_and_its_own_by_name(catalog: Catalog) -> None:
    with catalog.unit("a") as uow:
        assert uow.volumes.get("vol-a1-data").owner_tenant_id == "t-a1"
        assert uow.volumes.resolve("vol-a1-data").owner_tenant_id == "t-a1"
        assert uow.vms.resolve("vm-a1").id == "vm-a1"
        assert uow.snapshots.get("snap-a1").owner_tenant_id == "t-a1"
        assert uow.volumes.resolve("data").id == "vol-a-data", "a name resolves within the caller's own tenant"
        assert uow.volumes.find("data", "t-a1") == volume("a1", "data")
        uow.volumes.update("vol-a1-data", description="by the parent")
        uow.snapshots.update("snap-a1", status=SnapshotStatus.DELETING)
    with catalog.unit() as uow:
        assert uow.volumes.get("vol-a1-data").description == "by the parent"
        assert uow.snapshots.get("snap-a1").status is SnapshotStatus.DELETING


def test_a_viewer_and_an_admin_of_a_tenant_have_the_same_scope(catalog: Catalog) -> None:
    """The scope is the tenant's; what a role may do is decided above the catalog."""
    for role in Role:
        with catalog.unit("b", role) as uow:
            assert {v.owner_tenant_id for v in uow.volumes.list()} == {"t-b"}


def test_an_update_writes_only_the_fields_it_names(catalog: Catalog) -> None:
    """Two units changing different fields of one row at once both land (no stale copy is written back)."""
    with catalog.unit() as first:
        seen = first.snapshots.get("snap-a")
        with catalog.unit() as second:
            second.snapshots.update("snap-a", exclusive_bytes=5, shared_bytes=7)
        first.snapshots.update(seen.id, unlocked_at=T0)
    with catalog.unit() as uow:
        snap = uow.snapshots.get("snap-a")
    assert (snap.exclusive_bytes, snap.shared_bytes, snap.unlocked_at) == (5, 7, T0)
