"""Changing one snapshot from its page: deleting it and unlocking an immutable one, each behind a
confirmation page that names exactly what goes (or when it becomes deletable), and measuring the space it
holds. The snapshot service decides: deleting is an operator's and is refused while the snapshot is locked or
busy (the refusal audited), unlocking is an admin's; the confirmation pages ask the same roles, so nobody is
shown a button that would be refused.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from snapkeep.model.principal import Role
from snapkeep.ui.deps import UiSvc, Visitor
from snapkeep.ui.rows import snapshot_row
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/snapshots/{snap_id}/delete")
def delete_form(request: Request, visit: Visitor, svc: UiSvc, snap_id: str) -> Response:
    """What deleting takes away: the snapshot, its data in the pool, and every restore it allowed (for a
    system snapshot, of each object it recorded); or why it cannot go yet."""
    visit.who.require(Role.OPERATOR)
    snap = svc.snapshots.own(snap_id, visit.who)  # not a parent's exposed one: that is the parent's to delete
    return render(request, "snapshots/delete.html", visit, row=snapshot_row(svc, snap, visit.who))


@router.post("/snapshots/{snap_id}/delete")
def delete(visit: Visitor, svc: UiSvc, snap_id: str) -> Response:
    job = svc.snapshots.submit_delete(snap_id, who=visit.who)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/snapshots/{snap_id}/unlock")
def unlock_form(request: Request, visit: Visitor, svc: UiSvc, snap_id: str) -> Response:
    """When the snapshot becomes deletable once unlocked now: the earlier of its expiry and the end of the
    cooling-off period."""
    visit.who.require(Role.ADMIN)
    snap = svc.snapshots.own(snap_id, visit.who)
    deletable_at = svc.snapshots.deletable_at(replace(snap, unlocked_at=svc.clock()))
    return render(
        request, "snapshots/unlock.html", visit, row=snapshot_row(svc, snap, visit.who), deletable_at=deletable_at
    )


@router.post("/snapshots/{snap_id}/unlock")
def unlock(visit: Visitor, svc: UiSvc, snap_id: str) -> Response:
    svc.snapshots.unlock(snap_id, who=visit.who)
    return RedirectResponse(f"/snapshots/{snap_id}", status_code=303)


@router.post("/snapshots/{snap_id}/space")
def measure_space(visit: Visitor, svc: UiSvc, snap_id: str) -> Response:
    """Measured in the background (it reads every extent of the snapshot); its job page follows it."""
    job = svc.snapshots.submit_space(snap_id, who=visit.who)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)
