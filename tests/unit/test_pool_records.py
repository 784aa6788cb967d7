"""The catalog a rebuild infers from the pool's manifests and datasets (services/pool_records.py), and the
rebuild writing it into an empty catalog only (services/catalog_rebuild.py, over a stand-in pool here; the
real pools are in tests/integration/test_catalog_rebuild.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, NoReturn

import pytest

from snapkeep.catalog.db import Database
from snapkeep.errors import CatalogInUse, CatalogLost, HypervisorUnavailable, InvalidInput, PoolError
from snapkeep.model.manifest import MANIFEST_VERSION, Manifest, ManifestObject, ManifestSnapshot
from snapkeep.model.principal import Role
from snapkeep.model.types import SnapshotStatus, Tenant, VmRecord
from snapkeep.model.user import User
from snapkeep.services.audit import Audit
from snapkeep.services.catalog_rebuild import BOUND_TO, CatalogRebuild, check_not_lost
from snapkeep.services.pool_records import plan_catalog
from snapkeep.services.profiles import Profiles

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=30)


def at(day: int) -> datetime:
    return T0 + timedelta(days=day)


def volume(vid: str, name: str, owner: str | None = None, limit: int = 1 << 30, **config: Any) -> ManifestObject:
    settings = {"description": "", "size_limit": limit, "settings": {}, **config}
    return ManifestObject(
        type="volume", id=vid, name=name, owner_tenant_id=owner, config=settings, datasets=[f"volume-{vid}"]
    )


def vm(vid: str, name: str, owner: str | None = None, network_id: str | None = None) -> ManifestObject:
    nics = [{"network": "user", "network_id": network_id, "mac": "52:54:00:00:00:01"}] if network_id else []
    config = {
        "description": "a vm",
        "domain_uuid": f"uuid-{vid}",
        "vm": {"vcpus": 1, "memory_mib": 256, "disks": [], "nics": nics},
        "quiesce_policy": "fallback",
        "agent_timeout": 10.0,
    }
    return ManifestObject(type="vm", id=vid, name=name, owner_tenant_id=owner, config=config, datasets=[f"vm-{vid}"])


def tenant(tid: str, name: str, parent: str | None = None, tags: list[str] | None = None) -> ManifestObject:
    config = {"description": f"{name}'s", "tags": tags or []}
    return ManifestObject(type="tenant", id=tid, name=name, owner_tenant_id=parent, config=config, datasets=[])


def network(nid: str, name: str, owner: str | None, cidr: str) -> ManifestObject:
    config = {"description": "", "cidr": cidr, "dhcp": True}
    return ManifestObject(type="network", id=nid, name=name, owner_tenant_id=owner, config=config, datasets=[])


def settings(owner: str | None, document: dict[str, Any]) -> ManifestObject:
    return ManifestObject(
        type="settings",
        id=owner or "system",
        name="settings",
        owner_tenant_id=owner,
        config={"document": document},
        datasets=[],
    )


def system_object(root: str | None = None, name: str = "system") -> ManifestObject:
    return ManifestObject(
        type="system",
        id=root or "system",
        name=name,
        owner_tenant_id=root,
        config={"root": root, "selection": {}},
        datasets=[],
    )


def manifest(snap_id: str, day: int, subject: ManifestObject, *members: ManifestObject, **snap: Any) -> Manifest:
    kind = {"system": "system", "tenant": "tenant", "vm": "vm", "volume": "volume"}[subject.type]
    return Manifest(
        format_version=MANIFEST_VERSION,
        snapshot=ManifestSnapshot(
            id=snap_id,
            kind=snap.pop("kind", kind),
            name=snap.pop("name", snap_id),
            description=snap.pop("description", ""),
            subject_type=subject.type,
            subject_id=subject.id,
            created_at=at(day),
            expires_at=snap.pop("expires_at", None),
            origin=snap.pop("origin", "manual"),
            quiesced=False,
            quiesce_note=None,
            immutable=snap.pop("immutable", False),
            private=snap.pop("private", False),
        ),
        objects=[subject, *members],
    )


def by_id(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {m.snapshot.id: m for m in manifests}


def test_objects_are_those_whose_data_is_in_the_pool_as_last_recorded_made_when_first_recorded() -> None:
    manifests = [
        manifest("s1", 1, volume("v1", "docs", limit=1 << 30, description="first")),
        manifest("s2", 5, volume("v1", "reports", limit=2 << 30, description="later")),
        manifest("s3", 2, vm("m1", "web")),
        manifest("s4", 3, volume("v2", "deleted-since")),  # its dataset is gone
    ]
    plan = plan_catalog(by_id(manifests), ["volume-v1", "vm-m1", "volume-v9"], NOW)

    [docs] = plan.volumes
    assert (docs.name, docs.size_limit, docs.description, docs.created_at) == ("reports", 2 << 30, "later", at(1))
    [web] = plan.vms
    assert (web.name, web.domain_uuid, web.domain_name, web.created_at) == ("web", "uuid-m1", "sk-vm-m1", at(2))
    assert plan.unknown_datasets == ["volume-v9"]  # never captured: left in the pool, reported
    assert plan.orphan_snapshots == ["s4"]  # of a volume that is gone
    assert {s.id for s in plan.snapshots} == {"s1", "s2", "s3"}


def test_tenants_of_the_newest_system_snapshot_and_every_owner_parents_first() -> None:
    manifests = [
        manifest("old", 1, system_object(), tenant("a", "acme"), tenant("gone", "gone")),
        manifest(
            "new",
            4,
            system_object(),
            tenant("a", "acme-renamed", tags=["prod"]),
            tenant("d", "dev", parent="a"),
            settings(None, {"colour": "blue"}),
            settings("a", {"retention": 7}),
        ),
        manifest("s1", 5, volume("v1", "files", owner="d")),
        manifest("s2", 6, volume("v2", "stray", owner="x")),  # its tenant was never recorded
    ]
    plan = plan_catalog(by_id(manifests), ["volume-v1", "volume-v2"], NOW)

    assert [(t.id, t.name, t.parent_id) for t in plan.tenants] == [
        ("a", "acme-renamed", None),
        ("x", "recovered-x", None),
        ("d", "dev", "a"),
    ]
    assert plan.placeholders == ["recovered-x"]
    assert plan.settings == {None: {"colour": "blue"}, "a": {"retention": 7}}
    assert ("tenant", "a", "prod") in plan.tags
    assert "gone" not in {t.id for t in plan.tenants}  # only the older system snapshot recorded it
    assert {s.id for s in plan.snapshots} == {"old", "new", "s1", "s2"}  # the system's are always kept


def test_snapshots_as_recorded_expired_ones_held_owned_as_their_subject() -> None:
    expired, later = NOW - timedelta(hours=1), NOW + timedelta(days=3)
    manifests = [
        manifest("a-own", 1, system_object("a", "acme"), tenant("a", "acme"), private=True, expires_at=later),
        manifest("a-by-parent", 2, tenant("a", "acme"), immutable=True),
        manifest("vol", 3, volume("v1", "files", owner="a"), expires_at=expired, name="nightly"),
    ]
    plan = plan_catalog(by_id(manifests), ["volume-v1"], NOW)
    snaps = {s.id: s for s in plan.snapshots}

    assert (snaps["a-own"].owner_tenant_id, snaps["a-own"].private, snaps["a-own"].status) == (
        "a",
        True,
        SnapshotStatus.READY,
    )
    assert snaps["a-by-parent"].owner_tenant_id is None and snaps["a-by-parent"].immutable  # the parent's
    assert (snaps["vol"].name, snaps["vol"].status, snaps["vol"].subject_name) == (
        "nightly",
        SnapshotStatus.HELD,
        "files",
    )
    assert snaps["vol"].status_reason and "expired" in snaps["vol"].status_reason
    assert plan.summary()["held_expired"] == 1


def test_one_name_recorded_for_two_objects_stays_with_the_newest_the_other_is_numbered() -> None:
    manifests = [
        manifest("s1", 1, volume("v1", "data")),  # renamed since, never captured again
        manifest("s2", 2, volume("v2", "data")),
        manifest("s3", 3, vm("m1", "data")),  # another kind: no clash
    ]
    plan = plan_catalog(by_id(manifests), ["volume-v1", "volume-v2", "vm-m1"], NOW)

    assert {v.id: v.name for v in plan.volumes} == {"v2": "data", "v1": "data (1)"}
    assert [vm.name for vm in plan.vms] == ["data"]
    assert plan.renamed == ["volume 'data' → 'data (1)'"]


def test_networks_of_the_newest_snapshot_of_their_owner_and_those_a_vm_is_on() -> None:
    manifests = [
        manifest("s0", 1, system_object(), network("n-old", "old", None, "10.9.0.0/24")),
        manifest("s1", 2, vm("m1", "web", network_id="n-old")),
        manifest("s2", 3, system_object(), tenant("a", "acme"), network("n-lan", "lan", "a", "10.9.1.0/24")),
        manifest("s3", 4, system_object(), tenant("a", "acme"), network("n-lan", "lan", "a", "10.9.2.0/24")),
    ]
    plan = plan_catalog(by_id(manifests), ["vm-m1"], NOW)
    assert {(n.id, n.cidr, n.owner_tenant_id) for n in plan.networks} == {
        ("n-lan", "10.9.2.0/24", "a"),
        ("n-old", "10.9.0.0/24", None),
    }


def test_a_tenant_or_network_gone_from_the_newest_snapshot_of_its_parent_stays_gone() -> None:
    manifests = [
        manifest(
            "whole",
            1,
            system_object(),
            tenant("a", "acme"),
            tenant("d", "dev", parent="a"),
            network("n1", "lan", "d", "10.9.1.0/24"),
            settings("d", {"k": "dev's"}),
        ),
        # acme's own snapshot, later: dev was deleted (and its network with it), a network made in acme
        manifest(
            "acme-own", 2, system_object("a", "acme"), tenant("a", "acme"), network("n2", "wan", "a", "10.9.2.0/24")
        ),
    ]
    plan = plan_catalog(by_id(manifests), [], NOW)

    assert [t.id for t in plan.tenants] == ["a"]
    assert [n.id for n in plan.networks] == ["n2"]
    assert "d" not in plan.settings


def test_a_tenant_made_after_the_newest_system_snapshot_comes_back_with_its_own_snapshots() -> None:
    manifests = [
        manifest("whole", 1, system_object(), tenant("a", "acme")),
        manifest("b-own", 2, system_object("b", "beta"), tenant("b", "beta"), settings("b", {"k": 1})),
        manifest("b-by-system", 3, tenant("b", "beta"), settings("b", {"k": 2})),  # nothing live of it since
    ]
    plan = plan_catalog(by_id(manifests), [], NOW)

    assert {t.id for t in plan.tenants} == {"a", "b"}
    assert {s.id for s in plan.snapshots} == {"whole", "b-own", "b-by-system"} and not plan.orphan_snapshots
    assert plan.settings["b"] == {"k": 2}


def test_what_a_kept_tenants_newest_snapshot_holds_comes_back_with_it() -> None:
    """No whole-system snapshot: acme is kept by its own snapshot, and so are the sub-tenant and network
    that snapshot recorded, with the sub-tenant's own sub-tenant."""
    manifests = [
        manifest(
            "acme-own",
            1,
            system_object("a", "acme"),
            tenant("a", "acme"),
            tenant("d", "dev", parent="a"),
            tenant("q", "qa", parent="d"),
            network("n1", "lan", "a", "10.9.1.0/24"),
            network("n2", "lab", "d", "10.9.2.0/24"),
        ),
    ]
    plan = plan_catalog(by_id(manifests), [], NOW)
    assert [t.id for t in plan.tenants] == ["a", "d", "q"]
    assert sorted(n.id for n in plan.networks) == ["n1", "n2"]


