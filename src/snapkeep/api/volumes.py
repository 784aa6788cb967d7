"""``/volumes``: NAS volumes."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Query, status

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.jobs import MAX_WAIT, job_response
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.schemas import JobPublic, VolumeCreate, VolumePublic, VolumeUpdate
from snapkeep.model.principal import Principal
from snapkeep.model.types import Volume
from snapkeep.model.units import parse_size
from snapkeep.services.container import Services

router = APIRouter(prefix="/api/v1/volumes", tags=["volumes"])
VOLUMES = Listing("volumes", (str, str))


def public(svc: Services, volume: Volume, who: Principal) -> VolumePublic:
    """Host paths are shown to admins of the whole system only (the table in :mod:`snapkeep.services`)."""
    return VolumePublic.of(volume, svc.pool.limits_enforced, host_paths=who.is_system_admin)


@router.get("", response_model=list[VolumePublic], responses=PAGED)
def list_volumes(
    svc: Svc,
    who: Caller,
    pages: Paged,
    tenant: str | None = Query(None, max_length=4096, description="owned by this tenant"),
) -> Sequence[VolumePublic]:
    """By name, a page at a time."""
    page = svc.volumes.page(pages.window(VOLUMES), tenant, who=who)
    return pages.send(VOLUMES, page, lambda volume: public(svc, volume, who))


@router.post("", response_model=VolumePublic, status_code=status.HTTP_201_CREATED)
def create_volume(svc: Svc, who: Caller, body: VolumeCreate) -> VolumePublic:
    size = parse_size(body.size_limit) if body.size_limit is not None else None
    volume = svc.volumes.create(body.name, size, body.description, who=who, tenant=body.tenant, tags=body.tags)
    return public(svc, volume, who)


@router.get("/{ref}", response_model=VolumePublic)
def get_volume(svc: Svc, who: Caller, ref: str) -> VolumePublic:
    return public(svc, svc.volumes.get(ref, who), who)


@router.patch("/{ref}", response_model=VolumePublic)
def update_volume(svc: Svc, who: Caller, ref: str, body: VolumeUpdate) -> VolumePublic:
    size = parse_size(body.size_limit) if body.size_limit is not None else None
    volume = svc.volumes.update(
        ref,
        name=body.name,
        description=body.description,
        size_limit=size,
        settings=body.settings,
        who=who,
    )
    return public(svc, volume, who)


@router.delete("/{ref}", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def delete_volume(svc: Svc, who: Caller, ref: str, wait: float = Query(0.0, ge=0, le=MAX_WAIT)) -> JobPublic:
    return job_response(svc, svc.volumes.submit_delete(ref, svc.snapshots, who=who), wait)
