"""Tenants, networks, settings and tags through the services, on a real pool and a real SQLite catalog.

No guest runs here (tests/integration/test_vm_tenants.py powers real ones): trees, names per owner, what a
delete removes and what a refused delete leaves untouched (catalog and pool compared before and after),
settings validation, tags, and the network rules that need no host.
"""

from __future__ import annotations

from typing import Any

import pytest

from snapkeep.errors import (
    Forbidden,
    InvalidNetwork,
    InvalidSettings,
    InvalidTag,
    NameClash,
    NetworkOverlap,
    NotFound,
    SnapshotLocked,
    Unauthorized,
)
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.tags import TagKind
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions

MiB = 1 << 20


def state(svc: Services) -> dict[str, Any]:
    """Everything the catalog and the pool hold, to compare before and after a refused request."""
    with svc.db.unit() as uow:
        tenants = uow.tenants.visible()
        return {
            "tenants": tenants,
            "volumes": uow.volumes.list(),
            "vms": uow.vms.list(),
            "networks": uow.networks.list(),
            "snapshots": uow.snapshots.list(),
            "settings": {t.id: uow.settings.document(t.id) for t in tenants} | {None: uow.settings.document(None)},
            "tags": {kind: uow.tags.of_all(kind) for kind in TagKind},
            "tokens": uow.tokens.list(),
            "datasets": sorted(svc.pool.list_datasets()),
            "pool_snapshots": sorted(svc.pool.list_snapshots()),
        }


def tree(svc: Services) -> dict[str, Any]:
    """acme (tagged prod) / dev ; globex — each with a volume, acme with a snapshot of its volume."""
    acme = svc.tenants.create(SYSTEM, "acme", description="a customer", tags=["prod"])
    dev = svc.tenants.create(SYSTEM, "dev", parent="acme")
    globex = svc.tenants.create(SYSTEM, "globex")
    vols = {
        "acme": svc.volumes.create("data", 8 * MiB, tenant="acme", who=SYSTEM),
        "dev": svc.volumes.create("data", 8 * MiB, tenant="acme/dev", who=SYSTEM),
        "globex": svc.volumes.create("data", 8 * MiB, tenant="globex", who=SYSTEM),
        "system": svc.volumes.create("data", 8 * MiB, who=SYSTEM),
    }
    snaps = {k: svc.snapshots.take(TakeRequest(ref=v.id, name="s1"), who=SYSTEM) for k, v in vols.items()}
    return {"acme": acme, "dev": dev, "globex": globex, "vols": vols, "snaps": snaps}


def test_tree_two_levels_names_per_owner_and_paths(services: Services) -> None:
    t = tree(services)
    views = services.tenants.tree(SYSTEM)
    assert [(v.path, v.depth) for v in views] == [("acme", 0), ("acme/dev", 1), ("globex", 0)]
    assert views[0].tags == ("prod",) and views[0].tenant.description == "a customer" and not views[0].online
    assert services.tenants.get(SYSTEM, "acme/dev").tenant.parent_id == t["acme"].tenant.id
    assert services.tenants.get(SYSTEM, "dev").tenant.id == t["dev"].tenant.id  # unique name: found anywhere

    # Same name under two owners is fine; twice under one is refused.
    services.tenants.create(SYSTEM, "dev", parent="globex")
    with pytest.raises(NotFound, match="2 tenants are named 'dev'"):
        services.tenants.get(SYSTEM, "dev")
    with pytest.raises(NameClash):
        services.tenants.create(SYSTEM, "dev", parent="acme")
    with pytest.raises(NameClash):
        services.volumes.create("data", 8 * MiB, tenant="acme", who=SYSTEM)
    owners = {v.owner_tenant_id for v in services.volumes.list(who=SYSTEM) if v.name == "data"}
    assert owners == {None, t["acme"].tenant.id, t["dev"].tenant.id, t["globex"].tenant.id}
    assert [v.id for v in services.volumes.list(tenant="acme", who=SYSTEM)] == [t["vols"]["acme"].id]

    # Renaming keeps the tree; a sibling's name is refused.
    services.tenants.update(SYSTEM, "acme/dev", name="staging", description="was dev")
    assert services.tenants.get(SYSTEM, "acme/staging").tenant.description == "was dev"
    services.tenants.create(SYSTEM, "qa", parent="acme")
    with pytest.raises(NameClash):
        services.tenants.update(SYSTEM, "acme/qa", name="staging")


