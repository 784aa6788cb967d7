"""A whole subtree — the system, or one tenant's — rebuilt in place from a system or tenant snapshot (a
copy as a new tenant is :mod:`.tenant_copy`'s): :meth:`Rebuild.over`, within the subtree the snapshot
recorded and, for a partial snapshot, among the VMs and volumes it holds or its selection admits now
(others are not touched):

1. everything is checked first, changing nothing: the parent of a deleted root still exists (and the
   caller is an admin if a tenant comes back at the top), what was created since holds no locked
   snapshot, no object left untouched has a name or network range that a recorded one needs back, no
   untouched VM uses a network created since;
2. the guards of every object the rebuild touches, and of the snapshots deleted with what goes, are
   claimed (inside the restore's own claim): one being read elsewhere refuses the rebuild here;
3. an intent file is written (``rebuild-<op>.json``: the snapshot, the root, when the restore began and
   who asked); from here a crash is rolled forward at the next start (:meth:`Rebuild.resume`, called by
   the reconciler after it has resumed paused guests and before requests) — a failure in the job, which
   the caller sees, is not (the audit log says the subtree is partly restored): every step below reads the
   catalog again and does only what is left, so running them twice is the same as once (a dataset that a
   killed step left without its catalog row is the recorded object's own, named by its UUID, and is made
   again). A later rebuild of the same subtree supersedes the intent (the caller's last word wins);
4. the running VMs it puts back or removes are powered off (others run on); VMs, volumes and tenants
   created since are deleted (with their own snapshots), through the services that delete them one by one;
5. objects renamed since first take a name of their own (so names swapped among them never clash), then
   tenants, volumes (data swapped in atomically per dataset, or cloned back with the same id), VMs (the same
   id, domain UUID, MACs and disks), networks and settings documents are made as the snapshot recorded
   them (the whole system's with the profile assigned to the system); networks created since go;
6. the VMs that ran when the snapshot was taken are started; the intent is released.

Undo: the pre-restore snapshot the restore service takes first is a system (or tenant) snapshot like any
other; restoring it in place puts everything back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.engine.intents import Intent, IntentKind, Intents
from snapkeep.errors import Forbidden, NameClash, NetworkInUse, NotFound, SnapkeepError, SnapshotNotReady
from snapkeep.hypervisor import Hypervisor
from snapkeep.model.manifest import Manifest, ManifestObject
from snapkeep.model.network import NetworkDef, check_disjoint, libvirt_network_name
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.profile import SubjectOfProfile
from snapkeep.model.selection import Selection
from snapkeep.model.settings import PARENT_DECIDES
from snapkeep.model.tags import TagKind
from snapkeep.model.types import Network, QuiescePolicy, Snapshot, Tenant, VmRecord, VolumeRecord
from snapkeep.model.vmconfig import VMConfig
from snapkeep.model.vmspec import VMState
from snapkeep.services.audit import Audit, from_snapshot
from snapkeep.services.freeing import Freeing
from snapkeep.services.guards import Guards, Need, exclusive
from snapkeep.services.jobs import report_progress
from snapkeep.services.networks import Networks, definition
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.subjects import tenant_own
from snapkeep.services.subjects.base import WHOLE_SYSTEM, Effects
from snapkeep.services.subjects.estate import read_estate
from snapkeep.services.subjects.profile_back import PutBack, put_back_profile
from snapkeep.services.subjects.vm import VmKind
from snapkeep.services.subjects.volume import VolumeKind
from snapkeep.services.tenants import Tenants
from snapkeep.services.vms import VMs
from snapkeep.services.volumes import Volumes
from snapkeep.storage.pool import Pool

log = logging.getLogger(__name__)

Report = Callable[[float, str], None]


@dataclass(frozen=True)
class Recorded:
    """What a snapshot recorded of the subtree of ``root`` (None: the whole system), by type."""

    root: str | None
    selection: Selection
    tenants: tuple[ManifestObject, ...]  # parents first
    networks: tuple[ManifestObject, ...]
    settings: tuple[ManifestObject, ...]
    volumes: tuple[ManifestObject, ...]
    vms: tuple[ManifestObject, ...]
    own: tuple[ManifestObject, ...] = ()  # the owners' users and profiles (none before snapshots held them)

    @classmethod
    def of(cls, manifest: Manifest, root: str | None) -> Recorded:
        objects = manifest.visible_to(root)

        def of_type(object_type: str) -> tuple[ManifestObject, ...]:
            return tuple(o for o in objects if o.type == object_type)

        return cls(
            root=root,
            selection=Selection.from_json(manifest.snapshot.selection),
            tenants=of_type("tenant"),
            networks=of_type("network"),
            settings=of_type("settings"),
            volumes=of_type("volume"),
            vms=of_type("vm"),
            own=of_type(tenant_own.USER) + of_type(tenant_own.PROFILE),
        )

    def own_of(self, tenant_id: str) -> tuple[ManifestObject, ...]:
        """The recorded users and profiles of one tenant."""
        return tuple(o for o in self.own if o.owner_tenant_id == tenant_id)

    def ids(self, object_type: str) -> set[str]:
        return {o.id for o in getattr(self, f"{object_type}s")}

    def parent_of_root(self) -> str | None:
        return next((t.owner_tenant_id for t in self.tenants if t.id == self.root), None)


@dataclass(frozen=True)
class Current:
    """What the subtree holds now: every tenant and network, and the VMs and volumes a rebuild touches
    (those the snapshot recorded, and those its selection admits now)."""

    tenants: dict[str, Tenant]
    networks: dict[str, Network]
    vms: dict[str, VmRecord]
    volumes: dict[str, VolumeRecord]


@dataclass(frozen=True)
class Changes:
    """The difference between the subtree now and as recorded: what goes. Only what was created after the
    snapshot and before the restore began (``until``) goes: an object the snapshot did not record but that
    existed then was left out of a partial snapshot, and one made while the restore runs is in no
    snapshot (not even the pre-restore one) — both are left alone."""

    recorded: Recorded
    current: Current
    since: datetime
    until: datetime | None
    doomed: tuple[Snapshot, ...] = ()  # the snapshots of what goes (read by check_over, to be claimed)

    def _made_since(self, created_at: datetime) -> bool:
        return created_at > self.since and (self.until is None or created_at <= self.until)

    def _gone(self, kind: str, objects: dict[str, Any]) -> list[Any]:
        recorded = self.recorded.ids(kind)
        return [o for i, o in sorted(objects.items()) if i not in recorded and self._made_since(o.created_at)]

    @property
    def gone_vms(self) -> list[VmRecord]:
        return self._gone("vm", self.current.vms)

    @property
    def gone_volumes(self) -> list[VolumeRecord]:
        return self._gone("volume", self.current.volumes)

    @property
    def gone_networks(self) -> list[Network]:
        new = self.gone_tenant_ids
        return [n for n in self._gone("network", self.current.networks) if n.owner_tenant_id not in new]

    @property
    def gone_tenant_ids(self) -> set[str]:
        return {t.id for t in self._gone("tenant", self.current.tenants)}

    @property
    def gone_tenants(self) -> list[Tenant]:
        """The topmost tenants created since (deleting one deletes its subtree)."""
        new = self.gone_tenant_ids
        return [t for i, t in sorted(self.current.tenants.items()) if i in new and t.parent_id not in new]

    @property
    def stopped_vms(self) -> list[VmRecord]:
        """The VMs a rebuild powers off if they run: those it puts back and those it removes. Others (left
        out of a partial snapshot, made after the restore began) run on."""
        touched = self.recorded.ids("vm") | {vm.id for vm in self.gone_vms}
        return [record for i, record in sorted(self.current.vms.items()) if i in touched]

    def needs(self) -> list[Need]:
        """The guards of everything the rebuild touches (recorded ids too: nothing may make them meanwhile),
        and of the snapshots it deletes with what goes: one being read (a restore as new, an extract) is
        refused here, before anything changes, not half-way."""
        kinds: dict[str, dict[str, Any]] = {
            "tenant": self.current.tenants,
            "vm": self.current.vms,
            "volume": self.current.volumes,
        }
        found = {(kind, i) for kind, objects in kinds.items() for i in objects}
        found |= {(kind, i) for kind in kinds for i in self.recorded.ids(kind)}
        found |= {("snapshot", snap.id) for snap in self.doomed}
        return [exclusive(kind, i) for kind, i in sorted(found)]


_OFF = (VMState.SHUTOFF, VMState.OTHER)  # what a rebuild does not power off


def _set_tags(uow: Unit, kind: TagKind, object_id: str, tags: Iterable[str]) -> None:
    uow.tags.remove(kind, object_id)
    for tag in tags:
        uow.tags.add(kind, object_id, tag)


class Rebuild:
    def __init__(
        self,
        db: Database,
        pool: Pool,
        host: Hypervisor,
        audit: Audit,
        guards: Guards,
        intents: Intents,
        freeing: Freeing,
        services: tuple[VMs, Volumes, Networks, Tenants, Snapshots],
        kinds: tuple[VmKind, VolumeKind],
        put_back: PutBack,
    ) -> None:
        self._db = db
        self._pool = pool
        self._host = host
        self._audit = audit
        self._guards = guards
        self._intents = intents
        self._freeing = freeing
        self._vms, self._volumes, self._networks, self._tenants, self._snapshots = services
        self._vm_kind, self._volume_kind = kinds
        self._put_back = put_back  # the profile service's: a tenant's recorded profile comes back with it

    def manifest(self, snap: Snapshot) -> Manifest:
        return Manifest.from_bytes(self._pool.read_manifest(snap.id))

    # --- reading ---------------------------------------------------------------------------------------
    def _current(self, recorded: Recorded) -> Current:
        root, selection = recorded.root, recorded.selection
        with self._db.unit() as uow:
            if root is not None:
                try:
                    uow.tenants.get(root)
                except NotFound:
                    return Current({}, {}, {}, {})
                ids = uow.tenants.subtree_ids(root)
                tenants = {t.id: t for t in uow.tenants.visible() if t.id in ids}
            else:
                tenants = {t.id: t for t in uow.tenants.visible()}
            owners: set[str | None] = set(tenants) | ({None} if root is None else set())
            estate = read_estate(uow, root, selection, self._vm_kind, self._volume_kind)
            vm_ids = {s.id for s in estate.vms} | recorded.ids("vm")
            volume_ids = {s.id for s in estate.volumes} | recorded.ids("volume")
            return Current(
                tenants=tenants,
                networks={n.id: n for n in uow.networks.list() if n.owner_tenant_id in owners},
                vms={v.id: v for v in uow.vms.list() if v.id in vm_ids and v.owner_tenant_id in owners},
                volumes={v.id: v for v in uow.volumes.list() if v.id in volume_ids and v.owner_tenant_id in owners},
            )

    def exists(self, tenant_id: str) -> bool:
        with self._db.unit() as uow:
            try:
                uow.tenants.get(tenant_id)
            except NotFound:
                return False
            return True

    def running(self, root: str) -> list[str]:
        """The names of the VMs of the subtree of ``root`` that run now (none if the tenant is gone)."""
        with self._db.unit() as uow:
            try:
                ids = uow.tenants.subtree_ids(root)
            except NotFound:
                return []
            records = [v for v in uow.vms.list() if v.owner_tenant_id in ids]
        return sorted(r.name for r in records if self._state(r) is VMState.RUNNING)

    def _state(self, record: VmRecord) -> VMState:
        domain = record.domain_name
        return self._host.state(domain) if self._host.exists(domain) else VMState.SHUTOFF

    # --- in place --------------------------------------------------------------------------------------
    def check_over(
        self, snap: Snapshot, manifest: Manifest, root: str | None, who: Principal, until: datetime | None = None
    ) -> Changes:
        """Everything that can refuse the rebuild, before anything changes; what it will remove (of what
        was made before ``until``, when the restore began)."""
        recorded = Recorded.of(manifest, root)
        if not self._pool.has_snapshot(snap.id):
            raise SnapshotNotReady(f"snapshot {snap.name!r} has no data in the pool", snapshot=snap.id)
        changes = Changes(recorded, self._current(recorded), snap.created_at, until)
        parent = recorded.parent_of_root()
        with self._db.unit() as uow:
            if root is not None and not changes.current.tenants and parent is not None:
                try:
                    uow.tenants.get(parent)
                except NotFound:
                    raise NotFound(
                        f"the parent of tenant {root!r} no longer exists; restore its parent first", tenant=root
                    ) from None
            self._check_names(uow, changes, who)
            self._check_networks(uow, changes, who)
        for obj in recorded.tenants:
            if obj.owner_tenant_id is None and obj.id not in changes.current.tenants and not who.may(Role.ADMIN):
                raise Forbidden(
                    f"tenant {obj.name!r} comes back at the top (under the system): a restore that makes it "
                    f"again needs an admin; token {who.name!r} has role {who.role}",
                    tenant=obj.name,
                )
        doomed: list[Snapshot] = []
        for vm in changes.gone_vms:
            doomed += self._snapshots.listing(vm.id, "vm", who=SYSTEM)
        for volume in changes.gone_volumes:
            doomed += self._snapshots.listing(volume.id, "volume", who=SYSTEM)
        for snapshot in doomed:
            self._snapshots.check_deletable(snapshot, who)
        for tenant in changes.gone_tenants:
            plan = self._tenants.subtree(SYSTEM, tenant.id)
            self._tenants.check_may_delete(who, plan, force=True)
            doomed += plan.snapshots
        return replace(changes, doomed=tuple(doomed))

    def effects(self, changes: Changes) -> Effects:
        """What :meth:`over` will do with ``changes``, named for the operator who confirms it."""
        recorded, current = changes.recorded, changes.current
        now: dict[str, dict[str, Any]] = {
            "tenant": current.tenants,
            "network": current.networks,
            "volume": current.volumes,
            "vm": current.vms,
        }
        objects = [*recorded.tenants, *recorded.networks, *recorded.volumes, *recorded.vms]
        gone: dict[str, list[Any]] = {
            "tenant": changes.gone_tenants,  # with everything in them
            "network": changes.gone_networks,
            "volume": changes.gone_volumes,
            "vm": changes.gone_vms,
        }
        return Effects(
            overwritten=tuple((o.type, o.name) for o in objects if o.id in now[o.type]),
            brought_back=tuple((o.type, o.name) for o in objects if o.id not in now[o.type]),
            removed=tuple((kind, g.name) for kind, objects in gone.items() for g in objects),
            stopped=tuple(sorted(("vm", r.name) for r in changes.stopped_vms if self._state(r) not in _OFF)),
            started=tuple(sorted(("vm", o.name) for o in recorded.vms if o.config.get("running"))),
        )

    def _check_names(self, uow: Unit, changes: Changes, who: Principal) -> None:
        """A recorded object comes back under its recorded name: refused if an object the rebuild leaves
        alone has it now (what was created since goes first, and recorded objects get their names back).
        A tenant restoring itself keeps its own name (its row is its parent's), so it is not checked. Left
        alone is everything neither recorded nor made since: what a partial snapshot does not hold, what was
        made after the restore began."""
        recorded = changes.recorded
        touched = {vm.id for vm in changes.gone_vms} | {volume.id for volume in changes.gone_volumes}
        touched |= {network.id for network in changes.gone_networks} | changes.gone_tenant_ids
        touched |= {o.id for o in (*recorded.tenants, *recorded.vms, *recorded.volumes, *recorded.networks)}
        finders: list[tuple[str, Iterable[ManifestObject], Callable[[str, str | None], Any]]] = [
            ("VM", recorded.vms, uow.vms.find),
            ("volume", recorded.volumes, uow.volumes.find),
            ("network", recorded.networks, uow.networks.find),
            ("tenant", [t for t in recorded.tenants if t.id != who.tenant_id], uow.tenants.find),
        ]
        for what, objects, find in finders:
            for obj in objects:
                found = find(obj.name, obj.owner_tenant_id)
                if found is not None and found.id != obj.id and found.id not in touched:
                    raise NameClash(
                        f"a {what} named {obj.name!r} exists now outside what the snapshot restores; rename it first",
                        name=obj.name,
                    )

    def _check_networks(self, uow: Unit, changes: Changes, who: Principal) -> None:
        """Recorded ranges must not overlap networks that stay (those outside the caller's scope are not
        named); networks that go must not be in use by VMs that stay, nor networks whose range changes by
        VMs that stay and run."""
        touched = set(changes.current.networks) | changes.recorded.ids("network")
        with self._db.unit(who) as scoped:
            seen = {n.id for n in scoped.networks.list()}
        staying = [n for n in uow.networks.every() if n.id not in touched]
        named = [definition(n) for n in staying if n.id in seen]
        unseen = [definition(n) for n in staying if n.id not in seen]
        for obj in changes.recorded.networks:
            check_disjoint(NetworkDef(obj.name, obj.config["cidr"], obj.config["dhcp"]), named, unseen)
        gone = {n.id: n for n in changes.gone_networks}
        moved = {
            o.id: o for o in changes.recorded.networks if self._range_changed(o, changes.current.networks.get(o.id))
        }
        stopped = {vm.id for vm in changes.stopped_vms}  # every other VM runs on as it is: checked
        for record in uow.vms.list():
            if record.id in stopped or record.owner_tenant_id in changes.gone_tenant_ids:
                continue
            for nic in record.spec.get("nics", ()):
                network = gone.get(nic.get("network_id"))
                if network is not None:
                    raise NetworkInUse(
                        f"network {network.name!r} was created after the snapshot but VM {record.name!r}, "
                        "which the restore leaves alone, uses it",
                        network=network.name,
                        vms=[record.name],
                    )
                back = moved.get(nic.get("network_id"))
                if back is not None and self._state(record) not in _OFF:
                    raise NetworkInUse(
                        f"network {back.name!r} gets its recorded range back, but VM {record.name!r}, which the "
                        "restore leaves alone, runs on it: power it off first",
                        network=back.name,
                        vms=[record.name],
                    )

    def over(
        self, snap: Snapshot, manifest: Manifest, root: str | None, who: Principal, until: datetime | None = None
    ) -> dict[str, int]:
        """Rebuild the subtree of ``root`` as ``snap`` recorded it (see the module docstring); ``until``: when
        the restore began (what was made after it stays)."""
        with self._claimed(snap, manifest, root, who, until) as changes:
            record = {
                "snapshot": snap.id,
                "root": root,
                "until": until.isoformat() if until else None,
                "by": [who.name, str(who.role), who.tenant_id],
            }
            intent = self._intents.make(IntentKind.REBUILD, str(uuid.uuid4()), record)
            try:
                counts = self._apply(snap, changes.recorded, who, report_progress, until)
            except Exception as exc:
                self._abandon(intent, snap, root, who, exc)
                raise
            self._release_covered(changes.recorded, intent)
        with self._db.unit() as uow:
            detail = f"{from_snapshot(snap, root)}: " + ", ".join(f"{v} {k}" for k, v in counts.items())
            target = f"tenant:{root}" if root else "system"
            self._audit.done(uow, who, "rebuild", target, detail, owner=root)
        return counts

    @contextmanager
    def _claimed(
        self, snap: Snapshot, manifest: Manifest, root: str | None, who: Principal, until: datetime | None
    ) -> Iterator[Changes]:
        """The changes, checked; then the guards of all they touch, claimed; then checked again, now that
        nothing can change them, and what a take that ended in between added (a snapshot of what goes)
        claimed too: every refusal comes before anything changes."""
        changes = self.check_over(snap, manifest, root, who, until)
        with self._guards.claim("snapshot.restore", changes.needs()):
            changes = self.check_over(snap, manifest, root, who, until)
            with self._guards.claim("snapshot.restore", changes.needs()):
                yield changes

    def _abandon(self, intent: Intent, snap: Snapshot, root: str | None, who: Principal, exc: Exception) -> None:
        """A rebuild that failed in its job (the process lives on) is not finished at the next start: the
        caller saw the failure and may have carried on since. Its intent goes; the audit log and the job say
        that the subtree is partly restored (restore again, or undo through the pre-restore snapshot)."""
        self._intents.release(intent)
        reason = exc.message if isinstance(exc, SnapkeepError) else repr(exc)
        with self._db.unit() as uow:
            target = f"tenant:{root}" if root else "system"
            detail = f"{from_snapshot(snap, root)}, partly done: {reason}"
            self._audit.failed(uow, who, "rebuild", target, detail, owner=root)

    def _release_covered(self, recorded: Recorded, intent: Intent) -> None:
        """The rebuild is done: its intent goes, and so do those of earlier rebuilds of the same subtree or
        of a part of it that failed half-way in their job (left to be finished at the next start): what
        this rebuild made is what the caller wants now, not what they would have made."""
        within = recorded.ids("tenant")
        for other in self._intents.listing(IntentKind.REBUILD):
            try:
                root = other.read()["root"]
            except (OSError, ValueError):
                continue
            if other.path == intent.path or recorded.root is None or root in within:
                self._intents.release(other)

    def resume(self) -> list[str]:
        """Roll forward the rebuilds a crash interrupted (at start, before requests): each one again from
        the start, which does what is left. One that fails again is left for the next start, logged."""
        done = []
        for intent in self._intents.listing(IntentKind.REBUILD):
            try:
                self._resume(intent)
            except SnapkeepError as exc:
                log.error("rebuild %s could not be completed: %s", intent.op_id, exc.message)
                continue
            self._intents.release(intent)
            done.append(intent.op_id)
        return done

    def _resume(self, intent: Intent) -> None:
        record = intent.read()
        with self._db.unit() as uow:
            snap = uow.snapshots.get(record["snapshot"])
        recorded = Recorded.of(self.manifest(snap), record["root"])
        until = datetime.fromisoformat(record["until"]) if record.get("until") else None
        name, role, tenant = record.get("by") or [SYSTEM.name, str(SYSTEM.role), None]
        self._apply(snap, recorded, Principal(name, Role(role), tenant), lambda _f, _m: None, until)
        with self._db.unit() as uow:
            detail = f"{from_snapshot(snap, record['root'])} after a restart"
            self._audit.done(uow, SYSTEM, "rebuild", "resumed", detail, owner=record["root"])

    def _apply(
        self, snap: Snapshot, recorded: Recorded, who: Principal, progress: Report, until: datetime | None
    ) -> dict[str, int]:
        changes = Changes(recorded, self._current(recorded), snap.created_at, until)
        current = changes.current
        progress(0.2, "stopping the VMs")
        for record in changes.stopped_vms:
            if self._state(record) not in _OFF:
                self._host.power_off(record.domain_name)
        progress(0.3, "removing what was created after the snapshot")
        for vm in changes.gone_vms:
            self._vms.delete(vm.id, self._snapshots, True, who=who)
        for volume in changes.gone_volumes:
            self._volumes.delete(volume.id, self._snapshots, who=who)
        for tenant in changes.gone_tenants:
            self._tenants.delete(who, tenant.id, force=True)
        progress(0.4, "tenants")
        self._names_out_of_the_way(recorded, current, who)
        self._tenants_back(recorded, current, who)
        progress(0.5, "volumes")
        for obj in recorded.volumes:
            self._volume_back(snap, obj, current.volumes.get(obj.id), who)
        progress(0.7, "VMs")
        for obj in recorded.vms:
            self._vm_back(snap, obj, current.vms.get(obj.id), who)
        progress(0.8, "networks and settings")
        for network in changes.gone_networks:
            self._networks.delete(who, network.id)
        self._ranges_back(recorded, current)
        for obj in recorded.networks:
            self._network_back(obj, obj.id in current.networks, who)
        with self._db.unit() as uow:
            for obj in recorded.settings:
                uow.settings.replace(obj.owner_tenant_id, self._settings_back(uow, obj, who))
        for obj in recorded.settings:
            if obj.owner_tenant_id is None:  # the whole system's: with the profile assigned to the system
                put_back_profile(self._put_back, obj, SubjectOfProfile.SYSTEM, WHOLE_SYSTEM, who)
        progress(0.9, "starting the VMs that ran")
        for obj in recorded.vms:
            if obj.config.get("running"):
                self._vms.start(obj.id, who=who)
        self._freeing.wake()
        return {
            "tenants": len(recorded.tenants),
            "networks": len(recorded.networks),
            "volumes": len(recorded.volumes),
            "vms": len(recorded.vms),
            "removed": len(changes.gone_vms) + len(changes.gone_volumes) + len(changes.gone_tenants),
        }

    @staticmethod
    def _settings_back(uow: Unit, obj: ManifestObject, who: Principal) -> dict[str, Any]:
        """The recorded document; a tenant restoring its own keeps what its parent decides for it now
        (``expose_snapshots``): a restore must not undo its parent's choice."""
        document = dict(obj.config["document"])
        if obj.owner_tenant_id is None or obj.owner_tenant_id != who.tenant_id:
            return document
        now = uow.settings.document(obj.owner_tenant_id)
        for key in PARENT_DECIDES:
            document.pop(key, None)
            if key in now:
                document[key] = now[key]
        return document

    def _names_out_of_the_way(self, recorded: Recorded, current: Current, who: Principal) -> None:
        """Objects that swapped names since (a → b, b → a) would clash half-way as each gets its recorded
        name back: every object whose name changed first takes a name of its own (from its id), in one
        unit. Objects left alone cannot hold a recorded name (checked first), and what was created since is
        gone by now, so the recorded names are then free."""
        with self._db.unit() as uow:
            kinds: list[tuple[tuple[ManifestObject, ...], dict[str, Any], Any]] = [
                (recorded.tenants, current.tenants, uow.tenants),
                (recorded.volumes, current.volumes, uow.volumes),
                (recorded.vms, current.vms, uow.vms),
                (recorded.networks, current.networks, uow.networks),
            ]
            for objects, now, store in kinds:
                for obj in objects:
                    there = now.get(obj.id)
                    if there is not None and there.name != obj.name and obj.id != who.tenant_id:
                        store.update(obj.id, name=f"restoring-{obj.id}")

    def _tenants_back(self, recorded: Recorded, current: Current, who: Principal) -> None:
        """Each recorded tenant, parents first: made again with its users and profiles if it is gone
        (:mod:`.tenant_own`), else its row put back; then the profile of its own system snapshots (owned by
        it or by a parent, so back by now)."""
        for obj in recorded.tenants:
            if obj.id == who.tenant_id:
                continue  # a tenant restoring itself: its own row (name, tags, profile) is its parent's
            if obj.id not in current.tenants:
                self._tenants.create(
                    who,
                    obj.name,
                    description=obj.config["description"],
                    parent=obj.owner_tenant_id,
                    tags=obj.config["tags"],
                    new_id=obj.id,
                    also=partial(self._own_back, obj, recorded.own_of(obj.id), who),
                )
            else:
                with self._db.unit() as uow:
                    uow.tenants.update(obj.id, name=obj.name, description=obj.config["description"])
                    _set_tags(uow, TagKind.TENANT, obj.id, obj.config["tags"])
            put_back_profile(self._put_back, obj, SubjectOfProfile.TENANT, obj.id, who)

    def _own_back(self, tenant: ManifestObject, own: tuple[ManifestObject, ...], who: Principal, uow: Unit) -> None:
        for name, why_not in tenant_own.bring_back(uow, own, users=who.may(Role.ADMIN)):
            if why_not:
                detail = f"tenant {tenant.name!r} came back without it: {why_not}"
                self._audit.failed(uow, who, "user.restore", f"user:{name}", detail, owner=tenant.id)
            else:
                detail = f"with tenant {tenant.name!r}"
                self._audit.done(uow, who, "user.restore", f"user:{name}", detail, owner=tenant.id)

    def _fresh_dataset(self, dataset: str) -> None:
        """A dataset named for a recorded object with no catalog row: half-made by an interrupted rebuild
        (ids are UUIDs, so nothing else has that name); removed before it is made again."""
        if dataset in self._pool.list_datasets():
            log.warning("removing %s, left half-made by an interrupted rebuild", dataset)
            self._pool.destroy_dataset(dataset)

    def _volume_back(self, snap: Snapshot, obj: ManifestObject, now: VolumeRecord | None, who: Principal) -> None:
        config, dataset = obj.config, obj.datasets[0]
        if now is None:
            self._fresh_dataset(f"volume-{obj.id}")
            self._volumes.create_from_snapshot(
                obj.name,
                snap.id,
                dataset,
                size_limit=int(config["size_limit"]),
                description=str(config["description"]),
                settings=dict(config["settings"]),
                who=who,
                tenant=obj.owner_tenant_id,
                tags=config.get("tags", ()),
                new_id=obj.id,
            )
            self._volume_kind.bring_back_profile(obj, obj.id, who)
            return
        op_id = f"rebuild-{uuid.uuid4()}"
        self._pool.swap_in_snapshot(snap.id, now.dataset, op_id)
        self._pool.retire(op_id)
        self._pool.set_size_limit(now.dataset, int(config["size_limit"]))
        with self._db.unit() as uow:
            uow.volumes.update(
                obj.id,
                name=obj.name,
                description=str(config["description"]),
                size_limit=int(config["size_limit"]),
                settings=dict(config["settings"]),
            )
            _set_tags(uow, TagKind.VOLUME, obj.id, config.get("tags", ()))
        self._volume_kind.bring_back_profile(obj, obj.id, who)

    def _vm_back(self, snap: Snapshot, obj: ManifestObject, now: VmRecord | None, who: Principal) -> None:
        config, dataset = obj.config, obj.datasets[0]
        if now is None:
            self._fresh_dataset(f"vm-{obj.id}")

            def clone(new_dataset: str) -> None:
                self._pool.clone_dataset(snap.id, dataset, new_dataset)

            self._vms.create_with(
                obj.name,
                VMConfig.model_validate(config["vm"]),
                clone,
                description=str(config["description"]),
                quiesce_policy=QuiescePolicy(str(config["quiesce_policy"])),
                agent_timeout=float(config["agent_timeout"]),
                who=who,
                owner_tenant_id=obj.owner_tenant_id,
                tags=config.get("tags", ()),
                new_id=obj.id,
                new_domain_uuid=str(config["domain_uuid"]),
            )
            self._vm_kind.bring_back_profile(obj, obj.id, who)
            return
        op_id = f"rebuild-{uuid.uuid4()}"
        self._pool.swap_in_snapshot(snap.id, now.dataset, op_id)
        self._pool.retire(op_id)
        with self._db.unit() as uow:
            record = uow.vms.update(
                obj.id,
                name=obj.name,
                description=str(config["description"]),
                spec=dict(config["vm"]),
                quiesce_policy=QuiescePolicy(str(config["quiesce_policy"])),
                agent_timeout=float(config["agent_timeout"]),
            )
            _set_tags(uow, TagKind.VM, obj.id, config.get("tags", ()))
            self._host.define(self._vms.spec(record))
        self._vm_kind.bring_back_profile(obj, obj.id, who)

    @staticmethod
    def _range_changed(obj: ManifestObject, now: Network | None) -> bool:
        return now is not None and (now.cidr, now.dhcp) != (obj.config["cidr"], obj.config["dhcp"])

    def _ranges_back(self, recorded: Recorded, current: Current) -> None:
        """Networks whose range changed since get theirs back together: one by one, ranges swapped among
        them would overlap half-way. Their host networks go first (no VM runs on them: checked first), then
        their rows change in one unit; a VM that starts makes its network again, as recorded."""
        changed = [obj for obj in recorded.networks if self._range_changed(obj, current.networks.get(obj.id))]
        for obj in changed:
            self._host.remove_network(libvirt_network_name(obj.id))
        with self._db.unit() as uow:
            for obj in changed:
                uow.networks.update(obj.id, cidr=obj.config["cidr"], dhcp=obj.config["dhcp"])

    def _network_back(self, obj: ManifestObject, exists: bool, who: Principal) -> None:
        config = obj.config
        if exists:
            self._networks.update(
                who, obj.id, name=obj.name, description=config["description"], cidr=config["cidr"], dhcp=config["dhcp"]
            )
            return
        self._networks.create(
            who,
            obj.name,
            config["cidr"],
            dhcp=config["dhcp"],
            description=config["description"],
            tenant=obj.owner_tenant_id,
            new_id=obj.id,
        )
