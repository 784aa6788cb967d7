"""Taking a snapshot from the browser: of a volume, a VM (quiesced if asked), the system or a tenant.

One form serves every kind of subject; the fields that mean nothing for a kind are not shown (quiesce for
system snapshots, tags and "private" for volumes and VMs), and the snapshot service refuses them anyway. The
take runs as a job: the browser is sent to the job's page, which follows its progress.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from snapkeep.model.selection import Selection
from snapkeep.model.timespec import parse_expiry
from snapkeep.model.types import QuiescePolicy
from snapkeep.services.container import Services
from snapkeep.services.logins import Visit
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects.base import WHOLE_SYSTEM
from snapkeep.ui import forms
from snapkeep.ui.deps import Form, UiSvc, Visitor
from snapkeep.ui.errors import FORM_ERRORS
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)

_QUIESCE = frozenset({"volume", "vm"})  # subjects a take can quiesce
_GROUPS = frozenset({"system", "tenant"})  # snapshots of many objects: partial by tags


def _form(
    request: Request,
    svc: Services,
    visit: Visit,
    subject_type: str,
    ref: str,
    values: Mapping[str, object],
    error: str = "",
    status: int = 200,
) -> Response:
    subject = svc.snapshots.subject(subject_type, ref, visit.who)
    return render(
        request,
        "flows/take.html",
        visit,
        status=status,
        subject=subject,
        subject_type=subject_type,
        what="the system" if subject.id == WHOLE_SYSTEM else f"{subject_type} {subject.name}",
        action=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        quiesce=subject_type in _QUIESCE,
        group=subject_type in _GROUPS,
        error=error,
        values=values,
    )


def _request(svc: Services, form: Form, subject_type: str, ref: str) -> TakeRequest:
    policy = forms.optional(form, "quiesce_policy")
    return TakeRequest(
        ref=ref,
        subject_type=subject_type,
        name=forms.text(form, "name"),
        description=forms.text(form, "description"),
        expires_at=None if forms.flag(form, "never") else parse_expiry(forms.optional(form, "expires"), svc.clock()),
        quiesce=forms.flag(form, "quiesce"),
        quiesce_policy=QuiescePolicy(policy) if policy in {p.value for p in QuiescePolicy} else None,
        immutable=forms.flag(form, "immutable"),
        private=forms.flag(form, "private") if subject_type == "system" else None,
        selection=Selection(tuple(forms.words(form, "include_tags")), tuple(forms.words(form, "exclude_tags"))),
    )


def _take(request: Request, svc: Services, visit: Visit, form: Form, subject_type: str, ref: str) -> Response:
    """Submit the take and go to its job; a refused request (a taken name, an expiry in the past) shows the
    form again with the reason and what was typed."""
    try:
        job = svc.snapshots.submit_take(_request(svc, form, subject_type, ref), who=visit.who)
    except FORM_ERRORS as exc:
        return _form(request, svc, visit, subject_type, ref, form, exc.message, exc.http_status)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/volumes/{ref}/snapshot")
def volume_take_form(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    return _form(request, svc, visit, "volume", ref, {})


@router.post("/volumes/{ref}/snapshot")
def volume_take(request: Request, visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    return _take(request, svc, visit, form, "volume", ref)


@router.get("/vms/{ref}/snapshot")
def vm_take_form(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    return _form(request, svc, visit, "vm", ref, {})


@router.post("/vms/{ref}/snapshot")
def vm_take(request: Request, visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    return _take(request, svc, visit, form, "vm", ref)


@router.get("/tenants/{ref}/snapshot")
def tenant_take_form(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    """A tenant snapshot: the tenant's subtree, taken by its parent."""
    return _form(request, svc, visit, "tenant", ref, {})


@router.post("/tenants/{ref}/snapshot")
def tenant_take(request: Request, visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    return _take(request, svc, visit, form, "tenant", ref)


@router.get("/system/snapshot")
def system_take_form(request: Request, visit: Visitor, svc: UiSvc, tenant: str | None = None) -> Response:
    """A system snapshot of the caller's scope, or (``?tenant=``) a tenant's own system snapshot."""
    return _form(request, svc, visit, "system", tenant or "system", {"private": "on"})


@router.post("/system/snapshot")
def system_take(request: Request, visit: Visitor, svc: UiSvc, form: Form, tenant: str | None = None) -> Response:
    return _take(request, svc, visit, form, "system", tenant or "system")