def test_owners_recorded_last_by_a_pre_restore_snapshot_are_reported_once() -> None:
    manifests = [
        manifest("whole", 1, system_object(), tenant("a", "acme"), tenant("d", "dev", parent="a")),
        manifest("undo", 2, system_object(), tenant("a", "acme"), origin="pre-restore"),  # then restored
        manifest("vol", 3, volume("v1", "files"), origin="pre-extract"),  # files replaced, settings not
    ]
    plan = plan_catalog(by_id(manifests), ["volume-v1"], NOW)
    assert plan.restored_since == ["the system: its tenants, networks and settings"]
    assert [t.id for t in plan.tenants] == ["a"]  # as the newest record says (reported, not guessed)


def test_a_vm_keeps_the_libvirt_domain_the_host_has_for_its_uuid() -> None:
    manifests = [manifest("s1", 1, vm("m1", "web")), manifest("s2", 2, vm("m2", "db"))]
    plan = plan_catalog(by_id(manifests), ["vm-m1", "vm-m2"], NOW, domains={"uuid-m1": "web"})  # made long ago
    assert {vm.name: vm.domain_name for vm in plan.vms} == {"web": "web", "db": "sk-vm-m2"}


def test_what_a_rebuild_cannot_make_right_is_reported() -> None:
    manifests = [
        manifest("s1", 1, system_object(), network("n1", "lan", None, "10.9.0.0/16")),
        manifest("s2", 2, vm("m1", "web", network_id="n1")),
        manifest("s3", 3, vm("m2", "db", network_id="n-gone")),
        manifest("s4", 4, vm("m3", "old", network_id="n3")),
        manifest("s5", 5, system_object(), network("n3", "old-lan", None, "10.9.1.0/24")),
        manifest("s6", 6, volume("v1", "files"), origin="pre-restore"),  # then restored over
        manifest("s7", 7, volume("v1", "files"), name="s6"),  # a name taken twice (copied in from elsewhere)
    ]
    plan = plan_catalog(by_id(manifests), ["vm-m1", "vm-m2", "vm-m3", "volume-v1"], NOW)

    assert plan.problems == [
        "vm 'db' is on network n-gone, which no snapshot recorded",
        "networks 'old-lan' and 'lan' overlap: change one",
    ]
    assert plan.restored_since == []  # the newest record of files is s7, after the restore
    assert sorted(s.name for s in plan.snapshots if s.subject_id == "v1") == ["s6", "s6 (1)"]

    restored = plan_catalog(by_id(manifests[:6]), ["volume-v1"], NOW)
    assert restored.restored_since == ["volume 'files'"]


