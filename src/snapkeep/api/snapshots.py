"""``/snapshots``: take, list, show, delete, unlock, restore, browse and extract.

Routes parse the request, call :class:`~snapkeep.services.snapshots.Snapshots` (or
:class:`~snapkeep.services.files.Files`) with the caller, and render; the services check roles, claim the
guards and submit the jobs, so a busy subject is refused synchronously (409 ``busy``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.jobs import MAX_WAIT, job_response
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.schemas import (
    ContentsPublic,
    ExtractRequest,
    FileEntryPublic,
    ImportRequest,
    JobPublic,
    SnapshotCreate,
    SnapshotPublic,
    raw_path,
)
from snapkeep.errors import InvalidInput
from snapkeep.model.filters import SnapshotFilter
from snapkeep.model.principal import Principal
from snapkeep.model.timespec import parse_expiry, parse_time
from snapkeep.model.types import Snapshot, SnapshotKind, SnapshotStatus
from snapkeep.services.container import Services
from snapkeep.services.contents import read_contents
from snapkeep.services.snapshots import TakeRequest, owner_scope

router = APIRouter(prefix="/api/v1/snapshots", tags=["snapshots"])
Wait = Query(0.0, ge=0, le=MAX_WAIT, description="seconds to wait for the job before answering")
SNAPSHOTS = Listing("snapshots", (datetime, str))
FILES = Listing("files", (str,))


def public(svc: Services, who: Principal, snap: Snapshot, paths: Mapping[str, str] | None = None) -> SnapshotPublic:
    """The snapshot as the caller sees it; ``paths`` (:meth:`Tenants.paths`), read once for a page of them."""
    owner = owner_scope(snap, who, svc.tenants.paths(who) if paths is None else paths)
    return SnapshotPublic.of(snap, owner, svc.snapshots.deletable_at(snap), svc.snapshots.overdue_seconds(snap))


@router.get("", response_model=list[SnapshotPublic], responses=PAGED)
def list_snapshots(
    svc: Svc,
    who: Caller,
    pages: Paged,
    volume: str | None = None,
    vm: str | None = None,
    name: str | None = None,
    system: bool = Query(False, description="the system snapshots of the caller's scope (with tenant: its own)"),
    tenant: str | None = Query(None, description="a tenant's snapshots (with system: its own system snapshots)"),
    kind: Annotated[SnapshotKind | None, Query(description="only snapshots of this kind")] = None,
    status: Annotated[SnapshotStatus | None, Query(description="only snapshots in this state")] = None,
    origin: str | None = Query(None, max_length=128, description="only those of this origin (`manual`, a period's)"),
    period: str | None = Query(None, max_length=36, description="only those this profile period (its id) took"),
    created_after: str | None = Query(None, max_length=64, description="only those created at or after (ISO 8601)"),
    created_before: str | None = Query(None, max_length=64, description="only those created before (ISO 8601)"),
) -> Sequence[SnapshotPublic]:
    """Oldest first, a page at a time; the filters combine (all must match). Times without an offset are UTC."""
    subject_type, ref = _listed(volume, vm, system, tenant)
    if name is not None and ref is not None:  # names are unique per subject: that one, or not found
        return [public(svc, who, svc.snapshots.find(ref, name, subject_type, who=who))]
    after, before = parse_time(created_after, "created_after"), parse_time(created_before, "created_before")
    if after is not None and before is not None and after >= before:
        raise InvalidInput("created_after must be earlier than created_before", created_after=str(after))
    where = SnapshotFilter(
        subject_type=subject_type if ref is not None else None,
        name=name,
        kind=kind,
        status=status,
        origin=origin,
        period_id=period,
        created_after=after,
        created_before=before,
    )
    page = svc.snapshots.page(where, pages.window(SNAPSHOTS), ref, who=who)
    paths = svc.tenants.paths(who)
    return pages.send(SNAPSHOTS, page, lambda snap: public(svc, who, snap, paths))


def _listed(volume: str | None, vm: str | None, system: bool, tenant: str | None) -> tuple[str, str | None]:
    """(subject type, ref) of the subject whose snapshots are listed; ref None: every snapshot."""
    given: list[tuple[str, str | None]] = [(kind, ref) for kind, ref in (("volume", volume), ("vm", vm)) if ref]
    if system:
        given.append(("system", tenant or "system"))
    elif tenant is not None:
        given.append(("tenant", tenant))
    if len(given) > 1:
        raise InvalidInput("list the snapshots of one subject: volume, vm, system (with or without tenant), tenant")
    return given[0] if given else ("volume", None)


@router.post("", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def take_snapshot(svc: Svc, who: Caller, body: SnapshotCreate, wait: float = Wait) -> JobPublic:
    subject_type, ref = body.subject()
    request = TakeRequest(
        ref=ref,
        subject_type=subject_type,
        name=body.name or "",
        description=body.description,
        expires_at=parse_expiry(body.expires, svc.clock()),
        quiesce=body.quiesce,
        quiesce_policy=body.quiesce_policy,
        immutable=body.immutable,
        private=body.private,
        selection=body.selection(),
    )
    return job_response(svc, svc.snapshots.submit_take(request, who=who), wait)


@router.post("/sweep", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def sweep(svc: Svc, who: Caller, wait: float = Wait) -> JobPublic:
    return job_response(svc, svc.snapshots.submit_sweep(who), wait)


@router.get("/{snap_id}/contents", response_model=ContentsPublic)
def snapshot_contents(svc: Svc, who: Caller, snap_id: str) -> ContentsPublic:
    """Tenants (as a tree), VMs, volumes, networks and settings, as recorded, within the caller's scope."""
    contents = read_contents(svc.snapshots, snap_id, who)
    owner = owner_scope(contents.snapshot, who, svc.tenants.paths(who))
    return ContentsPublic.of(contents, owner, svc.snapshots.deletable_at(contents.snapshot))


