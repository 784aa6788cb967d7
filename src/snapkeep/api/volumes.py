"""``/volumes``: NAS volumes."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from snapkeep.api.deps import Operator, Svc, Viewer
from snapkeep.api.jobs import MAX_WAIT, start_job
from snapkeep.api.schemas import JobPublic, VolumeCreate, VolumePublic, VolumeUpdate
from snapkeep.model.principal import Principal
from snapkeep.model.types import Volume
from snapkeep.model.units import parse_size
from snapkeep.services.container import Services
from snapkeep.services.jobs import Progress

router = APIRouter(prefix="/api/v1/volumes", tags=["volumes"])


def public(svc: Services, volume: Volume, who: Principal) -> VolumePublic:
    return VolumePublic.of(volume, svc.pool.limits_enforced, host_paths=who.is_system_admin)


@router.get("", response_model=list[VolumePublic])
def list_volumes(
    svc: Svc, who: Viewer, tenant: str | None = Query(None, max_length=4096, description="owned by this tenant")
) -> list[VolumePublic]:
    return [public(svc, v, who) for v in svc.volumes.list(tenant)]


@router.post("", response_model=VolumePublic, status_code=status.HTTP_201_CREATED)
def create_volume(svc: Svc, who: Operator, body: VolumeCreate) -> VolumePublic:
    size = parse_size(body.size_limit) if body.size_limit is not None else None
    volume = svc.volumes.create(body.name, size, body.description, actor=who.name, tenant=body.tenant, tags=body.tags)
    return public(svc, volume, who)


@router.get("/{ref}", response_model=VolumePublic)
def get_volume(svc: Svc, who: Viewer, ref: str) -> VolumePublic:
    return public(svc, svc.volumes.get(ref), who)


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
    return public(svc, volume, who)


@router.delete("/{ref}", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def delete_volume(svc: Svc, who: Operator, ref: str, wait: float = Query(0.0, ge=0, le=MAX_WAIT)) -> JobPublic:
    volume = svc.volumes.get(ref)
    with svc.volumes.claim_delete(volume, svc.snapshots) as claim:
        for snap in svc.snapshots.listing(volume.id):
            svc.snapshots.check_deletable(snap, who.name)

        def run(_progress: Progress) -> dict[str, object]:
            svc.volumes.delete(volume.id, svc.snapshots, actor=who.name)
            return {"volume_id": volume.id}

        return start_job(svc, "volume.delete", {"volume": volume.name}, run, wait, claim=claim)