# --- the rebuild over a catalog ---------------------------------------------------------------------------


@dataclass
class StandInPool:
    """What a rebuild reads of a pool, failing as a pool fails."""

    manifests: dict[str, bytes] = field(default_factory=dict)
    datasets: list[str] = field(default_factory=list)
    root: str = "/pool"
    identity: str = "p-stand-in"  # the pool id the rebuilt catalog is bound to
    epoch: int = 0

    def list_snapshots(self) -> list[str]:
        return sorted(self.manifests)

    def read_manifest(self, snap_id: str) -> bytes:
        if not self.manifests[snap_id]:
            raise PoolError(f"reading the manifest of snapshot {snap_id}: No such file or directory")
        return self.manifests[snap_id]

    def list_datasets(self) -> list[str]:
        return list(self.datasets)

    def dataset_path(self, dataset: str) -> str:
        return f"{self.root}/datasets/{dataset}"


class StandInHost:
    """Domains by name, each with its UUID and disk files; ``unreadable``: domains whose description cannot be
    read (as a qcow2 one); ``down``: as libvirt when it cannot be reached."""

    def __init__(
        self, domains: dict[str, str], disks: dict[str, list[str]] | None = None, unreadable: tuple[str, ...] = ()
    ) -> None:
        self.domains = dict(domains)
        self.disks = disks or {}
        self.unreadable = unreadable
        self.down = False

    def list_domains(self) -> list[str]:
        if self.down:
            raise HypervisorUnavailable("cannot connect to qemu:///system")
        return sorted(self.domains)

    def spec(self, name: str) -> SimpleNamespace:
        if name in self.unreadable:
            raise InvalidInput(f"domain {name}: a qcow2 disk is not a raw file")
        disks = [SimpleNamespace(file=f) for f in self.disks.get(name, [])]
        return SimpleNamespace(name=name, uuid=self.domains[name], disks=disks)

    def define(self, spec: SimpleNamespace) -> None:
        self.domains[spec.name] = spec.uuid


