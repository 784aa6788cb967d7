"""What a catalog rebuilt from the pool alone holds (SPEC §2 "Self-describing"): worked out from the
manifests of the pool's snapshots and the datasets it holds, without touching anything.

The pool keeps data and manifests, not the catalog's rows, so a rebuild infers the rows by these rules:

- **VMs and volumes** are those whose datasets are in the pool (deleting one destroys its dataset), each as
  the newest manifest recorded it (name, owner, configuration, tags), made when it was first recorded. A
  dataset no manifest names (an object never captured) cannot be named: it is left in the pool, reported.
- **Tenants and networks** are those the newest snapshot recording their owner's subtree holds (the newest
  whole-system snapshot for the system's own; for a tenant's, the newest system or tenant snapshot that
  recorded that tenant), with their owner; and every tenant a rebuilt object, or a snapshot of its own,
  belongs to (a tenant's snapshots are deleted with it), with its parents; and every network a rebuilt VM
  is on. Each as its newest record says. A tenant no manifest recorded (its VM was only ever captured by a
  VM snapshot) comes back under the system as ``recovered-<its id's first 8 characters>``. A tenant or
  network deleted after that newest snapshot comes back (delete it again); one made after it with nothing
  captured of its own is not known. **Settings** are each owner's as that same snapshot recorded them, and
  so are each owner's **users and profiles** (the system's, from whole-system snapshots taken since they
  were recorded). Each tenant, VM and volume, and the system, is assigned the profile its newest record
  names, if that profile is back.
- **Restored since**: an in-place restore takes a ``pre-restore`` snapshot and then changes the object; an
  object whose newest record is such a snapshot comes back as it was before that restore (its data as
  after), reported. So is a VM on a network no snapshot recorded, and networks whose ranges overlap.
- **Snapshots**: every one whose subject is rebuilt (the system always is), as its manifest says. One whose
  expiry has passed is ``held`` (the profile period that may have held it past its expiry is not in the
  pool): it stays until someone deletes it (or a profile taken off its subject releases its holds; then
  the sweep decides as for any expired snapshot). An immutable one comes back locked (an unlock is not
  recorded). The rest (of a VM or volume whose dataset is gone) stay in the pool, reported.
- Two objects of one owner and kind recorded with one name (renamed since, one of them) cannot both have
  it: the one recorded last keeps it, the other becomes ``<name> (n)``, reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from snapkeep.model.manifest import Manifest, ManifestObject
from snapkeep.model.names import numbered_name
from snapkeep.model.network import NetworkDef, overlaps
from snapkeep.model.profile import SubjectOfProfile
from snapkeep.model.types import (
    Network,
    QuiescePolicy,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
    Tenant,
    VmRecord,
    VolumeRecord,
)
from snapkeep.services.subjects import tenant_own
from snapkeep.services.subjects.base import WHOLE_SYSTEM
from snapkeep.services.subjects.profile_back import PROFILE
from snapkeep.services.vms import domain_name

SYSTEM_SUBJECT = ("system", WHOLE_SYSTEM)  # a snapshot of the whole system
SUBTREE_TYPES = ("system", "tenant")  # snapshots that record a subtree: its tenants, networks and settings
PRE_RESTORE = "pre-restore"


@dataclass(frozen=True)
class Recorded:
    """One object as the newest manifest that holds it recorded it, and when it was first recorded."""

    obj: ManifestObject
    at: datetime  # when the newest record was taken
    origin: str  # and by what (``pre-restore``: just before an in-place restore changed it)
    first: datetime
    tags: tuple[str, ...] | None  # from the newest record that lists tags (a VM's own snapshots do not)


@dataclass
class CatalogPlan:
    """The rows a rebuilt catalog holds (tenants parents first), and what the pool holds that it cannot."""

    tenants: list[Tenant] = field(default_factory=list)
    networks: list[Network] = field(default_factory=list)
    settings: dict[str | None, dict[str, Any]] = field(default_factory=dict)
    volumes: list[VolumeRecord] = field(default_factory=list)
    vms: list[VmRecord] = field(default_factory=list)
    tags: list[tuple[str, str, str]] = field(default_factory=list)  # (object type, id, tag)
    own: list[ManifestObject] = field(default_factory=list)  # the owners' users and profiles (system's too)
    assignments: list[tuple[str, str, str]] = field(default_factory=list)  # (subject type, id, profile id)
    snapshots: list[Snapshot] = field(default_factory=list)
    unknown_datasets: list[str] = field(default_factory=list)  # in the pool, named by no manifest
    orphan_snapshots: list[str] = field(default_factory=list)  # of a subject that is gone
    renamed: list[str] = field(default_factory=list)  # "vm 'web' → 'web (1)'"
    placeholders: list[str] = field(default_factory=list)  # tenants no manifest recorded
    restored_since: list[str] = field(default_factory=list)  # newest record taken just before a restore
    problems: list[str] = field(default_factory=list)  # what keeps a rebuilt VM from starting

    def summary(self) -> dict[str, Any]:
        """Counts, and what the operator should look at, for the log and the command's output."""
        return {
            "tenants": len(self.tenants),
            "networks": len(self.networks),
            "volumes": len(self.volumes),
            "vms": len(self.vms),
            "snapshots": len(self.snapshots),
            "users": sum(1 for o in self.own if o.type == tenant_own.USER),
            "profiles": sum(1 for o in self.own if o.type == tenant_own.PROFILE),
            "held_expired": sum(1 for s in self.snapshots if s.status is SnapshotStatus.HELD),
            "unknown_datasets": list(self.unknown_datasets),
            "orphan_snapshots": list(self.orphan_snapshots),
            "renamed": list(self.renamed),
            "placeholder_tenants": list(self.placeholders),
            "restored_since_newest_snapshot": list(self.restored_since),
            "problems": list(self.problems),
        }