def test_roles_and_tenant_scoped_callers(services: Services) -> None:
    tree(services)
    acme_id = services.tenants.get(SYSTEM, "acme").tenant.id
    operator = Principal("ops", Role.OPERATOR, None)
    with pytest.raises(Forbidden):
        services.tenants.create(operator, "initech")  # under the system: admins of the system only
    services.tenants.create(operator, "web", parent="acme")  # beneath a tenant: operators
    viewer = Principal("v", Role.VIEWER, None)
    with pytest.raises(Forbidden):
        services.tenants.create(viewer, "x", parent="acme")

    acme_admin = Principal("acme-admin", Role.ADMIN, acme_id)
    child = services.tenants.create(acme_admin, "team")  # beneath its own tenant by default
    assert child.tenant.parent_id == acme_id and child.path == "acme/team"
    assert [v.path for v in services.tenants.tree(acme_admin)] == ["acme", "acme/dev", "acme/team", "acme/web"]
    for ref in ("globex", services.tenants.get(SYSTEM, "globex").tenant.id):
        with pytest.raises(NotFound):
            services.tenants.get(acme_admin, ref)
        with pytest.raises(NotFound):
            services.tenants.create(acme_admin, "sneaky", parent=ref)
    with pytest.raises(NotFound):
        services.settings_docs.get(acme_admin)  # the system's settings are outside its scope
    before = state(services)
    with pytest.raises(Forbidden):
        services.tenants.delete(acme_admin, "acme")  # its own tenant: its whole scope
    with pytest.raises(Forbidden):
        services.tenants.delete(operator, "globex")  # under the system: admins of the system only
    assert state(services) == before
    services.tenants.delete(acme_admin, "acme/team")
    assert [v.path for v in services.tenants.tree(acme_admin)] == ["acme", "acme/dev", "acme/web"]


def test_delete_removes_exactly_the_subtree(services: Services) -> None:
    t = tree(services)
    net = services.networks.create(SYSTEM, "lan", "10.77.1.0/24", tenant="acme/dev")
    services.settings_docs.patch(SYSTEM, {"expose_snapshots": False}, tenant="acme/dev")
    services.tags.add(SYSTEM, TagKind.VOLUME, t["vols"]["dev"].id, "gold")
    _token, secret = services.tokens.issue(SYSTEM, "dev-ops", Role.OPERATOR, tenant="acme/dev")
    services.tokens.issue(SYSTEM, "globex-ops", Role.OPERATOR, tenant="globex")
    before = state(services)

    result = services.tenants.delete(SYSTEM, "acme")
    assert result["tenants"] == 2 and result["volumes"] == 2 and result["snapshots"] == 2 and result["networks"] == 1

    after = state(services)
    gone_ids = {t["acme"].tenant.id, t["dev"].tenant.id}
    assert after["tenants"] == [x for x in before["tenants"] if x.id not in gone_ids]
    assert after["volumes"] == [v for v in before["volumes"] if v.owner_tenant_id not in gone_ids]
    assert after["snapshots"] == [s for s in before["snapshots"] if s.owner_tenant_id not in gone_ids]
    assert after["networks"] == [n for n in before["networks"] if n.id != net.id]
    gone_datasets = {t["vols"]["acme"].dataset, t["vols"]["dev"].dataset}
    assert after["datasets"] == [d for d in before["datasets"] if d not in gone_datasets]
    gone_snaps = {t["snaps"]["acme"].id, t["snaps"]["dev"].id}
    assert after["pool_snapshots"] == [s for s in before["pool_snapshots"] if s not in gone_snaps]
    assert after["tags"] == {TagKind.VM: {}, TagKind.VOLUME: {}, TagKind.TENANT: {}}
    assert set(after["settings"]) == {None, t["globex"].tenant.id}
    assert after["tokens"] == [x for x in before["tokens"] if x.name != "dev-ops"]
    with pytest.raises(Unauthorized):
        services.tokens.authenticate(secret)
    with pytest.raises(NotFound):
        services.tenants.get(SYSTEM, "acme")


