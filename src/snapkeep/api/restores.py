"""``/snapshots/{id}/restore``: in place or as new, for every kind of snapshot (the restore service decides)."""

from __future__ import annotations

from fastapi import APIRouter, status

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.jobs import job_response
from snapkeep.api.schemas import JobPublic, RestoreRequest
from snapkeep.api.snapshots import Wait

router = APIRouter(prefix="/api/v1/snapshots", tags=["snapshots"])


@router.post("/{snap_id}/restore", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def restore_snapshot(svc: Svc, who: Caller, snap_id: str, body: RestoreRequest, wait: float = Wait) -> JobPublic:
    """Checked before the job starts, so a refused restore changes nothing."""
    return job_response(svc, svc.restores.submit(snap_id, body.options(), who), wait)