class StandInVMs:
    def __init__(self, host: StandInHost) -> None:
        self.host = host

    def spec(self, record: VmRecord) -> SimpleNamespace:
        return SimpleNamespace(name=record.domain_name, uuid=record.domain_uuid)


def pool_of(*manifests: Manifest, datasets: list[str], **raw: bytes) -> StandInPool:
    return StandInPool({m.snapshot.id: m.to_bytes() for m in manifests} | raw, datasets)


def rebuild_of(db: Database, pool: StandInPool, host: StandInHost | None = None) -> CatalogRebuild:
    audit = Audit(db, lambda: NOW)
    profiles = Profiles(db, audit, lambda: NOW, warn_at=1000)
    return CatalogRebuild(db, pool, audit, lambda: NOW, StandInVMs(host or StandInHost({})), profiles.put_back)


def user(uid: str, name: str, tenant_id: str | None) -> ManifestObject:
    config = {"role": "operator", "password_hash": f"$argon2id$hash-of-{name}", "created_at": at(0).isoformat()}
    return ManifestObject(type="user", id=uid, name=name, owner_tenant_id=tenant_id, config=config, datasets=[])


def profile(pid: str, name: str, tenant_id: str | None) -> ManifestObject:
    periods = [{"id": f"{pid}-daily", "name": "daily", "rule": {"frequency": "daily", "hour": 2}}]
    config = {"description": "", "timezone": "UTC", "ignore_warning": False, "periods": periods}
    return ManifestObject(
        type="profile",
        id=pid,
        name=name,
        owner_tenant_id=tenant_id,
        config={**config, "created_at": at(0).isoformat()},
        datasets=[],
    )


