"""Everything a system or tenant snapshot captures, read from the catalog at one moment: the tenants of the
subtree (parents first) with their own users and profiles (:mod:`.tenant_own`; the whole system's: the
system's own too, and the profile assigned to the system in its settings object), networks and settings,
and the VMs and volumes the selection admits, each as the manifest records it.

VMs and volumes are described by their own kinds (so a VM inside a system snapshot is recorded exactly as a
VM snapshot records it), plus what only a whole-system restore needs: whether the VM ran, and the tags.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from snapkeep.catalog.stores import Unit
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.profile import SubjectOfProfile
from snapkeep.model.selection import Selection
from snapkeep.model.tags import TagKind
from snapkeep.model.types import Tenant
from snapkeep.services.subjects import tenant_own
from snapkeep.services.subjects.base import WHOLE_SYSTEM, Subject
from snapkeep.services.subjects.profile_back import PROFILE
from snapkeep.services.subjects.vm import VmKind
from snapkeep.services.subjects.volume import VolumeKind

SYSTEM_SETTINGS = "system"  # the id of the system's settings object in a manifest
# Every table read_estate reads (a test holds it to that): an estate is read again once any of them changed.
ESTATE_TABLES = (
    "tenants",
    "tags",
    "profile_assignments",
    "vms",
    "volumes",
    "networks",
    "users",
    "profiles",
    "profile_periods",
    "settings",
)


@dataclass(frozen=True)
class Estate:
    """The members of one subtree (``root`` None: the whole system)."""

    root: str | None
    tenants: tuple[ManifestObject, ...]
    own: tuple[ManifestObject, ...] = field(repr=False)  # the owners' users (password hashes) and profiles
    networks: tuple[ManifestObject, ...]
    settings: tuple[ManifestObject, ...]
    vms: tuple[Subject, ...]
    volumes: tuple[Subject, ...]
    domains: dict[str, str]  # VM id -> its libvirt domain

    def objects(self, running: AbstractSet[str]) -> list[ManifestObject]:
        """In the order a restore recreates them: tenants (parents first) and their users and profiles,
        networks, settings, volumes, VMs (``running``: the ids of those that ran at the capture)."""
        volumes = [v.manifest_object() for v in self.volumes]
        vms = [_with(vm.manifest_object(), running=vm.id in running) for vm in self.vms]
        return [*self.tenants, *self.own, *self.networks, *self.settings, *volumes, *vms]

    def members(self) -> tuple[tuple[str, str, str], ...]:
        """(type, id, name) of every object whose guard a capture of the estate holds."""
        return tuple((str(s.type), s.id, s.name) for s in (*self.vms, *self.volumes)) + tuple(
            ("tenant", t.id, t.name) for t in self.tenants
        )

    def datasets(self) -> tuple[str, ...]:
        return tuple(sorted(d for s in (*self.vms, *self.volumes) for d in s.datasets))


class EstateCache:
    """The estates last read, each with the write counts of the tables it was read from: a take of a system
    that has not changed since the last one reads nothing of it again (ten queries or more, most of a small
    take's catalog time). An estate is reused only while those counts are as of now what it was read at
    (:class:`~snapkeep.catalog.generations.Generations`), and never by, nor kept from, a unit that has changed
    rows itself (they may yet be rolled back). The key holds the caller's scope, the subtree and the
    selection, which decide what an estate holds."""

    LIMIT = 16  # subtrees and selections kept at once; beyond, all are dropped and read again

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[tuple[int, ...], Estate]] = {}
        self._lock = threading.Lock()

    def read(
        self, uow: Unit, root: str | None, selection: Selection, vm_kind: VmKind, volume_kind: VolumeKind
    ) -> Estate:
        if uow.changed_anything():
            return read_estate(uow, root, selection, vm_kind, volume_kind)
        key = (uow.scope_tenant_id, root, selection)
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] == uow.seen.current(ESTATE_TABLES):
            return entry[1]
        read_at = uow.seen.opened(ESTATE_TABLES)
        estate = read_estate(uow, root, selection, vm_kind, volume_kind)
        with self._lock:
            if len(self._entries) >= self.LIMIT:
                self._entries.clear()
            self._entries[key] = (read_at, estate)
        return estate


def _with(obj: ManifestObject, **extra: object) -> ManifestObject:
    return obj.model_copy(update={"config": {**obj.config, **extra}})


def read_estate(uow: Unit, root: str | None, selection: Selection, vm_kind: VmKind, volume_kind: VolumeKind) -> Estate:
    """The subtree of ``root`` as the catalog has it now (what runs is libvirt's to say, at the capture)."""
    tenants = _tenants_parents_first(uow, root)
    owners: set[str | None] = {t.id for t in tenants} | ({None} if root is None else set())
    tags = {t.id: set(uow.tags.of(TagKind.TENANT, t.id)) for t in tenants}
    parents = {t.id: t.parent_id for t in tenants}

    def inherited(owner: str | None) -> set[str]:
        found: set[str] = set()
        while owner is not None and owner in tags:
            found |= tags[owner]
            owner = parents[owner]
        return found

    vm_tags = uow.tags.of_all(TagKind.VM)
    volume_tags = uow.tags.of_all(TagKind.VOLUME)
    profiles = {(a.subject_type.value, a.subject_id): a.profile_id for a in uow.assignments.list()}

    def picked(owner: str | None, own_tags: tuple[str, ...]) -> bool:
        """In the subtree, and admitted by the selection (its own tags and its tenants')."""
        return owner in owners and selection.admits(set(own_tags) | inherited(owner))

    vms, volumes, domains = [], [], {}
    for record in uow.vms.list():
        if picked(record.owner_tenant_id, vm_tags.get(record.id, ())):
            subject = vm_kind.subject_of(record, profiles.get(("vm", record.id)))
            vms.append(_tagged(subject, vm_tags.get(record.id, ())))
            domains[record.id] = record.domain_name
    for volume in uow.volumes.list():
        if picked(volume.owner_tenant_id, volume_tags.get(volume.id, ())):
            subject = volume_kind.subject_of(volume, profiles.get(("volume", volume.id)))
            volumes.append(_tagged(subject, volume_tags.get(volume.id, ())))
    networks = [n for n in uow.networks.list() if n.owner_tenant_id in owners]
    return Estate(
        root=root,
        tenants=tuple(
            ManifestObject(
                type="tenant",
                id=t.id,
                name=t.name,
                owner_tenant_id=t.parent_id,
                config={
                    "description": t.description,
                    "tags": sorted(tags[t.id]),
                    PROFILE: profiles.get(("tenant", t.id)),
                },
                datasets=[],
            )
            for t in tenants
        ),
        own=tuple(tenant_own.recorded(uow, owners)),
        networks=tuple(
            ManifestObject(
                type="network",
                id=n.id,
                name=n.name,
                owner_tenant_id=n.owner_tenant_id,
                config={"description": n.description, "cidr": n.cidr, "dhcp": n.dhcp},
                datasets=[],
            )
            for n in sorted(networks, key=lambda n: n.id)
        ),
        settings=tuple(
            ManifestObject(
                type="settings",
                id=owner or SYSTEM_SETTINGS,
                name="settings",
                owner_tenant_id=owner,
                config={"document": uow.settings.document(owner)} | _system_profile(owner, profiles),
                datasets=[],
            )
            for owner in ([None] if root is None else []) + [t.id for t in tenants]
        ),
        vms=tuple(sorted(vms, key=lambda s: s.id)),
        volumes=tuple(sorted(volumes, key=lambda s: s.id)),
        domains=domains,
    )


def _system_profile(owner: str | None, profiles: dict[tuple[str, str], str]) -> dict[str, str | None]:
    """The system's settings object also records the profile assigned to the system (a tenant's is in the
    tenant's own object)."""
    return {PROFILE: profiles.get((SubjectOfProfile.SYSTEM.value, WHOLE_SYSTEM))} if owner is None else {}


def _tagged(subject: Subject, tags: tuple[str, ...]) -> Subject:
    return Subject(
        type=subject.type,
        id=subject.id,
        name=subject.name,
        owner_tenant_id=subject.owner_tenant_id,
        datasets=subject.datasets,
        config={**subject.config, "tags": sorted(tags)},
        quiesce_policy=subject.quiesce_policy,
    )


def _tenants_parents_first(uow: Unit, root: str | None) -> list[Tenant]:
    """The tenants of the subtree of ``root`` (all of them for the system), each after its parent, brothers
    by name; read in one query (one per tenant made a take of 50 tenants wait on 50)."""
    children: dict[str | None, list[Tenant]] = {}
    for tenant in uow.tenants.visible():  # by name
        children.setdefault(tenant.parent_id, []).append(tenant)
    found: list[Tenant] = []
    todo = deque([uow.tenants.get(root)] if root is not None else children.get(None, []))
    while todo:
        tenant = todo.popleft()
        found.append(tenant)
        todo.extend(children.get(tenant.id, []))
    return found
