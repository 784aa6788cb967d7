"""Snapshots: the list with the API's filters, one snapshot, and what a system or tenant snapshot holds."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from snapkeep.errors import InvalidInput
from snapkeep.model.cursors import Listing
from snapkeep.model.filters import SnapshotFilter
from snapkeep.model.types import SnapshotKind, SnapshotStatus
from snapkeep.services.contents import read_contents
from snapkeep.ui.deps import UiSvc, Visitor
from snapkeep.ui.paging import next_url, window
from snapkeep.ui.rows import snapshot_row, snapshot_rows
from snapkeep.ui.templating import render
from snapkeep.ui.tree import nest

router = APIRouter(include_in_schema=False)
SNAPSHOTS = Listing("snapshots", (datetime, str))
SUBJECT_TYPES = ("volume", "vm", "tenant", "system")


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}", **{name: value[:100]})
    return value


@router.get("/snapshots")
def snapshot_list(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    """Filtered as the API's listing: one subject (a volume, VM or tenant by id or name; the system's own
    system snapshots, or with a tenant that tenant's) or every subject of a type, kind, status, origin,
    period."""
    query = request.query_params
    subject_type = _choice(request, "subject_type", SUBJECT_TYPES)
    subject = (query.get("subject") or "").strip() or None
    if subject_type == "system" and subject is None:
        subject = "system"
    if subject is not None and subject_type is None:
        raise InvalidInput("say what kind of subject to list the snapshots of", subject=subject[:100])
    kind = _choice(request, "kind", tuple(SnapshotKind))
    status = _choice(request, "status", tuple(SnapshotStatus))
    where = SnapshotFilter(
        subject_type=subject_type,
        kind=SnapshotKind(kind) if kind else None,
        status=SnapshotStatus(status) if status else None,
        origin=(query.get("origin") or "")[:128] or None,
        period_id=(query.get("period") or "")[:36] or None,
    )
    page = svc.snapshots.page(where, window(request, SNAPSHOTS), subject, who=visit.who)
    return render(
        request,
        "snapshots/list.html",
        visit,
        rows=snapshot_rows(svc, page.items, visit.who),
        next_url=next_url(request, SNAPSHOTS, page),
        filters={key: query.get(key, "") for key in ("subject_type", "subject", "kind", "status", "origin", "period")},
        subject_types=SUBJECT_TYPES,
        kinds=[k.value for k in SnapshotKind],
        statuses=[s.value for s in SnapshotStatus],
    )


@router.get("/snapshots/{snap_id}")
def snapshot_detail(request: Request, visit: Visitor, svc: UiSvc, snap_id: str) -> Response:
    snap = svc.snapshots.get(snap_id, visit.who)
    return render(
        request,
        "snapshots/detail.html",
        visit,
        row=snapshot_row(svc, snap, visit.who),
        subject_type="snapshot",
        snapshot=snap,
        owned=svc.snapshots.is_own(snap, visit.who),
    )


@router.get("/snapshots/{snap_id}/contents")
def snapshot_contents(request: Request, visit: Visitor, svc: UiSvc, snap_id: str) -> Response:
    """Tenants (as a tree), VMs, volumes, networks and settings, as recorded, within the caller's scope."""
    contents = read_contents(svc.snapshots, snap_id, visit.who)
    tenants = {node.id: node.path for node in contents.tenants}
    return render(
        request,
        "snapshots/contents.html",
        visit,
        contents=contents,
        row=snapshot_row(svc, contents.snapshot, visit.who),
        tenants=tenants,
        tree=nest(contents.tenants, lambda node: node.id, lambda node: node.parent_id),
    )
