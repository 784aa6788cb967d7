"""What a snapshot holds, as its manifest recorded it, seen through the caller's scope (SPEC §2, §5).

A system snapshot lists its tenants as a tree, its VMs, volumes, networks and settings, each with its
configuration at that time, the users (never their password hashes) and profiles, and which objects
a partial one took. A tenant reading its parent's exposed
snapshot sees its own subtree in it and nothing else; the scope is the tree *as recorded*, so a sub-tenant
deleted since is still the tenant's own to see and restore. Host paths (a VM's kernel and initrd) are
shown to admins of the system only, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapkeep.model.manifest import ManifestObject
from snapkeep.model.principal import Principal
from snapkeep.model.selection import Selection
from snapkeep.model.types import Snapshot
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.subjects import tenant_own

_HOST_PATHS = ("kernel", "initrd")


@dataclass(frozen=True)
class TenantNode:
    id: str
    name: str
    parent_id: str | None
    path: str  # from the top the caller sees, as recorded: "acme/dev"
    depth: int
    config: dict[str, Any]


@dataclass(frozen=True)
class Contents:
    snapshot: Snapshot
    selection: str  # "full", or which tags a partial snapshot took
    tenants: list[TenantNode] = field(default_factory=list)  # depth first, each after its parent
    vms: list[ManifestObject] = field(default_factory=list)
    volumes: list[ManifestObject] = field(default_factory=list)
    networks: list[ManifestObject] = field(default_factory=list)
    settings: list[ManifestObject] = field(default_factory=list)
    users: list[ManifestObject] = field(default_factory=list)  # without their password hashes
    profiles: list[ManifestObject] = field(default_factory=list)


def read_contents(snapshots: Snapshots, snap_id: str, who: Principal) -> Contents:
    """Any role, for any snapshot the caller sees (its own, or its parent's exposed ones)."""
    snap = snapshots.get(snap_id, who)
    manifest = snapshots.manifest(snap_id)
    visible = [_shown(obj, who) for obj in manifest.visible_to(who.tenant_id)]
    by_type: dict[str, list[ManifestObject]] = {}
    for obj in visible:
        by_type.setdefault(obj.type, []).append(obj)
    return Contents(
        snapshot=snap,
        selection=Selection.from_json(manifest.snapshot.selection).describe(),
        tenants=_tree(by_type.get("tenant", [])),
        vms=sorted(by_type.get("vm", []), key=lambda o: (o.owner_tenant_id or "", o.name)),
        volumes=sorted(by_type.get("volume", []), key=lambda o: (o.owner_tenant_id or "", o.name)),
        networks=sorted(by_type.get("network", []), key=lambda o: (o.owner_tenant_id or "", o.name)),
        settings=by_type.get("settings", []),
        users=_by_owner_and_name(by_type.get(tenant_own.USER, [])),
        profiles=_by_owner_and_name(by_type.get(tenant_own.PROFILE, [])),
    )


def _by_owner_and_name(objects: list[ManifestObject]) -> list[ManifestObject]:
    return sorted(objects, key=lambda o: (o.owner_tenant_id or "", o.name))


def _shown(obj: ManifestObject, who: Principal) -> ManifestObject:
    if obj.type == tenant_own.USER:
        return tenant_own.without_secret(obj)
    if obj.type != "vm" or who.is_system_admin:
        return obj
    spec = {key: (None if key in _HOST_PATHS else value) for key, value in obj.config.get("vm", {}).items()}
    return obj.model_copy(update={"config": {**obj.config, "vm": spec}})


def _tree(tenants: list[ManifestObject]) -> list[TenantNode]:
    """The recorded tenants, each after its parent, siblings by name; the tops are those whose parent the
    caller does not see."""
    ids = {t.id for t in tenants}
    children: dict[str | None, list[ManifestObject]] = {}
    for tenant in tenants:
        parent = tenant.owner_tenant_id if tenant.owner_tenant_id in ids else None
        children.setdefault(parent, []).append(tenant)
    nodes: list[TenantNode] = []

    def walk(parent: str | None, prefix: str, depth: int) -> None:
        for tenant in sorted(children.get(parent, []), key=lambda t: t.name):
            path = f"{prefix}{tenant.name}"
            nodes.append(TenantNode(tenant.id, tenant.name, tenant.owner_tenant_id, path, depth, tenant.config))
            walk(tenant.id, path + "/", depth + 1)

    walk(None, "", 0)
    return nodes
