"""Tenants: the tree, and one tenant with what it owns, its settings and its snapshots (those its parent
took of it, and its own system snapshots)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from snapkeep.model.cursors import Listing
from snapkeep.model.paging import Window
from snapkeep.ui.deps import UiSvc, Visitor
from snapkeep.ui.paging import next_url, window
from snapkeep.ui.subject_snapshots import subject_snapshots
from snapkeep.ui.templating import render
from snapkeep.ui.tree import nest

router = APIRouter(include_in_schema=False)
TENANTS = Listing("tenants", (str,))
OWNED_SHOWN = 100


@router.get("/tenants")
def tenant_tree(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    page = svc.tenants.page(visit.who, window(request, TENANTS))
    return render(
        request,
        "tenants/list.html",
        visit,
        tree=nest(page.items, lambda v: v.tenant.id, lambda v: v.tenant.parent_id),
        next_url=next_url(request, TENANTS, page),
    )


@router.get("/tenants/{ref}")
def tenant_detail(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    view = svc.tenants.get(visit.who, ref)
    tenant_id, who = view.tenant.id, visit.who
    own = tenant_id == who.tenant_id  # its tenant snapshots are its parent's: its own users neither see nor take them
    snapshots = None if own else subject_snapshots(svc, who, "tenant", tenant_id)
    return render(
        request,
        "tenants/detail.html",
        visit,
        view=view,
        tenant=view.tenant,
        children=[v for v in svc.tenants.tree(who) if v.tenant.parent_id == tenant_id],
        volumes=svc.volumes.page(Window(OWNED_SHOWN), tenant_id, who=who).items,
        vms=svc.vms.page(Window(OWNED_SHOWN), tenant_id, who=who).items,
        networks=svc.networks.page(who, Window(OWNED_SHOWN), tenant_id).items,
        settings=svc.settings_docs.get(who, tenant=tenant_id),
        subject_type="tenant",
        subject=view,
        own_tenant=own,
        snapshots=snapshots,
        system_snapshots=subject_snapshots(svc, who, "system", tenant_id),
        timeline_snapshots=[row.snap for row in snapshots.rows] if snapshots else [],
    )
