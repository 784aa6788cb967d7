"""``/volumes``: NAS volumes."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from snapkeep.api.deps import Operator, Svc, Viewer
from snapkeep.api.jobs import MAX_WAIT, start_job
from snapkeep.api.schemas import JobPublic, VolumeCreate, VolumePublic, VolumeUpdate
from snapkeep.model.units import parse_size
from snapkeep.services.jobs import Progress

router = APIRouter(prefix="/api/v1/volumes", tags=["volumes"])


@router.get("", response_model=list[VolumePublic])
def list_volumes(svc: Svc, _who: Viewer) -> list[VolumePublic]:
    return [VolumePublic.of(v) for v in svc.volumes.list()]


@router.post("", response_model=VolumePublic, status_code=status.HTTP_201_CREATED)
def create_volume(svc: Svc, who: Operator, body: VolumeCreate) -> VolumePublic:
    volume = svc.volumes.create(body.name, parse_size(body.size_limit), body.description, actor=who.name)
    return VolumePublic.of(volume)


@router.get("/{ref}", response_model=VolumePublic)
def get_volume(svc: Svc, _who: Viewer, ref: str) -> VolumePublic:
    return VolumePublic.of(svc.volumes.get(ref))


@router.patch("/{ref}", response_model=VolumePublic)
def update_volume(svc: Svc, who: Operator, ref: str, body: VolumeUpdate) -> VolumePublic:
    size = parse_size(body.size_limit) if body.size_limit is not None else None
    volume = svc.volumes.update(
        ref,
        name=body.name,
        description=body.description,
        size_limit=size,
        settings=body.settings,
        actor=who.name,
    )
    return VolumePublic.of(volume)


@router.delete("/{ref}", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def delete_volume(svc: Svc, who: Operator, ref: str, wait: float = Query(0.0, ge=0, le=MAX_WAIT)) -> JobPublic:
    volume = svc.volumes.get(ref)
    with svc.volumes.claim_delete(volume, svc.snapshots) as claim:
        for snap in svc.snapshots.listing(volume.id):
            svc.snapshots.check_deletable(snap, who.name)

        def run(_progress: Progress) -> dict[str, object]:
            svc.volumes.delete(volume.id, svc.snapshots, actor=who.name)
            return {"volume_id": volume.id}

        return start_job(svc, "volume.delete", {"volume": volume.name}, run, wait, claim)
