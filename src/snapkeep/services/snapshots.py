"""Snapshots of any subject: take, list, show, delete, immutability locks, the expiry sweep, space.

Taking one is two-phase: the row is written ``creating`` first, the pool capture and manifest second,
the row finalised ``ready`` last; the reconciler settles whatever a crash leaves in between. What a
subject is (a volume, a VM) and what must hold still to capture it comes from its
:class:`~snapkeep.services.subjects.SubjectKind`. Every operation here holds its guards
(:mod:`snapkeep.services.guards`): a take its subject, a delete the snapshot, a restore the snapshot it
reads (shared) and, over the source, the subject it replaces.

Every method that acts for someone takes the caller (``who``) and checks its role first (the table in
:mod:`snapkeep.services`); lookups go through the catalog in the caller's scope, so a snapshot or subject
outside it is :class:`NotFound`. The ``submit_*`` methods claim and check synchronously, then run the
operation as a job (:class:`~snapkeep.services.jobs.JobRunner`) owned by the subject's owner.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.engine.capture import CaptureReport, Holding, capture
from snapkeep.errors import (
    Busy,
    Forbidden,
    InvalidExpiry,
    InvalidInput,
    NameClash,
    NotFound,
    QuiesceFailed,
    SnapkeepError,
    SnapshotLocked,
    SnapshotNotReady,
)
from snapkeep.model.filters import SnapshotFilter
from snapkeep.model.manifest import Manifest, ManifestSnapshot
from snapkeep.model.names import check_description, check_name, first_free, manual_name, pre_restore_name
from snapkeep.model.paging import Page, Window
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.selection import FULL, Selection
from snapkeep.model.timespec import expiry_after
from snapkeep.model.types import Job, QuiescePolicy, Snapshot, SnapshotKind, SnapshotStatus
from snapkeep.services.audit import Audit
from snapkeep.services.guards import Claim, Guards, exclusive, shared
from snapkeep.services.jobs import JobRunner, Lane, Progress
from snapkeep.services.retention import expired_unheld, still_unheld
from snapkeep.services.subjects import Subject, SubjectKind
from snapkeep.storage.pool import Pool

log = logging.getLogger(__name__)

_AS_JSON = TypeAdapter(Snapshot)
_WHEN_AS_JSON = TypeAdapter(datetime | None)


@dataclass(frozen=True)
class TakeRequest:
    ref: str  # the subject's id or name
    name: str  # "": named manual_<YYYYMMDD>_<HHMMSS> (UTC) when taken
    subject_type: str = "volume"
    description: str = ""
    expires_at: datetime | None = None
    quiesce: bool = False
    quiesce_policy: QuiescePolicy | None = None  # None: the subject's own setting
    immutable: bool = False
    origin: str = "manual"
    period_id: str | None = None  # the profile period taking it (scheduled snapshots)
    keep_for: timedelta | None = None  # instead of expires_at: expire this long after it is created

    def expiry(self, created_at: datetime) -> datetime | None:
        """When the snapshot expires: ``expires_at``, or ``keep_for`` after it is created."""
        return self.expires_at if self.keep_for is None else expiry_after(created_at, self.keep_for)

    private: bool | None = None  # system snapshots only (hidden from tenants); None: private for those
    selection: Selection = FULL  # system and tenant snapshots: which VMs and volumes


def owner_scope(snap: Snapshot, who: Principal, paths: Mapping[str, str]) -> str:
    """A snapshot's owner scope as the caller may see it: ``system``, ``tenant:`` and a tenant's path from the
    caller's top (``tenant:acme/dev``; ``paths`` from :meth:`Tenants.paths`), or ``parent`` for a parent's
    system snapshot exposed to the caller, whose owner it may not learn."""
    if snap.owner_tenant_id is None:
        return "system" if who.tenant_id is None else "parent"
    path = paths.get(snap.owner_tenant_id)
    return "parent" if path is None else f"tenant:{path}"


def _private(req: TakeRequest, kind: SubjectKind) -> bool:
    """Hidden from tenants: as asked, else for system snapshots."""
    return req.private if req.private is not None else kind.snapshot_kind is SnapshotKind.SYSTEM


def snapshot_record(
    req: TakeRequest, subject: Subject, kind: SubjectKind, snap_id: str, now: datetime, status: SnapshotStatus
) -> Snapshot:
    """The catalog's record of a snapshot that ``req`` takes of ``subject`` at ``now``, nothing captured yet."""
    return Snapshot(
        id=snap_id,
        kind=kind.snapshot_kind,
        subject_type=subject.type,
        subject_id=subject.id,
        subject_name=subject.name,
        owner_tenant_id=subject.owner_tenant_id,
        name=req.name,
        description=req.description,
        created_at=now,
        expires_at=req.expiry(now),
        origin=req.origin,
        period_id=req.period_id,
        quiesce_requested=req.quiesce,
        quiesced=False,
        quiesce_note=None,
        quiesce_window_ms=None,
        paused_window_ms=None,
        immutable=req.immutable,
        unlocked_at=None,
        private=_private(req, kind),
        status=status,
        status_reason=None,
        exclusive_bytes=None,
        shared_bytes=None,
    )


