"""Volumes: the list, and one volume with its configuration and snapshots."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from snapkeep.model.cursors import Listing
from snapkeep.ui.deps import UiSvc, Visitor
from snapkeep.ui.paging import next_url, window
from snapkeep.ui.rows import owner_names
from snapkeep.ui.subject_snapshots import subject_snapshots
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)
VOLUMES = Listing("volumes", (str, str))


@router.get("/volumes")
def volume_list(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    page = svc.volumes.page(window(request, VOLUMES), who=visit.who)
    return render(
        request,
        "volumes/list.html",
        visit,
        volumes=page.items,
        owners=owner_names(svc, visit.who),
        next_url=next_url(request, VOLUMES, page),
    )


@router.get("/volumes/{ref}")
def volume_detail(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    volume = svc.volumes.get(ref, visit.who)
    snapshots = subject_snapshots(svc, visit.who, "volume", volume.id)
    return render(
        request,
        "volumes/detail.html",
        visit,
        volume=volume,
        limits_enforced=svc.pool.limits_enforced,
        owners=owner_names(svc, visit.who),
        subject_type="volume",
        subject=volume,
        snapshots=snapshots,
        timeline_snapshots=[row.snap for row in snapshots.rows],
    )