def test_delete_refused_while_a_snapshot_is_locked_changes_nothing(services: Services) -> None:
    t = tree(services)
    services.snapshots.take(TakeRequest(ref=t["vols"]["dev"].id, name="audit", immutable=True), who=SYSTEM)
    before = state(services)
    with pytest.raises(SnapshotLocked):
        services.tenants.delete(SYSTEM, "acme", force=True)
    assert state(services) == before
    assert services.guards.held() == []
    services.tenants.delete(SYSTEM, "globex")  # a sibling without locks goes
    assert [v.path for v in services.tenants.tree(SYSTEM)] == ["acme", "acme/dev"]


def test_moving_between_owners_is_not_offered(services: Services) -> None:
    tree(services)
    with pytest.raises(TypeError):
        services.tenants.update(SYSTEM, "acme/dev", parent="globex")  # type: ignore[call-arg]


def test_settings_documents_are_validated(services: Services) -> None:
    tree(services)
    assert services.settings_docs.get(SYSTEM, tenant="acme") == {"expose_snapshots": True}
    assert services.settings_docs.get(SYSTEM) == {}
    services.settings_docs.patch(SYSTEM, {"site": {"name": "lab", "rack": 4}})
    services.settings_docs.patch(SYSTEM, {"site": {"rack": None}, "zone": "b"})
    assert services.settings_docs.get(SYSTEM) == {"site": {"name": "lab"}, "zone": "b"}
    services.settings_docs.patch(SYSTEM, {"expose_snapshots": False}, tenant="acme")
    acme_id = services.tenants.get(SYSTEM, "acme").tenant.id
    assert services.settings_docs.tenant_value(acme_id, "expose_snapshots") is False
    assert services.settings_docs.get(SYSTEM, tenant="acme/dev") == {"expose_snapshots": True}  # not inherited
    services.settings_docs.patch(SYSTEM, {"expose_snapshots": True}, tenant="acme/dev")

    before = state(services)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(20):
        node["x"] = {}
        node = node["x"]
    for bad in (deep, {"n": float("nan")}, {"big": "x" * 70_000}, {"expose_snapshots": "yes"}, {"": 1}):
        with pytest.raises(InvalidSettings):
            services.settings_docs.patch(SYSTEM, bad, tenant="acme")
    with pytest.raises(Forbidden):
        services.settings_docs.patch(Principal("ops", Role.OPERATOR, None), {"a": 1})
    acme_admin = Principal("acme-admin", Role.ADMIN, acme_id)
    with pytest.raises(Forbidden):  # whether its parent's snapshots show to it is not the tenant's choice
        services.settings_docs.patch(acme_admin, {"expose_snapshots": True}, tenant="acme")
    assert state(services) == before
    assert services.settings_docs.patch(acme_admin, {"contact": "ops"}, tenant="acme")["expose_snapshots"] is False
    services.settings_docs.patch(acme_admin, {"expose_snapshots": False}, tenant="acme/dev")  # from above: fine
    assert services.settings_docs.get(acme_admin, tenant="acme/dev")["expose_snapshots"] is False


