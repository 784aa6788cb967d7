"""What every kind of subject says about itself: how to find one, what must hold still to capture it, what
a snapshot records of it, and how to restore it over itself or as a new one.

The snapshot and restore services hold the rules common to every kind (names, guards, the pre-restore
snapshot, checking before changing); a kind holds only what differs. A new level of snapshot is a new module
in this package, registered in :mod:`snapkeep.services.container`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from snapkeep.catalog.stores import Unit
from snapkeep.engine.capture import Holding
from snapkeep.errors import InvalidInput, NotFound
from snapkeep.model.manifest import Manifest, ManifestObject
from snapkeep.model.principal import Principal
from snapkeep.model.selection import FULL, Selection
from snapkeep.model.types import QuiescePolicy, RestoreMode, Snapshot, SnapshotKind, SubjectType
from snapkeep.storage.pool import Pool

WHOLE_SYSTEM = "system"  # the subject id (and ref) of a snapshot of the whole system


@dataclass(frozen=True)
class Subject:
    type: SubjectType
    id: str
    name: str
    owner_tenant_id: str | None
    datasets: tuple[str, ...]
    config: dict[str, Any]
    quiesce_policy: QuiescePolicy = QuiescePolicy.FALLBACK  # when the request does not say
    members: tuple[tuple[str, str, str], ...] = ()  # (type, id, name) of the objects a capture also holds

    def manifest_object(self) -> ManifestObject:
        """The subject as a snapshot's manifest records it."""
        return ManifestObject(
            type=self.type.value,
            id=self.id,
            name=self.name,
            owner_tenant_id=self.owner_tenant_id,
            config=self.config,
            datasets=list(self.datasets),
        )


@dataclass(frozen=True)
class RestoreOptions:
    """How to restore; each kind refuses the options that do not apply to it."""

    as_new: bool = False
    name: str | None = None  # as new: the new object's name (default: the kind's rule)
    mode: RestoreMode = RestoreMode.DATA  # volumes over the source: data only, or data and settings
    pre_restore: bool = True  # over the source: take a safety snapshot first
    power_off: bool = False  # VMs over the source: stop a running VM instead of refusing
    preserve_macs: bool = False  # VMs as new: keep the MAC addresses
    member_type: SubjectType | None = None  # one object out of a system or tenant snapshot: its type
    member: str | None = None  # … and its id or name in the snapshot
    started_at: datetime | None = None  # set by the restore service: what is made after it is left alone


Named = tuple[str, str]  # (type, name) of an object, as an operator reads it


@dataclass(frozen=True)
class Effects:
    """What a restore over the source will change, as its checks found it: what the confirmation names
    before the operator presses the button (the restore checks again when it runs)."""

    overwritten: tuple[Named, ...]  # there now and in the snapshot: put back as recorded
    removed: tuple[Named, ...] = ()  # made since the snapshot: deleted, with their own snapshots
    brought_back: tuple[Named, ...] = ()  # deleted since: made again as recorded
    stopped: tuple[Named, ...] = ()  # VMs that run now and are powered off for the restore
    started: tuple[Named, ...] = ()  # VMs that ran at the snapshot: started again after it

    @classmethod
    def over(cls, source: ManifestObject, name: str) -> Effects:
        """One object overwritten (a VM or volume restored over itself)."""
        return cls(overwritten=((source.type, name),))


class SubjectKind(Protocol):
    type: SubjectType
    snapshot_kind: SnapshotKind
    keeps_failed_takes: bool  # a failed take leaves a ``failed`` row with the reason, or nothing

    def resolve(self, uow: Unit, ref: str, selection: Selection = FULL) -> Subject:
        """The subject by id or name; :class:`NotFound` if there is none (or the unit's scope hides it).
        ``selection`` narrows what a system or tenant snapshot holds; other kinds refuse a partial one."""
        ...

    def holds(self, subject: Subject, quiesce: bool, snap_id: str) -> Holding:
        """What must hold still, in acquisition order, to capture ``subject`` (quiesced if asked)."""
        ...

    def manifest_objects(self, subject: Subject, holding: Holding) -> list[ManifestObject]:
        """What a snapshot of ``subject`` records: the subject first, then any member it holds
        (``holding``: what :meth:`holds` chose for the capture)."""
        ...

    def check_options(self, options: RestoreOptions) -> None:
        """Refuse (:class:`InvalidInput`) options that mean nothing for this kind."""
        ...

    def check_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> Effects:
        """Everything a restore over the source can check before changing anything (it still exists, it
        is off, what the snapshot would bring back fits…); raises the error the caller should see, or
        says what the restore will change."""
        ...

    def restore_over(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        """Put the snapshot's data (and configuration) in place of the source's; the source's id."""
        ...

    def new_name(self, snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str:
        """The name a restore as new will use (the given one or the kind's default), refused if taken."""
        ...

    def restore_as_new(
        self, snap: Snapshot, source: ManifestObject, name: str, options: RestoreOptions, who: Principal
    ) -> tuple[str, str]:
        """A new object from the snapshot; its id and name."""
        ...


def refuse_partial(selection: Selection, subject_type: SubjectType) -> None:
    """Tags pick the members of system and tenant snapshots; a snapshot of one object has none to pick."""
    if not selection.full:
        raise InvalidInput(f"a {subject_type} snapshot cannot be partial; tags select within system snapshots")


def require_owner(uow: Unit, pool: Pool, snap: Snapshot, source: ManifestObject) -> None:
    """An object restored as new belongs where the original did: that tenant must still be there (else
    :class:`NotFound` naming it as the snapshot recorded it, so the caller knows what to restore first)."""
    owner = source.owner_tenant_id
    if owner is None:
        return
    try:
        uow.tenants.get(owner)
    except NotFound:
        name = recorded_name(pool, snap, "tenant", owner)
        raise NotFound(
            f"tenant {name!r}, where {source.type} {source.name!r} belonged, no longer exists; restore it first",
            tenant=name,
        ) from None


def recorded_name(pool: Pool, snap: Snapshot, object_type: str, object_id: str) -> str:
    """The name ``snap`` recorded for an object that is gone now (its id if the snapshot did not hold it)."""
    recorded = Manifest.from_bytes(pool.read_manifest(snap.id)).objects
    return next((o.name for o in recorded if o.type == object_type and o.id == object_id), object_id)
