"""Networks: the list, and one network's definition. A network is no snapshot subject of its own: system
and tenant snapshots record it with the rest of their subtree (their contents pages show it)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from snapkeep.model.cursors import Listing
from snapkeep.ui.deps import UiSvc, Visitor
from snapkeep.ui.paging import next_url, window
from snapkeep.ui.rows import owner_names
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)
NETWORKS = Listing("networks", (str, str))


@router.get("/networks")
def network_list(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    page = svc.networks.page(visit.who, window(request, NETWORKS))
    return render(
        request,
        "networks/list.html",
        visit,
        networks=page.items,
        owners=owner_names(svc, visit.who),
        next_url=next_url(request, NETWORKS, page),
    )


@router.get("/networks/{ref}")
def network_detail(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    network = svc.networks.get(visit.who, ref)
    return render(
        request,
        "networks/detail.html",
        visit,
        network=network,
        owners=owner_names(svc, visit.who),
        subject_type="network",
        subject=network,
    )
