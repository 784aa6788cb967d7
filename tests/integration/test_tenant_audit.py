"""A tenant's audit log (SPEC §6: every level's audit in the web UI): a tenant's callers read the entries of
their subtree, whoever made them (its own users, the parent's admin, the scheduler), and nothing of the
system's or of another tenant; an actor from above the tenant is shown as ``parent``; a deleted
sub-tenant's entries stay readable above it. Real pool and services."""

from __future__ import annotations

import pytest

from snapkeep.model.filters import AuditFilter
from snapkeep.model.paging import Window
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.types import SubjectType
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # catalog work: the driver plays no part

MiB = 1 << 20


def seen(svc: Services, who: Principal, **where: str) -> set[tuple[str, str, str]]:
    """(action, target, actor) of every entry ``who`` reads."""
    page = svc.audit.page(who, Window(1000), AuditFilter(**where) if where else None)
    return {(e.action, e.target, e.actor) for e in page.items}


def test_a_tenant_reads_its_subtrees_entries_and_nothing_else(services: Services) -> None:
    svc = services
    root = Principal("root-admin", Role.ADMIN, None)
    acme = svc.tenants.create(root, "acme").tenant.id
    dev = svc.tenants.create(root, "dev", parent="acme").tenant.id
    svc.tenants.create(root, "globex")
    svc.users.create(root, "ann", "ann's long password", Role.OPERATOR, tenant="acme")
    ann = Principal("ann", Role.OPERATOR, acme)
    mine = svc.volumes.create("mine", 8 * MiB, tenant=acme, who=ann)
    svc.volumes.create("devs", 8 * MiB, tenant=dev, who=root)
    svc.volumes.create("theirs", 8 * MiB, tenant="globex", who=root)
    svc.volumes.create("systems", 8 * MiB, who=root)
    viewer = Principal("acme-viewer", Role.VIEWER, acme)

    acmes = seen(svc, viewer)

    assert ("volume.create", "volume:mine", "ann") in acmes  # its own user, by name
    assert ("volume.create", "volume:devs", "parent") in acmes  # the parent's admin, unnamed
    assert ("user.create", "user:ann", "parent") in acmes and ("tenant.create", "tenant:dev", "parent") in acmes
    assert not {t for _a, t, _w in acmes} & {"volume:theirs", "volume:systems", "tenant:globex"}
    assert not any(actor == "root-admin" for _a, _t, actor in acmes)
    assert seen(svc, viewer, actor="root-admin") == set()  # a name from above: not even whether it acted
    svc.tokens.issue(ann, "root-admin", Role.OPERATOR)  # acme names a token of its own after its parent's admin
    svc.volumes.create("by-the-namesake", 8 * MiB, who=Principal("root-admin", Role.OPERATOR, acme))
    namesake = seen(svc, viewer, actor="root-admin")
    assert namesake == {("volume.create", "volume:by-the-namesake", "root-admin")}  # its own acts, nothing above
    assert ("volume.create", "volume:devs", "parent") in seen(svc, viewer)  # the scope of who acted, not a name
    assert ("volume.create", "volume:devs", "root-admin") in seen(svc, SYSTEM)  # the system sees who
    assert seen(svc, Principal("dev-viewer", Role.VIEWER, dev)) == {
        ("volume.create", "volume:devs", "parent"),
        ("tenant.create", "tenant:dev", "parent"),
    }

    # the parent restores acme's volume out of its own private system snapshot: acme reads that it happened,
    # not the snapshot's name
    private = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name="secret-nightly"), who=root)
    options = RestoreOptions(member_type=SubjectType.VOLUME, member=mine.id, pre_restore=False)
    svc.restores.over_source(private.id, options, root)
    restored = [e for e in svc.audit.entries(viewer) if e.action == "volume.restore"]
    assert [(e.target, e.actor, e.detail) for e in restored] == [
        ("volume:mine", "parent", "from a snapshot of its parent (data)")
    ]
    assert not any("secret-nightly" in f"{e.target} {e.detail}" for e in svc.audit.entries(viewer))

    svc.users.create(root, "dan", "dan's long password", Role.OPERATOR, tenant=dev)
    svc.volumes.create("dans", 8 * MiB, tenant=dev, who=Principal("dan", Role.OPERATOR, dev))
    assert ("volume.create", "volume:dans", "dan") in seen(svc, viewer)  # dev is in acme's subtree
    svc.tenants.delete(root, "acme/dev", force=True)  # dev's history stays readable above it
    after = seen(svc, viewer)
    assert ("volume.create", "volume:devs", "parent") in after and ("tenant.delete", "tenant:dev", "parent") in after
    assert ("volume.create", "volume:dans", "dan") in after  # still dev's user: from below, not from above
