"""VMs: the list, and one VM with its configuration and snapshots."""

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
VMS = Listing("vms", (str, str))


@router.get("/vms")
def vm_list(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    page = svc.vms.page(window(request, VMS), who=visit.who)
    return render(
        request,
        "vms/list.html",
        visit,
        vms=page.items,
        owners=owner_names(svc, visit.who),
        next_url=next_url(request, VMS, page),
    )


@router.get("/vms/{ref}")
def vm_detail(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    """Its state from libvirt, without asking the guest agent (which may take its timeout to not answer)."""
    vm = svc.vms.get(ref, who=visit.who)
    networks = {n.id: n.name for n in svc.networks.list(visit.who)}
    snapshots = subject_snapshots(svc, visit.who, "vm", vm.id)
    return render(
        request,
        "vms/detail.html",
        visit,
        vm=vm,
        networks=networks,
        owners=owner_names(svc, visit.who),
        subject_type="vm",
        subject=vm,
        snapshots=snapshots,
        timeline_snapshots=[row.snap for row in snapshots.rows],
    )