def plan_catalog(
    manifests: Mapping[str, Manifest], datasets: Iterable[str], now: datetime, domains: Mapping[str, str] | None = None
) -> CatalogPlan:
    """The catalog that ``manifests`` (by snapshot id; each holds its subject) and the pool's live
    ``datasets`` imply at ``now``; ``domains`` names the host's libvirt domains by UUID (a VM made by an
    early version has a domain named after it, not after its id)."""
    return _Planner(manifests, set(datasets), now, domains or {}).plan()


class _Planner:
    def __init__(
        self, manifests: Mapping[str, Manifest], datasets: set[str], now: datetime, domains: Mapping[str, str]
    ) -> None:
        self._manifests = sorted(manifests.values(), key=lambda m: (m.snapshot.created_at, m.snapshot.id))
        self._datasets = datasets
        self._now = now
        self._domains = domains
        self._recorded = _newest_records(self._manifests)
        self._whole = next((m for m in reversed(self._manifests) if _subject_key(m) == SYSTEM_SUBJECT), None)
        self._subtree_of = _newest_subtree_records(self._manifests)
        self._taken: dict[tuple[str, str | None], set[str]] = {}  # names given, by (kind, owner)
        self._out = CatalogPlan()

    def plan(self) -> CatalogPlan:
        out = self._out
        volumes, vms = self._live("volume"), self._live("vm")
        rebuilt = {("volume", r.obj.id) for r in volumes} | {("vm", r.obj.id) for r in vms}
        needed = {r.obj.owner_tenant_id for r in (*volumes, *vms)}
        needed |= {r.obj.owner_tenant_id for r in self._records("network", _vm_networks(vms))}
        for manifest in self._manifests:  # a tenant's own snapshots go when it is deleted: while they are
            snap = manifest.snapshot  # here, so is it
            if snap.subject_type in SUBTREE_TYPES and _subject_key(manifest) != SYSTEM_SUBJECT:
                needed.add(snap.subject_id)
            if (snap.subject_type, snap.subject_id) in rebuilt:
                needed.add(_subject(manifest).owner_tenant_id)
        self._tenants(self._listed_beneath({t for t in needed if t is not None}))
        kept_tenants = {t.id for t in out.tenants}
        self._settings(kept_tenants)
        self._own(kept_tenants)
        self._restored_subtrees(kept_tenants)
        owners = kept_tenants | {None}
        listed = {o.id for owner in owners for o in self._listed_by(owner, "network")}
        networks = self._records("network", listed | _vm_networks(vms))
        out.networks = [self._network(r) for r in networks if r.obj.owner_tenant_id in owners]
        out.volumes = [self._volume(r) for r in volumes]
        out.vms = [self._vm(r) for r in vms]
        subjects = rebuilt | {(kind, t) for t in kept_tenants for kind in SUBTREE_TYPES} | {SYSTEM_SUBJECT}
        self._snapshots([m for m in self._manifests if _subject_key(m) in subjects])
        held = {d for r in (*volumes, *vms) for d in r.obj.datasets}
        out.unknown_datasets = sorted(self._datasets - held)
        self._check_networks(vms)
        return out

    # --- which objects --------------------------------------------------------------------------------
    def _live(self, object_type: str) -> list[Recorded]:
        """The VMs or volumes whose datasets are all in the pool, newest record first."""
        found = [
            r
            for (kind, _id), r in self._recorded.items()
            if kind == object_type and r.obj.datasets and set(r.obj.datasets) <= self._datasets
        ]
        for r in found:
            if r.origin == PRE_RESTORE:
                self._out.restored_since.append(f"{object_type} {r.obj.name!r}")
        return self._newest_first(found)

    def _records(self, object_type: str, ids: Iterable[str]) -> list[Recorded]:
        """The newest records of those of ``ids`` some manifest holds, newest first."""
        found = [self._recorded[(object_type, i)] for i in ids if (object_type, i) in self._recorded]
        return self._newest_first(found)

    def _newest_of_owner(self, owner: str | None) -> Manifest | None:
        """The newest snapshot that recorded the subtree ``owner`` heads (the whole system for None)."""
        return self._whole if owner is None else self._subtree_of.get(owner)

    def _listed_by(self, owner: str | None, object_type: str) -> list[ManifestObject]:
        """The tenants or networks of ``owner`` when its subtree was last recorded."""
        newest = self._newest_of_owner(owner)
        objects = newest.objects if newest is not None else []
        return [o for o in objects if o.type == object_type and o.owner_tenant_id == owner]

    def _listed_beneath(self, kept: set[str]) -> set[str]:
        """``kept`` and, from the system and each kept tenant down, the tenants each one's subtree held when it
        was last recorded (a tenant deleted takes its sub-tenants with it)."""
        found, todo = set(kept), [None, *kept]
        while todo:
            for tenant in self._listed_by(todo.pop(), "tenant"):
                if tenant.id not in found:
                    found.add(tenant.id)
                    todo.append(tenant.id)
        return found

    def _restored_subtrees(self, tenants: set[str]) -> None:
        """Report the owners whose tenants, networks and settings come from a pre-restore snapshot: an
        in-place restore changed them right after it."""
        names, seen = {t.id: t.name for t in self._out.tenants}, set()
        for owner in [None, *sorted(tenants)]:  # the system first: its snapshot holds every tenant's subtree
            newest = self._newest_of_owner(owner)
            if newest is not None and newest.snapshot.origin == PRE_RESTORE and newest.snapshot.id not in seen:
                seen.add(newest.snapshot.id)
                whose = "the system" if owner is None else f"tenant {names[owner]!r}"
                self._out.restored_since.append(f"{whose}: its tenants, networks and settings")

    def _check_networks(self, vms: list[Recorded]) -> None:
        """Report what a VM cannot start with: a network no snapshot recorded, or two that overlap."""
        known = {n.id for n in self._out.networks}
        for r in vms:
            for missing in sorted(set(_nic_networks(r.obj)) - known):
                self._out.problems.append(f"vm {r.obj.name!r} is on network {missing}, which no snapshot recorded")
        nets = self._out.networks
        for i, one in enumerate(nets):
            for other in nets[i + 1 :]:
                if overlaps(NetworkDef(one.name, one.cidr, one.dhcp), NetworkDef(other.name, other.cidr, other.dhcp)):
                    self._out.problems.append(f"networks {one.name!r} and {other.name!r} overlap: change one")

    def _tenants(self, wanted: set[str]) -> None:
        """Every wanted tenant and its parents, parents first; a tenant no manifest recorded is a
        placeholder under the system."""
        records: dict[str, Recorded | None] = {}
        todo = list(wanted)
        while todo:
            tenant_id = todo.pop()
            if tenant_id in records:
                continue
            record = self._recorded.get(("tenant", tenant_id))
            records[tenant_id] = record
            if record is not None and record.obj.owner_tenant_id is not None:
                todo.append(record.obj.owner_tenant_id)
        placed: set[str | None] = {None}
        ready = [item for item in records.items() if item[1] is None or item[1].obj.owner_tenant_id is None]
        while ready:  # a level of the tree at a time, the newest record of a level first (it keeps its name)
            for tenant_id, record in sorted(ready, key=lambda item: _newest_key(item[1]), reverse=True):
                placed.add(tenant_id)
                self._out.tenants.append(self._tenant(tenant_id, record))
            ready = [
                (tenant_id, r)
                for tenant_id, r in records.items()
                if tenant_id not in placed and r is not None and r.obj.owner_tenant_id in placed
            ]

    def _tenant(self, tenant_id: str, record: Recorded | None) -> Tenant:
        if record is None:
            name = self._name("tenant", f"recovered-{tenant_id[:8]}", self._taken.setdefault(("tenant", None), set()))
            self._out.placeholders.append(name)
            return Tenant(tenant_id, name, None, "rebuilt from the pool: no snapshot recorded this tenant", self._now)
        obj = record.obj
        name = self._owned_name("tenant", obj)
        self._tags("tenant", obj.id, record)
        self._assigned("tenant", obj)
        return Tenant(obj.id, name, obj.owner_tenant_id, str(obj.config.get("description", "")), record.first)

    def _settings(self, tenants: set[str]) -> None:
        """Each owner's document as the newest snapshot of its subtree recorded it; the system's, with the
        profile assigned to the system."""
        for owner in [None, *sorted(tenants)]:
            newest = self._newest_of_owner(owner)
            for obj in newest.objects if newest else ():
                if obj.type == "settings" and obj.owner_tenant_id == owner:
                    self._out.settings[owner] = dict(obj.config["document"])
                    if owner is None and obj.config.get(PROFILE) is not None:
                        system = SubjectOfProfile.SYSTEM.value
                        self._out.assignments.append((system, WHOLE_SYSTEM, str(obj.config[PROFILE])))

    # --- rows ----------------------------------------------------------------------------------------
    def _own(self, tenants: set[str]) -> None:
        """Each owner's users and profiles (the system's too) as the newest snapshot of its subtree recorded them."""
        for owner in [None, *sorted(tenants)]:
            newest = self._newest_of_owner(owner)
            for obj in newest.objects if newest else ():
                if obj.type in (tenant_own.USER, tenant_own.PROFILE) and obj.owner_tenant_id == owner:
                    self._out.own.append(obj)

    def _assigned(self, object_type: str, obj: ManifestObject) -> None:
        """The profile the object's newest record names, to be assigned again once the rows are in."""
        profile_id = obj.config.get(PROFILE)
        if profile_id is not None:
            self._out.assignments.append((object_type, obj.id, str(profile_id)))

    def _network(self, record: Recorded) -> Network:
        obj, config = record.obj, record.obj.config
        name = self._owned_name("network", obj)
        return Network(
            obj.id,
            name,
            str(config["description"]),
            obj.owner_tenant_id,
            config["cidr"],
            bool(config["dhcp"]),
            record.first,
        )

    def _volume(self, record: Recorded) -> VolumeRecord:
        obj, config = record.obj, record.obj.config
        self._tags("volume", obj.id, record)
        self._assigned("volume", obj)
        return VolumeRecord(
            id=obj.id,
            name=self._owned_name("volume", obj),
            description=str(config["description"]),
            size_limit=int(config["size_limit"]),
            owner_tenant_id=obj.owner_tenant_id,
            dataset=obj.datasets[0],
            settings=dict(config["settings"]),
            created_at=record.first,
        )

    def _vm(self, record: Recorded) -> VmRecord:
        obj, config = record.obj, record.obj.config
        self._tags("vm", obj.id, record)
        self._assigned("vm", obj)
        return VmRecord(
            id=obj.id,
            name=self._owned_name("vm", obj),
            description=str(config["description"]),
            owner_tenant_id=obj.owner_tenant_id,
            dataset=obj.datasets[0],
            domain_uuid=str(config["domain_uuid"]),
            domain_name=self._domains.get(str(config["domain_uuid"]), domain_name(obj.id)),
            spec=dict(config["vm"]),
            quiesce_policy=QuiescePolicy(str(config["quiesce_policy"])),
            agent_timeout=float(config["agent_timeout"]),
            created_at=record.first,
        )

    def _snapshots(self, manifests: list[Manifest]) -> None:
        """Every snapshot of a rebuilt subject, as taken (a name taken twice for one subject, by snapshots
        copied into the pool from elsewhere, is numbered); the rest are orphans."""
        for manifest in manifests:
            taken = self._taken.setdefault((f"snapshot of {_subject_key(manifest)}", None), set())
            name = self._name("snapshot", manifest.snapshot.name, taken)
            self._out.snapshots.append(self._snapshot(manifest, name))
        kept = {s.id for s in self._out.snapshots}
        self._out.orphan_snapshots = [m.snapshot.id for m in self._manifests if m.snapshot.id not in kept]

    def _snapshot(self, manifest: Manifest, name: str) -> Snapshot:
        snap, subject = manifest.snapshot, _subject(manifest)
        expired = snap.expires_at is not None and snap.expires_at <= self._now
        return Snapshot(
            id=snap.id,
            kind=SnapshotKind(snap.kind),
            subject_type=snap.subject_type,
            subject_id=snap.subject_id,
            subject_name=subject.name,
            owner_tenant_id=subject.owner_tenant_id,
            name=name,
            description=snap.description,
            created_at=snap.created_at,
            expires_at=snap.expires_at,
            origin=snap.origin,
            quiesce_requested=snap.quiesced or snap.quiesce_note is not None,
            quiesced=snap.quiesced,
            quiesce_note=snap.quiesce_note,
            quiesce_window_ms=None,
            paused_window_ms=None,
            immutable=snap.immutable,
            unlocked_at=None,
            private=snap.private,
            status=SnapshotStatus.HELD if expired else SnapshotStatus.READY,
            status_reason="expired before the catalog was rebuilt from the pool; delete it when it is not wanted"
            if expired
            else None,
            exclusive_bytes=None,
            shared_bytes=None,
        )

    # --- names and tags ------------------------------------------------------------------------------
    def _owned_name(self, object_type: str, obj: ManifestObject) -> str:
        return self._name(object_type, obj.name, self._taken.setdefault((object_type, obj.owner_tenant_id), set()))

    def _name(self, object_type: str, wanted: str, taken: set[str]) -> str:
        name = wanted if wanted not in taken else numbered_name(wanted, taken.__contains__)
        if name != wanted:
            self._out.renamed.append(f"{object_type} {wanted!r} → {name!r}")
        taken.add(name)
        return name

    def _tags(self, object_type: str, object_id: str, record: Recorded) -> None:
        self._out.tags += [(object_type, object_id, tag) for tag in record.tags or ()]

    @staticmethod
    def _newest_first(records: list[Recorded]) -> list[Recorded]:
        return sorted(records, key=_newest_key, reverse=True)


