"""Restoring from the browser: every restore SPEC §3 lists that the restore service performs.

``/snapshots/{id}/restore`` offers what applies to the snapshot's kind: a volume or VM snapshot over its
subject or as a new one; a system or tenant snapshot over the whole scope it holds, or one VM, volume or
tenant of it over itself or as new, or one VM's or volume's state imported as a snapshot of it. Restoring as
new or importing changes nothing that exists, so it is a plain form. Restoring over something goes through
a confirmation page (GET ``.../restore/confirm`` with the options) that names what will be overwritten, the
snapshot and its time, and whether a pre-restore snapshot is taken first; only its POST restores. Every
check is the service's: a VM that runs, a tenant online, a taken name are refused with its message.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from snapkeep.errors import InvalidInput
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.types import RestoreMode, Snapshot, SnapshotKind, SubjectType
from snapkeep.services.container import Services
from snapkeep.services.contents import Contents, read_contents
from snapkeep.services.logins import Visit
from snapkeep.services.subjects import RestoreOptions
from snapkeep.services.subjects.base import WHOLE_SYSTEM
from snapkeep.ui import forms
from snapkeep.ui.deps import Form, UiSvc, Visitor
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)

_MEMBER_TYPES = {t.value: t for t in (SubjectType.VM, SubjectType.VOLUME, SubjectType.TENANT)}
_GROUPS = (SnapshotKind.SYSTEM, SnapshotKind.TENANT)


def _options(fields: forms.Fields, as_new: bool) -> RestoreOptions:
    """The restore's options from a form (or the confirmation page's query string)."""
    member_type = forms.text(fields, "member_type")
    member = forms.optional(fields, "member")
    if member is not None and member_type not in _MEMBER_TYPES:
        raise InvalidInput("a member of a system snapshot is a vm, a volume or a tenant")
    mode = forms.text(fields, "mode", RestoreMode.DATA.value)
    return RestoreOptions(
        as_new=as_new,
        name=forms.optional(fields, "name") if as_new else None,
        mode=RestoreMode(mode) if mode in {m.value for m in RestoreMode} else RestoreMode.DATA,
        pre_restore=forms.flag(fields, "pre_restore"),
        power_off=forms.flag(fields, "power_off"),
        preserve_macs=forms.flag(fields, "preserve_macs"),
        member_type=_MEMBER_TYPES[member_type] if member is not None else None,
        member=member,
    )


def _contents(svc: Services, visit: Visit, snap_id: str) -> Contents:
    return read_contents(svc.snapshots, snap_id, visit.who)


@router.get("/snapshots/{snap_id}/restore")
def restore_form(request: Request, visit: Visitor, svc: UiSvc, snap_id: str) -> Response:
    snap = svc.snapshots.get(snap_id, visit.who)
    contents = _contents(svc, visit, snap_id) if snap.kind in _GROUPS else None
    return render(request, "flows/restore.html", visit, snap=snap, contents=contents)


@router.post("/snapshots/{snap_id}/restore")
def restore_as_new(visit: Visitor, svc: UiSvc, form: Form, snap_id: str) -> Response:
    """As new: nothing existing changes, so no confirmation."""
    job = svc.restores.submit(snap_id, _options(form, as_new=True), visit.who)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/snapshots/{snap_id}/restore/confirm")
def restore_confirm(request: Request, visit: Visitor, svc: UiSvc, snap_id: str) -> Response:
    """Names exactly what the restore overwrites, removes, brings back and stops (the service's own checks,
    so a restore that would be refused is refused here already); nothing changes until its button is
    pressed."""
    options = _options(request.query_params, as_new=False)
    snap = svc.snapshots.get(snap_id, visit.who)
    effects = svc.restores.preview(snap_id, options, visit.who)
    contents = _contents(svc, visit, snap_id) if snap.kind in _GROUPS else None
    member_name = None
    if options.member is not None and contents is not None:
        if options.member_type is SubjectType.TENANT:
            found = [t.path for t in contents.tenants if options.member in (t.id, t.name)]
        else:
            found = [o.name for o in _members(contents, str(options.member_type)) if options.member in (o.id, o.name)]
        if not found:
            raise InvalidInput(f"snapshot {snap.name!r} holds no {options.member_type} {options.member!r}")
        member_name = found[0]
    return render(
        request,
        "flows/restore_confirm.html",
        visit,
        snap=snap,
        options=options,
        target=_target(snap, options, member_name),
        effects=effects,
        whole=snap.kind in _GROUPS and options.member_type in (None, SubjectType.TENANT),
        query=request.url.query,
    )


def _target(snap: Snapshot, options: RestoreOptions, member_name: str | None) -> str:
    """What a restore over the source overwrites, in words."""
    if options.member is not None:
        return f"{options.member_type} {member_name}"
    if snap.subject_id == WHOLE_SYSTEM:
        return "the whole system"
    if snap.kind in _GROUPS:
        return f"tenant {snap.subject_name} and its whole subtree"
    return f"{snap.subject_type} {snap.subject_name}"


def _members(contents: Contents, member_type: str) -> list[ManifestObject]:
    return {"vm": contents.vms, "volume": contents.volumes}.get(member_type, [])


@router.post("/snapshots/{snap_id}/restore/confirm")
def restore_over(visit: Visitor, svc: UiSvc, form: Form, snap_id: str) -> Response:
    job = svc.restores.submit(snap_id, _options(form, as_new=False), visit.who)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/snapshots/{snap_id}/import")
def import_member(visit: Visitor, svc: UiSvc, form: Form, snap_id: str) -> Response:
    """One VM's or volume's state out of a system snapshot, as a snapshot of that VM or volume."""
    member_type = forms.text(form, "member_type")
    if member_type not in ("vm", "volume"):
        raise InvalidInput("import a vm or a volume out of a system snapshot")
    member = forms.text(form, "member")
    job = svc.imports.submit(snap_id, SubjectType(member_type), member, forms.optional(form, "name"), who=visit.who)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)
