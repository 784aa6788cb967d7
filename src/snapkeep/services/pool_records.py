"""What a catalog rebuilt from the pool alone holds (SPEC §2 "Self-describing"): worked out from the
manifests of the pool's snapshots and the datasets it holds, without touching anything.

The pool keeps data and manifests, not the catalog's rows, so a rebuild infers the rows by these rules:

- **VMs and volumes** are those whose datasets are in the pool (deleting one destroys its dataset), each as
  the newest manifest recorded it (name, owner, configuration, tags), made when it was first recorded. A
  dataset no manifest names (an object never captured) cannot be named: it is left in the pool, reported.
- **Tenants** are those the newest snapshot of the whole system recorded, and every tenant a rebuilt VM,
  volume, network or snapshot belongs to, with their parents; each as the newest manifest recorded it. A
  tenant no manifest recorded (its VM was only ever captured by a VM snapshot) comes back under the system
  as ``recovered-<its id's first 8 characters>``. A tenant deleted after the newest system snapshot comes
  back (delete it again); one made after it and holding nothing captured is not known.
- **Networks** are those of the newest system snapshot and those a rebuilt VM is attached to; **settings**
  are the system's from the newest system snapshot and each tenant's from its newest record.
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
from snapkeep.services.subjects.system import WHOLE_SYSTEM
from snapkeep.services.vms import domain_name

SYSTEM_SUBJECT = ("system", WHOLE_SYSTEM)  # a snapshot of the whole system


@dataclass(frozen=True)
class Recorded:
    """One object as the newest manifest that holds it recorded it, and when it was first recorded."""

    obj: ManifestObject
    at: datetime  # when the newest record was taken
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
    snapshots: list[Snapshot] = field(default_factory=list)
    unknown_datasets: list[str] = field(default_factory=list)  # in the pool, named by no manifest
    orphan_snapshots: list[str] = field(default_factory=list)  # of a subject that is gone
    renamed: list[str] = field(default_factory=list)  # "vm 'web' → 'web (1)'"
    placeholders: list[str] = field(default_factory=list)  # tenants no manifest recorded

    def summary(self) -> dict[str, Any]:
        """Counts, and what the operator should look at, for the log and the command's output."""
        return {
            "tenants": len(self.tenants),
            "networks": len(self.networks),
            "volumes": len(self.volumes),
            "vms": len(self.vms),
            "snapshots": len(self.snapshots),
            "held_expired": sum(1 for s in self.snapshots if s.status is SnapshotStatus.HELD),
            "unknown_datasets": list(self.unknown_datasets),
            "orphan_snapshots": list(self.orphan_snapshots),
            "renamed": list(self.renamed),
            "placeholder_tenants": list(self.placeholders),
        }


def plan_catalog(manifests: Mapping[str, Manifest], datasets: Iterable[str], now: datetime) -> CatalogPlan:
    """The catalog that ``manifests`` (by snapshot id) and the pool's live ``datasets`` imply at ``now``."""
    return _Planner(manifests, set(datasets), now).plan()