def _newest_key(record: Recorded | None) -> tuple[datetime, str]:
    return (datetime.min.replace(tzinfo=UTC), "") if record is None else (record.at, record.obj.id)


def _subject_key(manifest: Manifest) -> tuple[str, str]:
    return (manifest.snapshot.subject_type, manifest.snapshot.subject_id)


def _vm_networks(vms: list[Recorded]) -> set[str]:
    """The snapkeep networks the recorded VMs' NICs are on."""
    return {nic for r in vms for nic in _nic_networks(r.obj)}


def _nic_networks(vm: ManifestObject) -> list[str]:
    """The snapkeep networks a recorded VM's NICs are on."""
    return [str(nic["network_id"]) for nic in vm.config["vm"].get("nics", []) if nic.get("network_id")]


def _newest_subtree_records(manifests: list[Manifest]) -> dict[str, Manifest]:
    """For each tenant, the newest system or tenant snapshot that recorded it, with its whole subtree."""
    found: dict[str, Manifest] = {}
    for manifest in manifests:
        if manifest.snapshot.subject_type in SUBTREE_TYPES:
            found |= {obj.id: manifest for obj in manifest.objects if obj.type == "tenant"}
    return found


def _subject(manifest: Manifest) -> ManifestObject:
    snap = manifest.snapshot
    return manifest.object_of(snap.subject_type, snap.subject_id)


def _newest_records(manifests: list[Manifest]) -> dict[tuple[str, str], Recorded]:
    """Each object's newest record across ``manifests`` (oldest first), with when it was first recorded."""
    found: dict[tuple[str, str], Recorded] = {}
    for manifest in manifests:
        for obj in manifest.objects:
            key = (obj.type, obj.id)
            before = found.get(key)
            tags = obj.config.get("tags")
            found[key] = Recorded(
                obj=obj,
                at=manifest.snapshot.created_at,
                origin=manifest.snapshot.origin,
                first=before.first if before else manifest.snapshot.created_at,
                tags=tuple(tags) if tags is not None else (before.tags if before else None),
            )
    return found