def test_tags_on_tenants_volumes_and_their_rules(services: Services) -> None:
    t = tree(services)
    vol = services.volumes.create("tagged", 8 * MiB, tags=["tier:1", "backup"], who=SYSTEM)
    assert vol.tags == ("backup", "tier:1") and services.volumes.get("tagged", who=SYSTEM).tags == ("backup", "tier:1")
    assert services.tags.add(SYSTEM, TagKind.VOLUME, "tagged", "eu-west") == ("backup", "eu-west", "tier:1")
    assert services.tags.add(SYSTEM, TagKind.VOLUME, "tagged", "eu-west") == ("backup", "eu-west", "tier:1")
    assert services.tags.remove(SYSTEM, TagKind.VOLUME, "tagged", "backup") == ("eu-west", "tier:1")
    assert services.tags.add(SYSTEM, TagKind.TENANT, "acme/dev", "dev") == ("dev",)
    assert services.tenants.get(SYSTEM, "acme/dev").tags == ("dev",)
    assert {v.name: v.tags for v in services.volumes.list(who=SYSTEM)}["tagged"] == ("eu-west", "tier:1")

    before = state(services)
    for bad in ("", "has space", "a,b", "-lead", "x" * 65, "ü"):
        with pytest.raises(InvalidTag):
            services.tags.add(SYSTEM, TagKind.VOLUME, "tagged", bad)
    with pytest.raises(InvalidTag):
        services.volumes.create("bad-tags", 8 * MiB, tags=["no spaces"], who=SYSTEM)
    with pytest.raises(InvalidTag):
        services.tenants.create(SYSTEM, "bad-tags", tags=[f"t{i}" for i in range(33)])
    with pytest.raises(NotFound):
        services.tags.add(Principal("g", Role.OPERATOR, t["globex"].tenant.id), TagKind.TENANT, "acme", "x")
    assert state(services) == before
    services.volumes.delete("tagged", services.snapshots, who=SYSTEM)
    assert TagKind.VOLUME not in {k for k, v in state(services)["tags"].items() if v}


def test_networks_overlap_names_and_owners(services: Services) -> None:
    tree(services)
    a = services.networks.create(SYSTEM, "lan", "10.77.1.0/24", tenant="acme")
    services.networks.create(SYSTEM, "lan", "10.77.2.0/24", tenant="globex")  # same name, other owner
    with pytest.raises(NameClash):
        services.networks.create(SYSTEM, "lan", "10.77.3.0/24", tenant="acme")
    before = state(services)
    with pytest.raises(NetworkOverlap, match="'lan'"):
        services.networks.create(SYSTEM, "wide", "10.77.0.0/16")  # any owner's network counts
    with pytest.raises(InvalidNetwork):
        services.networks.create(SYSTEM, "public", "8.8.8.0/24")
    with pytest.raises(NetworkOverlap):
        services.networks.update(SYSTEM, a.id, cidr="10.77.2.0/25")
    assert state(services) == before
    moved = services.networks.update(SYSTEM, a.id, cidr="10.77.4.0/24", dhcp=False, description="moved")
    assert (moved.cidr, moved.dhcp, moved.description) == ("10.77.4.0/24", False, "moved")
    assert [n.name for n in services.networks.list(SYSTEM, tenant="globex")] == ["lan"]
    globex_op = Principal("g", Role.OPERATOR, services.tenants.get(SYSTEM, "globex").tenant.id)
    assert [n.owner_tenant_id for n in services.networks.list(globex_op)] == [globex_op.tenant_id]
    with pytest.raises(NotFound):
        services.networks.get(globex_op, a.id)
    with pytest.raises(NetworkOverlap, match="outside your scope") as caught:  # refused, acme's not named
        services.networks.create(globex_op, "near", "10.77.4.128/25")  # over acme's moved lan
    assert "lan" not in caught.value.message and "10.77.4.0" not in caught.value.message