def test_rebuild_brings_back_each_tenants_users_and_profiles_and_assigns_recorded_profiles(db: Database) -> None:
    """From the newest snapshot of each tenant's subtree; a user whose name is taken is left out, and a
    profile that is not back (no manifest recorded it) is reported, not assigned."""
    acme = tenant("a", "acme")
    acme.config["profile_id"] = "p-new"
    newest = (acme, user("u1", "alice", "a"), user("u2", "taken", "a"), profile("p-new", "nightly", "a"))
    pool = pool_of(
        manifest("s1", 1, system_object(), tenant("a", "acme"), user("u-old", "gone", "a"), profile("p-old", "x", "a")),
        manifest("s2", 2, system_object(), *newest),
        manifest("s3", 3, volume("v1", "files", owner="a", profile_id="p-new")),
        manifest("s4", 3, volume("v2", "logs", profile_id="system-profile")),
        datasets=["volume-v1", "volume-v2"],
    )
    with db.unit() as uow:
        uow.users.insert(User("u-other", "taken", "h", Role.VIEWER, None, NOW))  # the first admin, say

    summary = rebuild_of(db, pool).run()

    with db.unit() as uow:
        assert {u.name: u.id for u in uow.users.in_tenants(frozenset({"a"}))} == {"alice": "u1"}
        assert [(p.id, [q.id for q in p.periods]) for p in uow.profiles.list()] == [("p-new", ["p-new-daily"])]
        assigned = {(a.subject_type.value, a.subject_id): a.profile_id for a in uow.assignments.list()}
    assert assigned == {("tenant", "a"): "p-new", ("volume", "v1"): "p-new"}
    assert summary["users_left_out"] == ["taken"]
    assert any("'logs' was not assigned its profile again" in p for p in summary["problems"])


