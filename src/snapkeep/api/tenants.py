"""``/tenants``: nested tenants (create, tree, show, update, power, delete) and their settings.

A tenant is addressed by id or unique name in the path (a path of names, ``acme/dev``, goes in bodies and
query parameters; the CLI turns one into an id). Power changes and deletes are jobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Query, status

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.jobs import MAX_WAIT, job_response
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.schemas import JobPublic, Settings, TenantCreate, TenantPublic, TenantStopRequest, TenantUpdate

router = APIRouter(prefix="/api/v1/tenants", tags=["tenants"])
Wait = Query(0.0, ge=0, le=MAX_WAIT, description="seconds to wait for the job before answering")
TENANTS = Listing("tenants", (str,))


@router.get("", response_model=list[TenantPublic], responses=PAGED)
def list_tenants(svc: Svc, who: Caller, pages: Paged) -> Sequence[TenantPublic]:
    """Every tenant the caller sees, as a tree: each parent before its children (``depth``, ``path``), a page
    at a time."""
    return pages.send(TENANTS, svc.tenants.page(who, pages.window(TENANTS)), TenantPublic.of)


@router.post("", response_model=TenantPublic, status_code=status.HTTP_201_CREATED)
def create_tenant(svc: Svc, who: Caller, body: TenantCreate) -> TenantPublic:
    view = svc.tenants.create(who, body.name, description=body.description, parent=body.parent, tags=body.tags)
    return TenantPublic.of(view)


@router.get("/{ref}", response_model=TenantPublic)
def get_tenant(svc: Svc, who: Caller, ref: str) -> TenantPublic:
    return TenantPublic.of(svc.tenants.get(who, ref))


@router.patch("/{ref}", response_model=TenantPublic)
def update_tenant(svc: Svc, who: Caller, ref: str, body: TenantUpdate) -> TenantPublic:
    return TenantPublic.of(svc.tenants.update(who, ref, name=body.name, description=body.description))


@router.post("/{ref}/start", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def start_tenant(svc: Svc, who: Caller, ref: str, wait: float = Wait) -> JobPublic:
    """Start every VM of the tenant's subtree."""
    return job_response(svc, svc.tenants.submit_power(who, ref, on=True), wait)


@router.post("/{ref}/stop", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def stop_tenant(svc: Svc, who: Caller, ref: str, body: TenantStopRequest, wait: float = Wait) -> JobPublic:
    """Stop every VM of the tenant's subtree."""
    return job_response(svc, svc.tenants.submit_power(who, ref, False, body.force, body.timeout), wait)


@router.delete("/{ref}", response_model=JobPublic, status_code=status.HTTP_202_ACCEPTED)
def delete_tenant(svc: Svc, who: Caller, ref: str, force: bool = False, wait: float = Wait) -> JobPublic:
    """Delete the tenant's whole subtree: refused while online (unless ``force``) or while it holds a locked
    snapshot, changing nothing."""
    return job_response(svc, svc.tenants.submit_delete(who, ref, force), wait)


@router.get("/{ref}/settings", response_model=dict[str, Any])
def get_tenant_settings(svc: Svc, who: Caller, ref: str) -> dict[str, Any]:
    return svc.settings_docs.get(who, tenant=ref)


@router.patch("/{ref}/settings", response_model=dict[str, Any])
def patch_tenant_settings(svc: Svc, who: Caller, ref: str, patch: Settings) -> dict[str, Any]:
    return svc.settings_docs.patch(who, patch, tenant=ref)