@router.post("/{snap_id}/import", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def import_member(svc: Svc, who: Caller, snap_id: str, body: ImportRequest, wait: float = Wait) -> JobPublic:
    """One VM's (or volume's) state out of a system snapshot, as a snapshot of that VM (or volume)."""
    member_type, ref = body.member()
    return job_response(svc, svc.imports.submit(snap_id, member_type, ref, body.name, who=who), wait)


@router.get("/{snap_id}", response_model=SnapshotPublic)
def get_snapshot(svc: Svc, who: Caller, snap_id: str) -> SnapshotPublic:
    return public(svc, who, svc.snapshots.get(snap_id, who))


@router.delete("/{snap_id}", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def delete_snapshot(svc: Svc, who: Caller, snap_id: str, wait: float = Wait) -> JobPublic:
    return job_response(svc, svc.snapshots.submit_delete(snap_id, who=who), wait)


@router.post("/{snap_id}/unlock", response_model=SnapshotPublic)
def unlock_snapshot(svc: Svc, who: Caller, snap_id: str) -> SnapshotPublic:
    return public(svc, who, svc.snapshots.unlock(snap_id, who=who))


@router.post("/{snap_id}/space", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def measure_space(svc: Svc, who: Caller, snap_id: str, wait: float = Wait) -> JobPublic:
    """Measure (in the background lane) and store the snapshot's exclusive and shared bytes.

    Measured on demand only: right after a take every extent is shared with the source, so measuring then
    always reads "nothing exclusive", at about 60-190 us per file (see ``Snapshots.measure_space``). A
    request while the same snapshot's measurement is queued or running answers with that job.
    """
    return job_response(svc, svc.snapshots.submit_space(snap_id, who=who), wait)


@router.get("/{snap_id}/files", response_model=list[FileEntryPublic], responses=PAGED)
def browse_snapshot(
    svc: Svc,
    who: Caller,
    pages: Paged,
    snap_id: str,
    path: str | None = Query(None, description="a folder or file relative to the volume's root (default: root)"),
    path_b64: str | None = Query(None, description="the path's bytes in base64, for names that are not UTF-8"),
    volume: str | None = Query(None, description="system snapshots: the volume to read"),
) -> Sequence[FileEntryPublic]:
    """A folder's entries by name, a page at a time (or the one entry a file's path names)."""
    raw = raw_path(path, path_b64, "path") or b""
    page = svc.files.browse_page(snap_id, raw, pages.window(FILES), volume=volume, who=who)
    return pages.send(FILES, page, FileEntryPublic.of)


@router.post("/{snap_id}/extract", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def extract_files(svc: Svc, who: Caller, snap_id: str, body: ExtractRequest, wait: float = Wait) -> JobPublic:
    job = svc.files.submit_extract(
        snap_id,
        body.source(),
        to_volume=body.to_volume,
        to_path=body.dest(),
        volume=body.volume,
        replace=body.replace,
        pre_restore=body.pre_restore,
        params=body.model_dump(),
        who=who,
    )
    return job_response(svc, job, wait)