def test_rebuild_brings_back_the_systems_own_users_and_profiles_and_the_systems_profile(db: Database) -> None:
    """The newest whole-system snapshot records the system's own users and profiles, and the profile
    assigned to the system with the system's settings: they come back, the system's objects are assigned
    their profiles again, and the installed profiles are not installed over them at the next start (one the
    operator had deleted stays deleted)."""
    newest_settings = settings(None, {"k": 2})
    newest_settings.config["profile_id"] = "p-sys"
    pool = pool_of(
        manifest("s1", 1, system_object(), settings(None, {"k": 1}), user("u-old", "former", None)),
        manifest("s2", 2, system_object(), newest_settings, user("u1", "ops", None), profile("p-sys", "often", None)),
        manifest("s3", 3, volume("v1", "logs", profile_id="p-sys")),
        datasets=["volume-v1"],
    )
    audit = Audit(db, lambda: NOW)
    profiles = Profiles(db, audit, lambda: NOW, warn_at=1000)

    summary = CatalogRebuild(db, pool, audit, lambda: NOW, StandInVMs(StandInHost({})), profiles.put_back).run()

    assert summary["problems"] == [] and summary["users_left_out"] == []
    assert profiles.install() is False  # the rebuilt catalog counts as installed
    with db.unit() as uow:
        assert {u.name: (u.id, u.tenant_id) for u in uow.users.in_tenants(frozenset({None}))} == {"ops": ("u1", None)}
        assert [(p.id, p.owner_tenant_id) for p in uow.profiles.list()] == [("p-sys", None)]
        assigned = {(a.subject_type.value, a.subject_id): a.profile_id for a in uow.assignments.list()}
        assert uow.settings.document(None) == {"k": 2}
    assert assigned == {("system", "system"): "p-sys", ("volume", "v1"): "p-sys"}


def test_a_rebuild_cut_short_after_its_rows_is_finished_at_the_next_start(db: Database) -> None:
    """A crash after the rows were written, before the VMs the host lacks were defined and the profiles
    assigned: the next start (``finish``, as ``serve`` calls it) does those, once; libvirt down keeps it
    unfinished; ``--rebuild-catalog`` again finishes it too, instead of refusing a catalog in use."""
    acme = tenant("a", "acme")
    acme.config["profile_id"] = "p1"
    pool = pool_of(
        manifest("s1", 1, system_object(), acme, profile("p1", "nightly", "a")),
        manifest("s2", 2, vm("m1", "web", owner="a")),
        datasets=["vm-m1"],
    )
    host = StandInHost({})
    crashed = rebuild_of(db, pool, host)

    def killed(*_args: object) -> NoReturn:
        raise SystemExit("killed after the rows were written")

    crashed._after_rows = killed  # type: ignore[method-assign,assignment]
    with pytest.raises(SystemExit):
        crashed.run()
    with db.unit() as uow:
        assert uow.tenants.visible() and uow.assignments.list() == []
        assert uow.meta.get(BOUND_TO) == pool.identity  # bound with the rows: the next start takes this pool
    assert host.domains == {}

    host.down = True
    assert "libvirt could not be asked" in " ".join(rebuild_of(db, pool, host).finish()["problems"])  # type: ignore[index]
    host.down = False
    summary = rebuild_of(db, pool, host).run()  # asked to rebuild again: finishes it

    assert summary["defined_again"] == ["web"] and host.domains == {"sk-vm-m1": "uuid-m1"}
    with db.unit() as uow:
        assert [(a.subject_id, a.profile_id) for a in uow.assignments.list()] == [("a", "p1")]
    assert rebuild_of(db, pool, host).finish() is None  # finished: nothing to do at the next start


def test_rebuild_fills_an_empty_catalog_and_reports_what_it_cannot_read(db: Database) -> None:
    elsewhere = manifest("other-id", 1, volume("v1", "files")).to_bytes()
    headless = manifest("headless", 1, volume("v1", "files")).model_copy(update={"objects": []}).to_bytes()
    pool = pool_of(
        manifest("s1", 1, system_object(), tenant("a", "acme"), settings(None, {"k": 1})),
        manifest("s2", 2, volume("v1", "files", owner="a", tags=["nas"])),
        datasets=["volume-v1"],
        torn=b"{not json",
        unsealed=b"",
        moved=elsewhere,  # a manifest whose id is not its directory's
        headless=headless,  # without its subject
    )

    summary = rebuild_of(db, pool).run()

    assert summary["unreadable_snapshots"] == ["headless", "moved", "torn", "unsealed"]
    with db.unit() as uow:
        assert [t.name for t in uow.tenants.visible()] == ["acme"]
        [files] = uow.volumes.list()
        assert (files.name, files.owner_tenant_id, uow.tags.of("volume", files.id)) == ("files", "a", ("nas",))
        assert {s.id for s in uow.snapshots.list()} == {"s1", "s2"}
        assert uow.settings.document(None) == {"k": 1}
        assert [e.action for e in uow.audit.list()] == ["catalog.rebuild"]