def test_a_restore_as_new_and_its_name_stay_with_the_owner_of_the_source(services: Services) -> None:
    """Names are unique per owner: the copy of a tenant's volume is that tenant's, named by its rules there."""
    services.tenants.create(SYSTEM, "owner")
    vol = services.volumes.create("data", 8 * MiB, tenant="owner", who=SYSTEM)
    services.volumes.create("data_restored", 8 * MiB, who=SYSTEM)  # the system's: no clash with the tenant's copy
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s1"), who=SYSTEM)
    made = services.restores.as_new(snap.id, RestoreOptions(as_new=True), SYSTEM)
    copy = services.volumes.get(str(made["volume_id"]), who=SYSTEM)
    assert (copy.name, copy.owner_tenant_id) == ("data_restored", vol.owner_tenant_id)
    with pytest.raises(NameClash):
        services.restores.as_new(snap.id, RestoreOptions(as_new=True), SYSTEM)


def test_tokens_never_get_more_than_their_creator(services: Services) -> None:
    tree(services)
    acme_id = services.tenants.get(SYSTEM, "acme").tenant.id
    token, secret = services.tokens.issue(SYSTEM, "acme-ops", Role.OPERATOR, tenant="acme")
    assert (token.role, token.tenant_id) == (Role.OPERATOR, acme_id) and secret.startswith("sk_")
    acme_ops = services.tokens.authenticate(secret)
    assert acme_ops == Principal("acme-ops", Role.OPERATOR, acme_id)

    before = state(services)
    with pytest.raises(Forbidden):
        services.tokens.issue(acme_ops, "escalate", Role.ADMIN)  # more than its creator's role
    with pytest.raises(NotFound):
        services.tokens.issue(acme_ops, "sideways", Role.VIEWER, tenant="globex")  # outside its scope
    with pytest.raises(Forbidden):
        services.tokens.issue(Principal("v", Role.VIEWER, None), "v2", Role.VIEWER)
    with pytest.raises(NameClash):
        services.tokens.issue(SYSTEM, "acme-ops", Role.VIEWER)
    assert state(services) == before

    _dev_token, dev_secret = services.tokens.issue(acme_ops, "dev-ops", Role.OPERATOR, tenant="acme/dev")
    listed = {t.name for t in services.tokens.listing(acme_ops)}
    assert listed == {"acme-ops", "dev-ops"}  # the system's admin token is not in its scope
    assert {t.name for t in services.tokens.listing(SYSTEM)} >= listed
    dev_ops = services.tokens.authenticate(dev_secret)
    assert {t.name for t in services.tokens.listing(dev_ops)} == {"dev-ops"}
    with pytest.raises(NotFound):
        services.tokens.revoke(dev_ops, "acme-ops")  # above its scope
    services.tokens.revoke(acme_ops, "dev-ops")
    with pytest.raises(Unauthorized):
        services.tokens.authenticate(dev_secret)


def test_a_deleted_tenants_jobs_stay_readable_above_it(services: Services) -> None:
    """Jobs belong to their subject's owner; when that tenant goes, its jobs' history goes to its parent
    (and a tenant with a job history can be deleted at all)."""
    parent = services.tenants.create(SYSTEM, "keeper").tenant
    services.tenants.create(SYSTEM, "leaver", parent="keeper")
    vol = services.volumes.create("v", 8 * MiB, tenant="keeper/leaver", who=SYSTEM)
    job = services.snapshots.submit_take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    assert services.jobs.wait(job.id, 30, SYSTEM).status == "succeeded"
    parents_operator = Principal("keeper-op", Role.OPERATOR, parent.id)
    deleting = services.tenants.submit_delete(parents_operator, "keeper/leaver")
    assert services.jobs.wait(deleting.id, 30, parents_operator).status == "succeeded"
    assert {j.id for j in services.jobs.list(parents_operator, 100)} >= {job.id, deleting.id}
    assert services.jobs.get(job.id, SYSTEM).owner_tenant_id == parent.id
