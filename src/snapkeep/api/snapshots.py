"""``/snapshots``: take, list, show, delete, unlock, restore, browse and extract.

Routes that start a job claim the guards of their subjects first and check inside the claim, so a busy
subject is refused synchronously (409 ``busy``) and the job holds the guards until it ends.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from snapkeep.api.deps import Admin, Operator, Svc, Viewer
from snapkeep.api.jobs import MAX_WAIT, start_job
from snapkeep.api.schemas import (
    ExtractRequest,
    FileEntryPublic,
    JobPublic,
    SnapshotCreate,
    SnapshotPublic,
    raw_path,
)
from snapkeep.errors import InvalidInput
from snapkeep.model.timespec import parse_expiry
from snapkeep.model.types import Snapshot
from snapkeep.services.container import Services
from snapkeep.services.jobs import Lane, Progress
from snapkeep.services.snapshots import TakeRequest

router = APIRouter(prefix="/api/v1/snapshots", tags=["snapshots"])
Wait = Query(0.0, ge=0, le=MAX_WAIT, description="seconds to wait for the job before answering")


def public(svc: Services, snap: Snapshot) -> SnapshotPublic:
    return SnapshotPublic.of(snap, svc.snapshots.deletable_at(snap))


@router.get("", response_model=list[SnapshotPublic])
def list_snapshots(
    svc: Svc, _who: Viewer, volume: str | None = None, vm: str | None = None, name: str | None = None
) -> list[SnapshotPublic]:
    if volume is not None and vm is not None:
        raise InvalidInput("list the snapshots of a volume or of a VM, not both")
    subject_type, ref = ("vm", vm) if vm is not None else ("volume", volume)
    if name is None:
        return [public(svc, s) for s in svc.snapshots.listing(ref, subject_type)]
    if ref is None:  # every subject's snapshots of that name
        return [public(svc, s) for s in svc.snapshots.listing() if s.name == name]
    return [public(svc, svc.snapshots.find(ref, name, subject_type))]


@router.post("", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def take_snapshot(svc: Svc, who: Operator, body: SnapshotCreate, wait: float = Wait) -> JobPublic:
    subject_type, ref = body.subject()
    subject = svc.snapshots.subject(subject_type, ref)
    with svc.snapshots.claim_take(subject) as claim:
        svc.snapshots.check_free_name(subject, body.name)
        expires_at = parse_expiry(body.expires, svc.clock())
        request = TakeRequest(
            ref=subject.id,
            subject_type=subject.type,
            name=body.name,
            description=body.description,
            expires_at=expires_at,
            quiesce=body.quiesce,
            quiesce_policy=body.quiesce_policy,
            immutable=body.immutable,
        )

        def run(_progress: Progress) -> dict[str, object]:
            snap = svc.snapshots.take(request, who.name)
            return {"snapshot": public(svc, snap).model_dump(mode="json")}

        return start_job(svc, "snapshot.take", {subject.type: subject.name, "name": body.name}, run, wait, claim=claim)


def _measure(svc: Services, snap_id: str) -> dict[str, object]:
    snap = svc.snapshots.measure_space(snap_id)
    return {"exclusive_bytes": snap.exclusive_bytes, "shared_bytes": snap.shared_bytes}


@router.post("/sweep", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def sweep(svc: Svc, _who: Admin, wait: float = Wait) -> JobPublic:
    return start_job(svc, "snapshot.sweep", {}, lambda _p: {"deleted": svc.snapshots.sweep_expired()}, wait)


@router.get("/{snap_id}", response_model=SnapshotPublic)
def get_snapshot(svc: Svc, _who: Viewer, snap_id: str) -> SnapshotPublic:
    return public(svc, svc.snapshots.get(snap_id))


@router.delete("/{snap_id}", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def delete_snapshot(svc: Svc, who: Operator, snap_id: str, wait: float = Wait) -> JobPublic:
    with svc.snapshots.claim_delete(svc.snapshots.get(snap_id)) as claim:
        snap = svc.snapshots.get(snap_id)
        svc.snapshots.check_deletable(snap, who.name)

        def run(_progress: Progress) -> dict[str, object]:
            svc.snapshots.delete(snap_id, who.name)
            return {"deleted": snap_id}

        return start_job(svc, "snapshot.delete", {"snapshot": snap_id, "name": snap.name}, run, wait, claim=claim)


@router.post("/{snap_id}/unlock", response_model=SnapshotPublic)
def unlock_snapshot(svc: Svc, who: Admin, snap_id: str) -> SnapshotPublic:
    return public(svc, svc.snapshots.unlock(snap_id, who.name))


@router.post("/{snap_id}/space", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def measure_space(svc: Svc, _who: Operator, snap_id: str, wait: float = Wait) -> JobPublic:
    """Measure (in the background lane) and store the snapshot's exclusive and shared bytes.

    Measured on demand only: right after a take every extent is shared with the source, so measuring then
    always reads "nothing exclusive", at about 60-190 us per file (see ``Snapshots.measure_space``). A
    request while the same snapshot's measurement is queued or running answers with that job.
    """
    svc.snapshots.get(snap_id)

    def measure(_progress: Progress) -> dict[str, object]:
        return _measure(svc, snap_id)

    once = f"space:{snap_id}"
    return start_job(svc, "snapshot.space", {"snapshot": snap_id}, measure, wait, Lane.BACKGROUND, once)


@router.get("/{snap_id}/files", response_model=list[FileEntryPublic])
def browse_snapshot(
    svc: Svc,
    _who: Viewer,
    snap_id: str,
    path: str | None = Query(None, description="a folder or file relative to the volume's root (default: root)"),
    path_b64: str | None = Query(None, description="the path's bytes in base64, for names that are not UTF-8"),
) -> list[FileEntryPublic]:
    raw = raw_path(path, path_b64, "path") or b""
    return [FileEntryPublic.of(e) for e in svc.files.browse(snap_id, raw)]


@router.post("/{snap_id}/extract", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def extract_files(svc: Svc, who: Operator, snap_id: str, body: ExtractRequest, wait: float = Wait) -> JobPublic:
    source, dest = body.source(), body.dest()
    svc.files.check_extract(snap_id, source, to_volume=body.to_volume, to_path=dest)

    def run(_progress: Progress) -> dict[str, object]:
        return svc.files.extract(snap_id, source, to_volume=body.to_volume, to_path=dest, actor=who.name)

    with svc.files.claim_extract(snap_id, body.to_volume) as claim:
        return start_job(svc, "snapshot.extract", body.model_dump(), run, wait, claim=claim)