def test_rebuild_finds_each_vms_domain_by_uuid_and_defines_those_the_host_lacks(db: Database) -> None:
    pool = pool_of(manifest("s1", 1, vm("m1", "web")), manifest("s2", 2, vm("m2", "db")), datasets=["vm-m1", "vm-m2"])
    host = StandInHost({"web": "uuid-m1", "someone-elses": "uuid-x"})

    summary = rebuild_of(db, pool, host).run()

    assert summary["defined_again"] == ["db"] and summary["problems"] == []
    assert host.domains == {"web": "uuid-m1", "someone-elses": "uuid-x", "sk-vm-m2": "uuid-m2"}
    with db.unit() as uow:
        assert {v.name: v.domain_name for v in uow.vms.list()} == {"web": "web", "db": "sk-vm-m2"}


def test_rebuild_never_defines_a_second_domain_on_a_vms_disks(db: Database) -> None:
    """web's disks are used by a domain defined by hand (another UUID); db's domain name is taken; an
    unreadable domain is left out, not the end of the lookup."""
    pool = pool_of(
        manifest("s1", 1, vm("m1", "web")),
        manifest("s2", 2, vm("m2", "db")),
        manifest("s3", 3, vm("m3", "app")),
        datasets=["vm-m1", "vm-m2", "vm-m3"],
    )
    host = StandInHost(
        {"by-hand": "uuid-other", "sk-vm-m2": "uuid-else", "odd": "uuid-odd", "app": "uuid-m3"},
        disks={"by-hand": ["/pool/datasets/vm-m1/disk0.raw"]},
        unreadable=("odd",),
    )

    summary = rebuild_of(db, pool, host).run()

    assert summary["defined_again"] == []
    assert summary["problems"] == [
        "vm 'db' was not defined again: sk-vm-m2 is taken",
        "vm 'web' was not defined again: domain by-hand uses its disks",
    ]
    with db.unit() as uow:
        assert {v.name: v.domain_name for v in uow.vms.list()}["app"] == "app"  # found past the unreadable one


def test_rebuild_without_libvirt_says_so_and_defines_nothing(db: Database) -> None:
    pool = pool_of(manifest("s1", 1, vm("m1", "web")), datasets=["vm-m1"])
    host = StandInHost({})
    host.down = True

    summary = rebuild_of(db, pool, host).run()

    assert summary["defined_again"] == [] and host.domains == {}
    [problem] = summary["problems"]
    assert "libvirt could not be asked" in problem and "cannot connect" in problem


def test_rebuild_refuses_a_catalog_in_use_and_changes_nothing(db: Database) -> None:
    with db.unit() as uow:
        uow.tenants.insert(Tenant("t", "kept", None, "", T0))
    pool = pool_of(manifest("s1", 1, system_object(), tenant("a", "acme")), datasets=[])

    with pytest.raises(CatalogInUse):
        rebuild_of(db, pool).run()
    with db.unit() as uow:
        assert [t.name for t in uow.tenants.visible()] == ["kept"]
        assert uow.snapshots.list() == [] and uow.audit.list() == []


def test_an_empty_catalog_over_a_pool_with_snapshots_is_refused_as_lost_until_rebuilt(db: Database) -> None:
    check_not_lost(db, pool_of(datasets=[]))  # a new pool
    check_not_lost(db, pool_of(datasets=["volume-v1"]))  # a crash in the first create: nothing to rebuild from
    unreadable = pool_of(datasets=[], torn=b"{not json")
    with pytest.raises(CatalogLost, match="--rebuild-catalog"):
        check_not_lost(db, unreadable)

    summary = rebuild_of(db, unreadable).run()  # finds nothing it can place

    assert summary["unreadable_snapshots"] == ["torn"]
    check_not_lost(db, unreadable)  # rebuilt: served, not refused at every start


def test_a_catalog_in_use_is_not_lost(db: Database) -> None:
    with db.unit() as uow:
        uow.tenants.insert(Tenant("t", "kept", None, "", T0))
    check_not_lost(db, pool_of(manifest("s1", 1, system_object()), datasets=["volume-v1"]))
