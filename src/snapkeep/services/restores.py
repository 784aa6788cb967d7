"""Restoring any subject from its snapshots: over the source (after a pre-restore safety snapshot) or as new.

The rules common to every kind live here — the caller's role, the guards (the snapshot shared, the
subject over which it is restored exclusive), a restorable snapshot, everything checked before anything
changes, the pre-restore snapshot, the job — and the kind (:mod:`snapkeep.services.subjects`) does what
differs. The object restored is the one the snapshot was taken of, found in its manifest by type and id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from datetime import datetime, timedelta

from snapkeep.errors import InvalidInput, NameClash
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.names import check_name
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import Job, Snapshot, SnapshotKind, SubjectType
from snapkeep.model.units import format_size
from snapkeep.services.guards import Claim
from snapkeep.services.jobs import JobRunner, Progress
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.space import CLONE_ALLOWANCE, SpaceRule
from snapkeep.services.subjects import Effects, RestoreOptions, SubjectKind

DEFAULT_NAME_TRIES = 5  # a default name taken by concurrent restores meanwhile: made again under the next
_MEMBERS = (SubjectType.VM, SubjectType.VOLUME, SubjectType.TENANT)  # what one restores out of a system


class Restores:
    def __init__(
        self,
        snapshots: Snapshots,
        kinds: Mapping[str, SubjectKind],
        jobs: JobRunner,
        clock: Callable[[], datetime],
        *,
        pre_restore_keep: timedelta,
        space: SpaceRule,
    ) -> None:
        self._clock = clock
        self._snapshots = snapshots
        self._kinds = kinds
        self._jobs = jobs
        self._pre_restore_keep = pre_restore_keep
        self._space = space

    def submit(self, snap_id: str, options: RestoreOptions, who: Principal) -> Job:
        """Check everything, then restore in a job that holds the guards claimed here (so a refused or busy
        restore answers at once and changes nothing)."""
        who.require(Role.OPERATOR)
        if options.name is not None:  # a given name must be valid, whether used (as new) or not
            check_name(options.name, "new name")
        with self._claim(snap_id, options, who) as claim:
            snap, kind, source = self._plan(snap_id, options, who)
            if options.as_new:
                kind.new_name(snap, source, options, who)
            else:
                kind.check_over(snap, source, options, who)
            self._check_space(snap_id, source, options)
            params = {"snapshot": snap_id, "snapshot_name": snap.name, **_shown(options)}

            def run(progress: Progress) -> dict[str, object]:
                if options.as_new:
                    return self.as_new(snap_id, options, who)
                progress(0.1, "taking the pre-restore snapshot" if options.pre_restore else "restoring")
                return self.over_source(snap_id, options, who)

            operation = "snapshot.restore_as_new" if options.as_new else "snapshot.restore"
            return self._jobs.submit(
                operation, params, run, claim=claim, owner_tenant_id=_job_owner(snap, source, options, who)
            )

    def preview(self, snap_id: str, options: RestoreOptions, who: Principal) -> Effects:
        """What a restore over the source would change, checked as :meth:`submit` checks it (refused the
        same way), changing nothing: what a confirmation names before the restore, which checks again."""
        who.require(Role.OPERATOR)
        if options.as_new:
            raise InvalidInput("a restore as new changes nothing that exists; preview a restore over the source")
        snap, kind, source = self._plan(snap_id, options, who)
        effects = kind.check_over(snap, source, replace(options, started_at=self._clock()), who)
        self._check_space(snap_id, source, options)
        return effects

    def over_source(self, snap_id: str, options: RestoreOptions, who: Principal) -> dict[str, object]:
        """Put the snapshot's state in place of its subject's (or of the member named in the options),
        after a pre-restore snapshot unless the options say not to; answers with the restored object's id
        and the pre-restore snapshot's."""
        who.require(Role.OPERATOR)
        if options.as_new:
            raise InvalidInput("over_source restores over the source; use as_new for a new copy")
        options = replace(options, started_at=self._clock())  # before the pre-restore snapshot is taken
        with self._claim(snap_id, options, who):
            snap, kind, source = self._plan(snap_id, options, who)
            kind.check_over(snap, source, options, who)
            self._check_space(snap_id, source, options)
            safety = self._pre_restore(kind, source, who) if options.pre_restore else None
            subject_id = kind.restore_over(snap, source, options, who)
            return {f"{kind.type}_id": subject_id, "pre_restore_snapshot_id": safety.id if safety else None}

    def as_new(self, snap_id: str, options: RestoreOptions, who: Principal) -> dict[str, object]:
        """A new object from the snapshot (the kind's default name unless one is given). A default name is
        free when chosen, but nothing holds it while the copy is made: if a concurrent restore takes it
        first, this one (undone by the kind) is made again under the next free name."""
        who.require(Role.OPERATOR)
        with self._claim(snap_id, options, who):
            snap, kind, source = self._plan(snap_id, options, who)
            name = kind.new_name(snap, source, options, who)
            self._check_space(snap_id, source, options)
            tries = 1 if options.name is not None else DEFAULT_NAME_TRIES
            for attempt in range(1, tries + 1):
                try:
                    new_id, new_name = kind.restore_as_new(snap, source, name, options, who)
                    break
                except NameClash:
                    if attempt == tries:
                        raise
                    name = kind.new_name(snap, source, options, who)
            return {f"{kind.type}_id": new_id, kind.type.value: new_name}

    def _check_space(self, snap_id: str, source: ManifestObject, options: RestoreOptions) -> None:
        """Refused (:class:`PoolFull`, nothing changed) unless the pool has room for the restore's clones —
        each dataset once, twice over the source with a pre-restore snapshot — and the minimum left free.
        One tenant out of a system snapshot clones the datasets of its recorded subtree."""
        datasets = set(source.datasets)
        if source.type == SubjectType.TENANT.value:
            datasets |= {d for o in self._snapshots.manifest(snap_id).visible_to(source.id) for d in o.datasets}
        clones = len(datasets) * (2 if options.pre_restore and not options.as_new else 1)
        made_of = f"{clones} dataset clone(s) at {format_size(CLONE_ALLOWANCE)} each"
        self._space.require(clones * CLONE_ALLOWANCE, "this restore", made_of)

    def _claim(self, snap_id: str, options: RestoreOptions, who: Principal) -> Claim:
        """The snapshot, shared (several restores may read it, none may delete it meanwhile), and, over the
        source, the object restored over, exclusive."""
        snap = self._snapshots.get(snap_id, who)
        if options.as_new:
            target = None
        elif options.member is None:  # the snapshot's own subject: from its catalog row, nothing else read
            target = (snap.subject_type, snap.subject_id, snap.subject_name)
        else:  # one member, named by the manifest: read while the snapshot is held (a delete cannot take it
            # away meanwhile), then claimed with the member before that first hold goes. The first hold is
            # not entered: a claim made inside an active one holds only what that one lacks (the member),
            # and the snapshot would be free to delete once the first hold went
            reading = self._snapshots.claim_restore(snap, None)
            try:
                _snap, kind, source = self._plan(snap_id, options, who)
                return self._snapshots.claim_restore(snap, (kind.type.value, source.id, source.name))
            finally:
                reading.release()
        return self._snapshots.claim_restore(snap, target)

    def _plan(
        self, snap_id: str, options: RestoreOptions, who: Principal
    ) -> tuple[Snapshot, SubjectKind, ManifestObject]:
        """The snapshot, the kind that restores, and the object restored: the snapshot's subject, or the
        member the options name (one VM, volume or tenant out of a system or tenant snapshot)."""
        snap = self._snapshots.restorable(snap_id, who)
        manifest = self._snapshots.manifest(snap_id)
        if options.member is None:
            self._snapshots.own(snap_id, who)  # a parent's exposed snapshot: only members may be restored
            source = manifest.object_of(snap.subject_type, snap.subject_id)
        elif snap.kind not in (SnapshotKind.SYSTEM, SnapshotKind.TENANT):
            raise InvalidInput("a member is picked out of a system or tenant snapshot; this one holds one object")
        elif options.member_type not in _MEMBERS:
            raise InvalidInput(f"one {options.member_type} cannot be restored out of a system snapshot")
        else:
            source = manifest.member(str(options.member_type), options.member, who.tenant_id)
        kind = self._kinds.get(source.type)
        if kind is None:
            raise InvalidInput(f"snapshots of a {source.type} cannot be restored yet", snapshot=snap_id)
        kind.check_options(options)
        return snap, kind, source

    def _pre_restore(self, kind: SubjectKind, source: ManifestObject, who: Principal) -> Snapshot:
        """A snapshot of what the restore replaces, of its kind; a tenant restoring itself keeps it as its
        own system snapshot (a tenant snapshot of it is its parent's to take)."""
        own = kind.type is SubjectType.TENANT and source.id == who.tenant_id
        subject_type = SubjectType.SYSTEM if own else kind.type
        return self._snapshots.take_pre_restore(subject_type, source.id, self._pre_restore_keep, who)


def _job_owner(snap: Snapshot, source: ManifestObject, options: RestoreOptions, who: Principal) -> str | None:
    """Who sees the restore's job: the snapshot's owner for a whole restore; for one member, the owner of
    what it makes or replaces — but a tenant restored over itself may have been deleted since (its parent
    holds the job), or be the caller's own tenant (which must follow its own job)."""
    if options.member is None:
        return snap.owner_tenant_id
    if source.type == SubjectType.TENANT.value and not options.as_new and who.tenant_id is not None:
        return who.tenant_id
    return source.owner_tenant_id


def _shown(options: RestoreOptions) -> dict[str, object]:
    """The options as the job's parameters show them (JSON values)."""
    return {
        key: str(value) if key in ("mode", "member_type") and value is not None else value
        for key, value in asdict(options).items()
        if key != "started_at"
    }
