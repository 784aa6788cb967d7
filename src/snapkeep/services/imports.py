"""One VM's (or volume's) state out of a system or tenant snapshot, imported as a snapshot of that object
(SPEC §3): from then on it is listed, restored, cloned and deleted like any VM or volume snapshot.

The import copies the member's datasets out of the system snapshot (a reflink or subvolume snapshot: cost
by metadata, as a take) into a new snapshot of the object, which keeps the instant it was captured at
(``created_at`` and the paused window of the system snapshot) and its expiry while that is ahead. It is a
snapshot of its own, not of the source's profile period: no period's minimum holds or counts it. So one
imported from a source already past its expiry (``held`` by its period's minimum) never expires: it was
asked for, and the next sweep must not delete it. The object must still exist: a deleted one is restored
as new instead. It holds the object (a new snapshot of it appears) and
reads the system snapshot (shared), like a restore.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from snapkeep.catalog.db import Database
from snapkeep.errors import InvalidInput, NotFound
from snapkeep.model.manifest import Manifest, ManifestSnapshot
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import Job, Snapshot, SnapshotKind, SnapshotStatus, SubjectType
from snapkeep.services.audit import Audit, from_snapshot
from snapkeep.services.guards import Claim, exclusive, shared
from snapkeep.services.jobs import JobRunner, Progress
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.subjects import Subject
from snapkeep.storage.pool import Pool

ORIGIN = "imported"


class Imports:
    def __init__(
        self,
        db: Database,
        pool: Pool,
        audit: Audit,
        snapshots: Snapshots,
        jobs: JobRunner,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._clock = clock
        self._pool = pool
        self._audit = audit
        self._snapshots = snapshots
        self._jobs = jobs

    def submit(
        self, snap_id: str, member_type: SubjectType, ref: str, name: str | None = None, *, who: Principal
    ) -> Job:
        """:meth:`run` as a job, refused at once (changing nothing) if anything is wrong or busy."""
        who.require(Role.OPERATOR)
        with self._claim(snap_id, member_type, ref, name, who) as claim:
            _source, subject, name = self._plan(snap_id, member_type, ref, name, who)

            def run(_progress: Progress) -> dict[str, object]:
                made = self.run(snap_id, member_type, ref, name, who=who)
                return {"snapshot": self._snapshots.as_json(made, subject.owner_tenant_id)}

            params = {"snapshot": snap_id, str(member_type): subject.name, "name": name}
            return self._jobs.submit(
                "snapshot.import", params, run, claim=claim, owner_tenant_id=subject.owner_tenant_id
            )

    def run(
        self, snap_id: str, member_type: SubjectType, ref: str, name: str | None = None, *, who: Principal
    ) -> Snapshot:
        """A new snapshot of the VM or volume ``ref`` holding its state in system snapshot ``snap_id``."""
        who.require(Role.OPERATOR)
        with self._claim(snap_id, member_type, ref, name, who):
            source, subject, name = self._plan(snap_id, member_type, ref, name, who)
            member = self._snapshots.manifest(snap_id).member(str(member_type), ref, who.tenant_id)
            kind = self._snapshots.kind(subject.type)
            self._snapshots.replace_failed(subject, name, who)  # a failed take's or import's row keeps no name
            snap = replace(
                source,
                id=str(uuid.uuid4()),
                kind=kind.snapshot_kind,
                subject_type=subject.type,
                subject_id=subject.id,
                subject_name=subject.name,
                owner_tenant_id=subject.owner_tenant_id,
                name=name,
                description=f"imported from {source.kind} snapshot {source.name!r}",
                origin=ORIGIN,
                immutable=False,
                unlocked_at=None,
                private=False,
                expires_at=_still_ahead(source.expires_at, self._clock()),
                period_id=None,
                status=SnapshotStatus.CREATING,
                status_reason=None,
                exclusive_bytes=None,
                shared_bytes=None,
            )
            with self._db.unit(who) as uow:
                uow.snapshots.insert(snap)
            try:
                for dataset in member.datasets:
                    self._pool.capture_from_snapshot(snap_id, dataset, snap.id)
                manifest = Manifest.written(_described(snap), [member])
                self._pool.seal(snap.id, manifest.to_bytes())
            except BaseException:
                self._pool.discard(snap.id)
                with self._db.unit() as uow:
                    uow.snapshots.delete(snap.id)
                raise
            with self._db.unit() as uow:
                done = uow.snapshots.update(snap.id, status=SnapshotStatus.READY)
                target = f"{subject.type}:{subject.name}/{name}"
                owner = done.owner_tenant_id
                self._audit.done(uow, who, "snapshot.import", target, from_snapshot(source, owner), owner=owner)
                return done

    def _plan(
        self, snap_id: str, member_type: SubjectType, ref: str, name: str | None, who: Principal
    ) -> tuple[Snapshot, Subject, str]:
        """The system snapshot, the object as it is now, and the new snapshot's name (the system
        snapshot's unless given), everything checked."""
        if member_type not in (SubjectType.VM, SubjectType.VOLUME):
            raise InvalidInput("a VM or a volume is imported out of a system snapshot", member_type=str(member_type))
        source = self._snapshots.restorable(snap_id, who)
        if source.kind not in (SnapshotKind.SYSTEM, SnapshotKind.TENANT):
            raise InvalidInput(f"snapshot {source.name!r} is a {source.kind} snapshot; import from a system one")
        member = self._snapshots.manifest(snap_id).member(str(member_type), ref, who.tenant_id)
        try:
            subject = self._snapshots.subject(member.type, member.id, who)
        except NotFound as exc:
            raise NotFound(
                f"{member.type} {member.name!r} no longer exists; restore it out of the snapshot as a new one",
                **{member.type: member.name},
            ) from exc
        name = name or source.name
        self._snapshots.check_free_name(subject, name)
        return source, subject, name

    def _claim(self, snap_id: str, member_type: SubjectType, ref: str, name: str | None, who: Principal) -> Claim:
        source, subject, _name = self._plan(snap_id, member_type, ref, name, who)
        needs = [shared("snapshot", source.id, source.name), exclusive(subject.type, subject.id, subject.name)]
        return self._snapshots.guards.claim("snapshot.import", needs)


def _still_ahead(expires_at: datetime | None, now: datetime) -> datetime | None:
    """The source's expiry if it has not passed; else none (see the module docstring)."""
    return expires_at if expires_at is not None and expires_at > now else None


def _described(snap: Snapshot) -> ManifestSnapshot:
    return ManifestSnapshot(
        id=snap.id,
        kind=snap.kind.value,
        name=snap.name,
        description=snap.description,
        subject_type=snap.subject_type,
        subject_id=snap.subject_id,
        created_at=snap.created_at,
        expires_at=snap.expires_at,
        origin=snap.origin,
        quiesced=snap.quiesced,
        quiesce_note=snap.quiesce_note,
        immutable=snap.immutable,
        private=snap.private,
    )