class Snapshots:
    def __init__(
        self,
        db: Database,
        pool: Pool,
        audit: Audit,
        clock: Callable[[], datetime],
        kinds: Sequence[SubjectKind],
        *,
        cooloff: timedelta,
        guards: Guards,
        jobs: JobRunner,
    ) -> None:
        self.guards = guards
        self._jobs = jobs
        self._db = db
        self._pool = pool
        self._audit = audit
        self._clock = clock
        self._kinds: dict[str, SubjectKind] = {kind.type.value: kind for kind in kinds}
        self._cooloff = cooloff

    def kind(self, subject_type: str) -> SubjectKind:
        try:
            return self._kinds[subject_type]
        except KeyError:
            raise InvalidInput(f"snapshots of {subject_type!r} are not supported", subject_type=subject_type) from None

    def subject(self, subject_type: str, ref: str, who: Principal, selection: Selection = FULL) -> Subject:
        with self._db.unit(who) as uow:
            return self.kind(subject_type).resolve(uow, ref, selection)

    def _read_subject(self, req: TakeRequest, who: Principal) -> tuple[Subject, int]:
        """The subject a take asks for, and the catalog's generation it was read at: a take claims the
        subject's guards once it knows its members, and reads it again under the claim only if the catalog
        changed in between (:meth:`_held`)."""
        read_at = self._db.generation  # before the read: a change committed during it is counted as new
        return self.subject(req.subject_type, req.ref, who, req.selection), read_at

    def _held(self, uow: Unit, subject: Subject, read_at: int, selection: Selection) -> Subject:
        """``subject`` (read at generation ``read_at``) as it is now that its guards are held: the same, if
        the catalog has not changed since; else read again, by id (the one claimed, even if renamed since)."""
        if self._db.generation == read_at:
            return subject
        return self.kind(subject.type).resolve(uow, subject.id, selection)

    # --- reading -----------------------------------------------------------------------------------
    def get(self, snap_id: str, who: Principal) -> Snapshot:
        """Any role."""
        with self._db.unit(who) as uow:
            return uow.snapshots.get(snap_id)

    def is_own(self, snap: Snapshot, who: Principal) -> bool:
        """Whether ``snap`` is the caller's own (see :meth:`own`): what pages offer to change."""
        with self._db.unit(who) as uow:
            return uow.snapshots.owned(snap)

    def own(self, snap_id: str, who: Principal) -> Snapshot:
        """The snapshot, if it is the caller's own to change, delete or restore whole: a parent's system
        snapshot exposed to a tenant is only read, and the tenant's own objects restored from it."""
        with self._db.unit(who) as uow:
            snap = uow.snapshots.get(snap_id)
            if not uow.snapshots.owned(snap):
                raise Forbidden(
                    f"snapshot {snap.name!r} belongs to your parent: you may read it and restore your own "
                    "objects from it, nothing else",
                    snapshot=snap_id,
                )
            return snap

    def listing(self, ref: str | None = None, subject_type: str = "volume", *, who: Principal) -> list[Snapshot]:
        """Snapshots of one subject (by id or name), or all of them the caller sees; any role."""
        with self._db.unit(who) as uow:
            if ref is None:
                return uow.snapshots.list()
            subject = self.kind(subject_type).resolve(uow, ref)
            return uow.snapshots.list(subject.type, subject.id)

    def page(self, where: SnapshotFilter, window: Window, ref: str | None = None, *, who: Principal) -> Page[Snapshot]:
        """A page of the snapshots ``where`` admits; with ``ref``, of that subject (of type
        ``where.subject_type``, by id or name) only. Any role."""
        with self._db.unit(who) as uow:
            if ref is not None:
                subject = self.kind(where.subject_type or "volume").resolve(uow, ref)
                where = replace(where, subject_type=subject.type, subject_id=subject.id)
            return uow.snapshots.page(where, window)

    def find(self, ref: str, name: str, subject_type: str = "volume", *, who: Principal) -> Snapshot:
        """A snapshot by its name together with its subject; any role."""
        with self._db.unit(who) as uow:
            subject = self.kind(subject_type).resolve(uow, ref)
            snap = uow.snapshots.find(subject.type, subject.id, name)
        if snap is None:
            raise NotFound(f"{subject.type} {subject.name!r} has no snapshot named {name!r}", name=name)
        return snap

    def _named(self, req: TakeRequest, subject: Subject) -> TakeRequest:
        """A take asked without a name is named ``manual_<YYYYMMDD>_<HHMMSS>`` (UTC), free among the
        subject's snapshots; called with the subject's guard held, so the name stays free until the take."""
        if req.name:
            return req
        with self._db.unit() as uow:
            return replace(req, name=_free_name(uow, subject.type, subject.id, manual_name(self._clock())))

    def check_free_name(self, subject: Subject, name: str) -> None:
        """Refuse a name another snapshot of the subject has; a failed one's name is free (the take replaces it)."""
        check_name(name, "snapshot name")
        with self._db.unit() as uow:
            snap = uow.snapshots.find(subject.type, subject.id, name)
        if snap is not None and snap.status != SnapshotStatus.FAILED:
            raise NameClash(f"{subject.type} {subject.name!r} already has a snapshot named {name!r}", name=name)

    def replace_failed(self, subject: Subject, name: str, who: Principal) -> None:
        """A failed take keeps its row (and reason) only until its name is wanted again; then the row goes, with
        anything of it left in the pool, so that the name is unique among the subject's snapshots as before."""
        with self._db.unit() as uow:
            snap = uow.snapshots.find(subject.type, subject.id, name)
        if snap is not None and snap.status == SnapshotStatus.FAILED:
            with contextlib.suppress(NotFound):  # a concurrent take replaced it first
                self._remove(snap, who)

    def manifest(self, snap_id: str) -> Manifest:
        return Manifest.from_bytes(self._pool.read_manifest(snap_id))

    # --- guards ------------------------------------------------------------------------------------
    def claim_take(self, subject: Subject, read_at: int | None = None) -> Claim:
        """A take holds its subject and every member it captures (a system snapshot's VMs, volumes and
        tenants, all at once): nothing else may change, restore or delete them meanwhile. The subject is
        checked to exist still once held, unless the catalog is known unchanged since it was read at
        generation ``read_at``."""
        claim = self._claim_subject(subject)
        if read_at == self._db.generation:
            return claim
        return claim.verified(lambda: self.subject(subject.type, subject.id, SYSTEM))

    def _claim_subject(self, subject: Subject) -> Claim:
        needs = [exclusive(subject.type, subject.id, subject.name), *(exclusive(*m) for m in subject.members)]
        return self.guards.claim("snapshot.take", needs)

    def _claim_members(self, subject: Subject) -> Claim:
        return self.guards.claim("snapshot.take", [exclusive(*m) for m in subject.members])

    def claim_delete(self, snap: Snapshot) -> Claim:
        """A delete holds the snapshot (no restore or extract may be reading it) and, for a period's snapshot,
        that period's snapshots of its subject: one delete at a time decides which of them the period keeps
        (a sweep deciding while an operator deletes the newest would leave the period none)."""
        needs = [exclusive("snapshot", snap.id, snap.name)]
        if snap.period_id is not None:
            period = f"{snap.subject_id}/{snap.period_id}"
            needs.append(exclusive("period", period, f"of {snap.subject_type} {snap.subject_name!r}"))
        return self.guards.claim("snapshot.delete", needs)

    def claim_restore(self, snap: Snapshot, target: tuple[str, str, str] | None) -> Claim:
        """A restore reads the snapshot (shared: several may, none may delete it) and, over the source,
        replaces ``target`` (type, id, name: the snapshot's subject or one of its members), exclusively."""
        needs = [shared("snapshot", snap.id, snap.name)]
        if target is not None:
            needs.append(exclusive(*target))
        return self.guards.claim("snapshot.restore" if target else "snapshot.restore_as_new", needs)

    def claim_with_snapshots(self, operation: str, subject_type: str, subject_id: str, label: str) -> Claim:
        """A subject and every snapshot of it, exclusively, all or nothing: what deleting it needs.

        No snapshot of a subject appears while its guard is held (a take holds it), so a list read again
        after claiming can only have grown by a take that ended in between; then claim again.
        """
        for _ in range(3):
            ids = self._snapshot_ids(subject_type, subject_id)
            needs = [exclusive(subject_type, subject_id, label), *(exclusive("snapshot", i) for i in sorted(ids))]
            claim = self.guards.claim(operation, needs)
            if self._snapshot_ids(subject_type, subject_id) <= ids:
                return claim
            claim.release()
        subject = f"{subject_type}:{subject_id}"
        raise Busy(f"{subject_type} {label!r} keeps getting new snapshots; try again", subject=subject)

    def _snapshot_ids(self, subject_type: str, subject_id: str) -> set[str]:
        with self._db.unit() as uow:
            return {snap.id for snap in uow.snapshots.list(subject_type, subject_id)}

    # --- taking ------------------------------------------------------------------------------------
    def take(self, req: TakeRequest, *, who: Principal) -> Snapshot:
        """Take a snapshot (operator), holding the subject's guard (:class:`Busy` if another operation
        holds it)."""
        who.require(Role.OPERATOR)
        subject, read_at = self._read_subject(req, who)
        with self._claim_subject(subject):  # not verified: the take sees its subject as held (_held)
            return self._take(req, who, subject, read_at)

    def submit_take(self, req: TakeRequest, *, who: Principal) -> Job:
        """:meth:`take` as a job, refused synchronously (changing nothing) if the subject is busy or the
        request is invalid; the job's result is the snapshot (:meth:`as_json`)."""
        who.require(Role.OPERATOR)
        subject, read_at = self._read_subject(req, who)
        request = replace(req, ref=subject.id, subject_type=subject.type)
        # Refusals of the input first: a bad or taken name is said even while another operation holds the subject.
        self._check_request(request)
        if request.name:
            self.check_free_name(subject, request.name)
        with self.claim_take(subject, read_at) as claim:
            request = self._named(request, subject)  # under the claim: no other take of the subject can pick it too
            self.check_free_name(subject, request.name)

            def run(_progress: Progress) -> dict[str, object]:  # holds the claim: the job was handed it
                return {"snapshot": self.as_json(self._take(request, who, subject, read_at), subject.owner_tenant_id)}

            params = {subject.type: subject.name, "name": request.name}
            return self._jobs.submit("snapshot.take", params, run, claim=claim, owner_tenant_id=subject.owner_tenant_id)

    def as_json(self, snap: Snapshot, seen_from: str | None) -> dict[str, Any]:
        """The snapshot as the API shows it to a caller of ``seen_from``'s scope (a tenant; None: the
        system's): its owner scope instead of its owner's id, and when it may be deleted. A job's result is
        shown from the job owner's scope, the lowest that reads it, so that it names nothing above it."""
        values: dict[str, Any] = _AS_JSON.dump_python(snap, mode="json")
        values.pop("owner_tenant_id")
        reader = Principal("reader", Role.VIEWER, seen_from)
        with self._db.unit(reader) as uow:
            values["owner"] = owner_scope(snap, reader, uow.tenants.paths())
        values["deletable_at"] = _WHEN_AS_JSON.dump_python(self.deletable_at(snap), mode="json")
        values["overdue_seconds"] = self.overdue_seconds(snap)
        return values

    def overdue_seconds(self, snap: Snapshot) -> float | None:
        """A held snapshot: how long past its expiry its period's minimum count has kept it."""
        if snap.status is not SnapshotStatus.HELD or snap.expires_at is None:
            return None
        return max(0.0, (self._clock() - snap.expires_at).total_seconds())

    def _check_request(self, req: TakeRequest) -> None:
        """Refuse what is wrong in the request itself; an empty name is made free and valid when the take is
        recorded (:meth:`_take`)."""
        if req.name:
            check_name(req.name, "snapshot name")
        if req.private and self.kind(req.subject_type).snapshot_kind is not SnapshotKind.SYSTEM:
            raise InvalidInput("only system snapshots can be private (hidden from the tenants beneath)")
        check_description(req.description)
        if req.expires_at is not None and req.expires_at <= self._clock():
            raise InvalidExpiry(f"expiry {req.expires_at.isoformat()} is in the past", value=req.expires_at.isoformat())

    def _recorded_name(
        self, uow: Unit, subject: Subject, req: TakeRequest, now: datetime, replacing: bool
    ) -> TakeRequest | None:
        """``req`` with the name its snapshot is recorded under: the one asked for, if free, or
        ``manual_<when>`` made free (the time it is recorded at); None if a failed take's row has the name
        asked for (``replacing``: it is replaced, then the name is free; the subject's guard is held, so no
        other take of it can have made one meanwhile). Any other snapshot of that name is a clash."""
        if not req.name:
            return replace(req, name=_free_name(uow, subject.type, subject.id, manual_name(now)))
        found = uow.snapshots.find(subject.type, subject.id, req.name)
        if found is None:
            return req
        if replacing and found.status is SnapshotStatus.FAILED:
            return None
        raise NameClash(f"{subject.type} {subject.name!r} already has a snapshot named {req.name!r}")

    def _take(self, req: TakeRequest, who: Principal, claimed: Subject, read_at: int) -> Snapshot:
        """Take a snapshot of ``claimed``, read at catalog generation ``read_at`` before its guards were
        claimed: only its type and id are used until it is seen as held (:meth:`_held`), with the
        snapshot's row, under the claim."""
        self._check_request(req)
        kind = self.kind(req.subject_type)
        snap_id = str(uuid.uuid4())
        private = _private(req, kind)
        now = self._clock()
        for attempt in range(2):  # once more after a failed take's row that had the name is replaced
            with self._db.unit(who) as uow:
                subject = self._held(uow, claimed, read_at, req.selection)
                named = self._recorded_name(uow, subject, req, now, replacing=attempt == 0)
                if named is not None:
                    req = named
                    record = snapshot_record(req, subject, kind, snap_id, now, SnapshotStatus.CREATING)
                    created_at = uow.snapshots.insert(record).created_at
                    break
            self.replace_failed(claimed, req.name, who)
        try:
            # members that appeared since the request claimed are claimed too (nothing more to claim: no-op)
            with self._claim_members(subject):
                holding = kind.holds(subject, req.quiesce, snap_id)
                policy = req.quiesce_policy or subject.quiesce_policy
                report = capture(self._pool, snap_id, subject.datasets, holding, policy)
            manifest = self._manifest(snap_id, req, subject, kind, created_at, report, private, holding)
            self._pool.seal(snap_id, manifest.to_bytes())
        except QuiesceFailed:
            self._pool.discard(snap_id)
            with self._db.unit() as uow:
                uow.snapshots.delete(snap_id)
            raise
        except SnapkeepError as exc:
            self._pool.discard(snap_id)
            if kind.keeps_failed_takes:
                self._mark_failed(snap_id, exc.message)
            else:
                target = f"{subject.type}:{subject.name}/{req.name}"
                self._forget_failed(snap_id, who, (target, subject.owner_tenant_id), exc.message)
            raise
        except BaseException as exc:
            self._pool.discard(snap_id)
            self._mark_failed(snap_id, f"interrupted: {exc!r}")
            raise
        with self._db.unit() as uow:
            snap = uow.snapshots.update(
                snap_id,
                status=SnapshotStatus.READY,
                quiesced=report.quiesced,
                quiesce_note=report.note,
                quiesce_window_ms=report.windows_ms.get("quiesce"),
                paused_window_ms=report.windows_ms.get("paused"),
            )
            target = f"{subject.type}:{subject.name}/{req.name}"
            self._audit.done(uow, who, "snapshot.take", target, snap_id, owner=snap.owner_tenant_id)
            return snap

    def take_pre_restore(
        self, subject_type: str, ref: str, keep: timedelta, who: Principal, origin: str = "pre-restore"
    ) -> Snapshot:
        """The safety snapshot before an in-place restore (SPEC: ``pre-restore_<YYYYMMDD>_<HHMMSS>``),
        taken as the caller who asked for the restore; ``origin`` ``pre-extract`` before an extract (which
        replaces files, not the volume's settings)."""
        now = self._clock()
        with self._db.unit(who) as uow:
            subject = self.kind(subject_type).resolve(uow, ref)
            name = _free_name(uow, subject.type, subject.id, pre_restore_name(now))
        request = TakeRequest(
            ref=ref,
            subject_type=subject_type,
            name=name,
            description="taken before an in-place restore",
            expires_at=now + keep,
            origin=origin,
        )
        return self.take(request, who=who)

    def restorable(self, snap_id: str, who: Principal) -> Snapshot:
        """The snapshot, if it can be restored from (ready, or held by a minimum count)."""
        snap = self.get(snap_id, who)
        if snap.status not in (SnapshotStatus.READY, SnapshotStatus.HELD):
            raise SnapshotNotReady(f"snapshot {snap.name!r} is {snap.status}, not restorable", snapshot=snap_id)
        return snap

    def _manifest(
        self,
        snap_id: str,
        req: TakeRequest,
        subject: Subject,
        kind: SubjectKind,
        created_at: datetime,
        report: CaptureReport,
        private: bool,
        holding: Holding,
    ) -> Manifest:
        return Manifest.written(
            snapshot=ManifestSnapshot(
                id=snap_id,
                kind=kind.snapshot_kind.value,
                name=req.name,
                description=req.description,
                subject_type=subject.type,
                subject_id=subject.id,
                created_at=created_at,
                expires_at=req.expiry(created_at),
                origin=req.origin,
                quiesced=report.quiesced,
                quiesce_note=report.note,
                immutable=req.immutable,
                private=private,
                selection=None if req.selection.full else req.selection.as_json(),
            ),
            objects=kind.manifest_objects(subject, holding),
        )

    def _forget_failed(self, snap_id: str, who: Principal, target: tuple[str, str | None], reason: str) -> None:
        """A take that records nothing when it fails (a system snapshot): the row goes, the audit log (the
        ``target`` and its owner) and the job keep the reason."""
        with self._db.unit() as uow:
            uow.snapshots.delete(snap_id)
            self._audit.failed(uow, who, "snapshot.take", target[0], reason, owner=target[1])

    def _mark_failed(self, snap_id: str, reason: str) -> None:
        with self._db.unit() as uow:
            uow.snapshots.update(snap_id, status=SnapshotStatus.FAILED, status_reason=reason)

    def measure_space(self, snap_id: str, *, who: Principal) -> Snapshot:
        """Fill in exclusive/shared bytes: a walk over the snapshot's files, so run it as a background job.

        On demand, never after every take: a snapshot just taken shares every extent with its source, so
        the answer then is always "nothing exclusive"; it becomes worth knowing as the source moves on. The
        walk costs one FIEMAP per file (20,000 files 1.3-3.7 s, 100,000 files 5.5-11.5 s on a busy 2-core
        host, both drivers), too much to pay per take on volumes of millions of files. The result is kept
        on the snapshot until measured again. A snapshot deleted before its turn comes is not measured.
        Operator.
        """
        who.require(Role.OPERATOR)
        snap = self.own(snap_id, who)
        if snap.status not in (SnapshotStatus.READY, SnapshotStatus.HELD) or not self._pool.has_snapshot(snap_id):
            return snap
        space = self._pool.space(snap_id)
        with self._db.unit(who) as uow:
            return uow.snapshots.update(snap_id, exclusive_bytes=space.exclusive_bytes, shared_bytes=space.shared_bytes)

    def submit_space(self, snap_id: str, *, who: Principal) -> Job:
        """:meth:`measure_space` in the background lane; a request while the same snapshot's measurement is
        queued or running answers with that job."""
        who.require(Role.OPERATOR)
        snap = self.own(snap_id, who)

        def measure(_progress: Progress) -> dict[str, object]:
            measured = self.measure_space(snap_id, who=who)
            return {"exclusive_bytes": measured.exclusive_bytes, "shared_bytes": measured.shared_bytes}

        return self._jobs.submit(
            "snapshot.space",
            {"snapshot": snap_id},
            measure,
            Lane.BACKGROUND,
            once=f"space:{snap_id}",
            owner_tenant_id=snap.owner_tenant_id,
        )

    # --- locks and deletion ------------------------------------------------------------------------
    def deletable_at(self, snap: Snapshot) -> datetime | None:
        """When ``snap`` may be deleted: now if not immutable; else the earlier of its expiry and the end of
        the cooling-off that started when it was unlocked; ``None`` = not while it stays locked."""
        if not snap.immutable:
            return snap.created_at
        candidates = [t for t in (snap.expires_at, snap.unlocked_at and snap.unlocked_at + self._cooloff) if t]
        return min(candidates) if candidates else None

    def check_deletable(self, snap: Snapshot, who: Principal) -> None:
        """Raise :class:`SnapshotLocked` (and audit the refusal) if ``snap`` is still locked, or
        :class:`SnapshotNotReady` while it is being taken."""
        self.check_settled(snap)
        when = self.deletable_at(snap)
        if when is not None and when <= self._clock():
            return
        why = f"snapshot {snap.name!r} is immutable and locked" + (
            f" until {when.isoformat()}" if when else "; unlock it first (a cooling-off period follows)"
        )
        target = f"{snap.subject_type}:{snap.subject_name}/{snap.name}"
        self._audit.refused(who, "snapshot.delete", target, why, owner=snap.owner_tenant_id)
        raise SnapshotLocked(why, snapshot=snap.id, deletable_at=when.isoformat() if when else None)

    def unlock(self, snap_id: str, *, who: Principal) -> Snapshot:
        """Start the cooling-off period of an immutable snapshot (idempotent); admin."""
        who.require(Role.ADMIN)
        self.own(snap_id, who)
        with self._db.unit(who) as uow:
            snap = uow.snapshots.get(snap_id)
            if not snap.immutable or snap.unlocked_at is not None:
                return snap
            snap = uow.snapshots.update(snap_id, unlocked_at=self._clock())
            target = f"{snap.subject_type}:{snap.subject_name}/{snap.name}"
            self._audit.done(uow, who, "snapshot.unlock", target, owner=snap.owner_tenant_id)
            return snap

    def delete(self, snap_id: str, *, who: Principal) -> None:
        """Delete a snapshot (operator); refused, changing nothing, while it is locked or busy."""
        who.require(Role.OPERATOR)
        with self.claim_delete(self.own(snap_id, who)):
            snap = self.get(snap_id, who)
            self.check_deletable(snap, who)
            self._remove(snap, who)

    def submit_delete(self, snap_id: str, *, who: Principal) -> Job:
        """:meth:`delete` as a job, refused synchronously while the snapshot is locked or busy."""
        who.require(Role.OPERATOR)
        with self.claim_delete(self.own(snap_id, who)) as claim:
            snap = self.get(snap_id, who)
            self.check_deletable(snap, who)

            def run(_progress: Progress) -> dict[str, object]:
                self.delete(snap_id, who=who)
                return {"deleted": snap_id}

            params = {"snapshot": snap_id, "name": snap.name}
            return self._jobs.submit("snapshot.delete", params, run, claim=claim, owner_tenant_id=snap.owner_tenant_id)

    def check_settled(self, snap: Snapshot) -> None:
        """A snapshot still being taken or deleted cannot be deleted (its capture would be cut from under it)."""
        if snap.status in (SnapshotStatus.CREATING, SnapshotStatus.DELETING):
            raise SnapshotNotReady(
                f"snapshot {snap.name!r} is {snap.status}; try again when it is done", snapshot=snap.id
            )

    def _remove(self, snap: Snapshot, who: Principal) -> None:
        with self._db.unit() as uow:
            uow.snapshots.update(snap.id, status=SnapshotStatus.DELETING)
        self._pool.delete_snapshot(snap.id)
        self._pool.discard(snap.id)
        with self._db.unit() as uow:
            uow.snapshots.delete(snap.id)
            target = f"{snap.subject_type}:{snap.subject_name}/{snap.name}"
            self._audit.done(uow, who, "snapshot.delete", target, owner=snap.owner_tenant_id)

    def delete_all_of(self, subject_type: str, subject_id: str, who: Principal) -> int:
        """Delete every snapshot of a subject being deleted; refuses (changing nothing) if one is locked.
        The caller holds :meth:`claim_with_snapshots` (else this claims it)."""
        with self.claim_with_snapshots("snapshot.delete", subject_type, subject_id, subject_id):
            return self._delete_all_of(subject_type, subject_id, who)

    def _delete_all_of(self, subject_type: str, subject_id: str, who: Principal) -> int:
        with self._db.unit() as uow:
            snaps = uow.snapshots.list(subject_type, subject_id)
        for snap in snaps:
            self.check_deletable(snap, who)
        for snap in snaps:
            self._remove(snap, who)
        return len(snaps)

    def sweep_expired(self, who: Principal) -> list[str]:
        """Delete every ready snapshot whose expiry has passed (an immutable lock ends at expiry too); admin
        (the scheduler sweeps as the system). Only what is due is read (``SnapshotStore.due``): ``held``
        snapshots wait for their period's newer ones, which the scheduler sees to."""
        who.require(Role.ADMIN)
        with self._db.unit(who) as uow:  # its own only: a parent's exposed snapshots are not its to sweep
            due = expired_unheld(uow, self._clock())
        deleted = []
        for snap in due:
            try:
                with self.claim_delete(snap):  # busy (being restored from, say): the next sweep retries
                    with self._db.unit(who) as uow:
                        still = still_unheld(uow, snap.id, self._clock())
                    if still is None:
                        continue
                    self._remove(still, who)
            except SnapkeepError as exc:  # one that cannot go now must not keep the others
                log.warning("expiry sweep could not delete %s: %s", snap.id, exc.message)
                continue
            deleted.append(snap.id)
        return deleted

    def submit_sweep(self, who: Principal) -> Job:
        """:meth:`sweep_expired` as a job."""
        who.require(Role.ADMIN)

        def run(_progress: Progress) -> dict[str, object]:
            return {"deleted": self.sweep_expired(who)}

        return self._jobs.submit("snapshot.sweep", {}, run, owner_tenant_id=who.tenant_id)


def _free_name(uow: Unit, subject_type: str, subject_id: str, base: str) -> str:
    """``base`` or the first free ``base_n`` among the subject's snapshots, looked up name by name (the first
    is nearly always free; a subject can have hundreds of snapshots)."""
    return first_free(base, lambda name: uow.snapshots.find(subject_type, subject_id, name) is not None)
