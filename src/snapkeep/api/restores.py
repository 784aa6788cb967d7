"""``/snapshots/{id}/restore``: in place or as new, for volume and VM snapshots alike."""

from __future__ import annotations

from fastapi import APIRouter, status

from snapkeep.api.deps import Operator, Svc
from snapkeep.api.jobs import start_job
from snapkeep.api.schemas import JobPublic, RestoreRequest
from snapkeep.api.snapshots import Wait
from snapkeep.errors import InvalidInput
from snapkeep.model.names import check_name
from snapkeep.model.types import RestoreMode
from snapkeep.services.container import Services
from snapkeep.services.jobs import JobFunction, Progress

router = APIRouter(prefix="/api/v1/snapshots", tags=["snapshots"])


@router.post("/{snap_id}/restore", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def restore_snapshot(svc: Svc, who: Operator, snap_id: str, body: RestoreRequest, wait: float = Wait) -> JobPublic:
    """Claims the snapshot (and, over the source, its subject) and checks everything it can before
    starting the job, so a refused restore changes nothing."""
    if body.name is not None:  # the schema's rule holds for a given name, used (as_new) or not
        check_name(body.name, "new name")
    with svc.snapshots.claim_restore(snap_id, body.as_new) as claim:
        snap = svc.snapshots.restorable(snap_id)
        params = {"snapshot": snap_id, "name": snap.name, **body.model_dump(mode="json")}
        if snap.subject_type == "vm":
            kind, run = _vm_restore(svc, snap_id, body, who.name)
        else:
            kind, run = _volume_restore(svc, snap_id, body, who.name)
        return start_job(svc, kind, params, run, wait, claim=claim)


def _volume_restore(svc: Services, snap_id: str, body: RestoreRequest, actor: str) -> tuple[str, JobFunction]:
    if body.power_off or body.preserve_macs:
        raise InvalidInput("power_off and preserve_macs apply to VM snapshots only")
    if body.as_new:
        svc.restores.check_new_name(snap_id, body.name)

        def as_new(_progress: Progress) -> dict[str, object]:
            volume = svc.restores.as_new(snap_id, body.name, actor)
            return {"volume_id": volume.id, "volume": volume.name}

        return "snapshot.restore_as_new", as_new

    def in_place(progress: Progress) -> dict[str, object]:
        progress(0.1, "taking the pre-restore snapshot" if body.pre_restore else "restoring")
        return dict(svc.restores.over_source(snap_id, body.mode, body.pre_restore, actor))

    return "snapshot.restore", in_place


def _vm_restore(svc: Services, snap_id: str, body: RestoreRequest, actor: str) -> tuple[str, JobFunction]:
    if body.mode is not RestoreMode.DATA:
        raise InvalidInput("a VM restore always replaces its disks and configuration; mode is for volumes")
    if body.as_new:
        svc.vm_restores.check_new_name(snap_id, body.name)

        def as_new(_progress: Progress) -> dict[str, object]:
            vm = svc.vm_restores.as_new(snap_id, body.name, body.preserve_macs, actor)
            return {"vm_id": vm.id, "vm": vm.name}

        return "snapshot.restore_as_new", as_new
    vm = svc.vms.get(svc.snapshots.get(snap_id).subject_id)
    svc.vms.check_may_overwrite(vm, body.power_off)

    def in_place(progress: Progress) -> dict[str, object]:
        progress(0.1, "taking the pre-restore snapshot" if body.pre_restore else "restoring")
        return dict(
            svc.vm_restores.over_source(snap_id, power_off=body.power_off, pre_restore=body.pre_restore, actor=actor)
        )

    return "snapshot.restore", in_place