class _Planner:
    def __init__(self, manifests: Mapping[str, Manifest], datasets: set[str], now: datetime) -> None:
        self._manifests = sorted(manifests.values(), key=lambda m: (m.snapshot.created_at, m.snapshot.id))
        self._datasets = datasets
        self._now = now
        self._recorded = _newest_records(self._manifests)
        self._taken: dict[tuple[str, str | None], set[str]] = {}  # names given, by (kind, owner)
        self._out = CatalogPlan()

    def plan(self) -> CatalogPlan:
        out = self._out
        volumes = self._live("volume")
        vms = self._live("vm")
        system = self._newest_whole_system()
        networks = self._networks(system, vms)
        subjects = {("volume", r.obj.id) for r in volumes} | {("vm", r.obj.id) for r in vms}
        tenant_ids = {t.id for t in system.objects if t.type == "tenant"} if system else set()
        tenant_ids |= {r.obj.owner_tenant_id for r in (*volumes, *vms, *networks) if r.obj.owner_tenant_id}
        snapshots = [m for m in self._manifests if self._subject_kept(m, subjects, tenant_ids)]
        tenant_ids |= {o for m in snapshots if (o := _subject(m).owner_tenant_id)}
        self._tenants(tenant_ids)
        kept_tenants = {t.id for t in out.tenants}
        self._settings(system, kept_tenants)
        out.networks = [self._network(r) for r in networks]
        out.volumes = [self._volume(r) for r in volumes]
        out.vms = [self._vm(r) for r in vms]
        subjects |= {("tenant", t) for t in kept_tenants} | {("system", t) for t in kept_tenants}
        out.snapshots = [self._snapshot(m) for m in self._manifests if self._subject_kept(m, subjects, kept_tenants)]
        kept = {s.id for s in out.snapshots}
        out.orphan_snapshots = [m.snapshot.id for m in self._manifests if m.snapshot.id not in kept]
        held = {d for r in (*volumes, *vms) for d in r.obj.datasets}
        out.unknown_datasets = sorted(self._datasets - held)
        return out

    # --- which objects --------------------------------------------------------------------------------
    def _live(self, object_type: str) -> list[Recorded]:
        """The VMs or volumes whose datasets are all in the pool, newest record first."""
        found = [
            r
            for (kind, _id), r in self._recorded.items()
            if kind == object_type and r.obj.datasets and set(r.obj.datasets) <= self._datasets
        ]
        return self._newest_first(found)

    def _newest_whole_system(self) -> Manifest | None:
        whole = [
            m for m in self._manifests if m.snapshot.subject_type == "system" and m.snapshot.subject_id == WHOLE_SYSTEM
        ]
        return whole[-1] if whole else None

    def _networks(self, system: Manifest | None, vms: list[Recorded]) -> list[Recorded]:
        wanted = {o.id for o in system.objects if o.type == "network"} if system else set()
        for r in vms:
            wanted |= {str(nic["network_id"]) for nic in r.obj.config["vm"].get("nics", []) if nic.get("network_id")}
        return self._newest_first([self._recorded[("network", i)] for i in wanted if ("network", i) in self._recorded])

    @staticmethod
    def _subject_kept(manifest: Manifest, subjects: set[tuple[str, str]], tenants: set[str]) -> bool:
        snap = manifest.snapshot
        if (snap.subject_type, snap.subject_id) == SYSTEM_SUBJECT:
            return True
        if snap.subject_type in ("system", "tenant"):
            return snap.subject_id in tenants
        return (snap.subject_type, snap.subject_id) in subjects

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
        return Tenant(obj.id, name, obj.owner_tenant_id, str(obj.config.get("description", "")), record.first)

    def _settings(self, system: Manifest | None, tenants: set[str]) -> None:
        if system is not None:
            for obj in system.objects:
                if obj.type == "settings" and obj.owner_tenant_id is None:
                    self._out.settings[None] = dict(obj.config["document"])
        for tenant_id in sorted(tenants):
            record = self._recorded.get(("settings", tenant_id))
            if record is not None:
                self._out.settings[tenant_id] = dict(record.obj.config["document"])

    # --- rows ----------------------------------------------------------------------------------------
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
        return VmRecord(
            id=obj.id,
            name=self._owned_name("vm", obj),
            description=str(config["description"]),
            owner_tenant_id=obj.owner_tenant_id,
            dataset=obj.datasets[0],
            domain_uuid=str(config["domain_uuid"]),
            domain_name=domain_name(obj.id),
            spec=dict(config["vm"]),
            quiesce_policy=QuiescePolicy(str(config["quiesce_policy"])),
            agent_timeout=float(config["agent_timeout"]),
            created_at=record.first,
        )

    def _snapshot(self, manifest: Manifest) -> Snapshot:
        snap, subject = manifest.snapshot, _subject(manifest)
        expired = snap.expires_at is not None and snap.expires_at <= self._now
        return Snapshot(
            id=snap.id,
            kind=SnapshotKind(snap.kind),
            subject_type=snap.subject_type,
            subject_id=snap.subject_id,
            subject_name=subject.name,
            owner_tenant_id=subject.owner_tenant_id,
            name=snap.name,
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
                first=before.first if before else manifest.snapshot.created_at,
                tags=tuple(tags) if tags is not None else (before.tags if before else None),
            )
    return found
