"""Profiles in the browser: the list, one profile with its periods, estimate, warnings, assignments and its
preview drawn as a timeline; creating, editing and deleting profiles; the period editor; assigning.

Every change calls the profile service as the API does; a refused form (an invalid period, a taken name) is
shown again with the service's message and what was typed. Deleting a profile or removing a period goes
through a confirmation page that names it (and, for a profile, the subjects it is still assigned to).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from snapkeep.errors import InvalidInput
from snapkeep.model.paging import Window
from snapkeep.model.profile import Period, Profile, SubjectOfProfile
from snapkeep.model.schedule import DAYS, INTERVALS, MONTHS, describe
from snapkeep.services.container import Services
from snapkeep.services.logins import Visit
from snapkeep.ui import forms
from snapkeep.ui.deps import Form, UiSvc, Visitor
from snapkeep.ui.errors import FORM_ERRORS
from snapkeep.ui.period_form import FREQUENCIES, new_period, period_fields, period_values, retention_text
from snapkeep.ui.templating import render
from snapkeep.ui.timeline import profile_drawing

router = APIRouter(include_in_schema=False)
SUBJECT_TYPES = tuple(t.value for t in SubjectOfProfile)
CHOICES = {"frequencies": FREQUENCIES, "days": DAYS, "months": MONTHS, "intervals": INTERVALS}


def _subject_type(text: str) -> SubjectOfProfile:
    if text not in SUBJECT_TYPES:
        raise InvalidInput(f"a profile is assigned to one of {', '.join(SUBJECT_TYPES)}", subject_type=text)
    return SubjectOfProfile(text)


@router.get("/profiles")
def profile_list(
    request: Request,
    visit: Visitor,
    svc: UiSvc,
    after: str | None = None,
    after_id: str | None = None,
    assign: str | None = None,
    subject: str | None = None,
) -> Response:
    """The profiles by name, a page at a time; with ``assign`` and ``subject``, a form to assign one to it."""
    window = Window(after=(after, after_id) if after is not None and after_id is not None else None)
    page = svc.profiles.page(visit.who, window)
    saved = [svc.profiles.saved(p) for p in page.items]
    target = (_subject_type(assign), subject) if assign and subject else None
    return render(request, "profiles/list.html", visit, profiles=saved, next=page.next, target=target)


def _form_page(
    request: Request,
    visit: Visit,
    values: forms.Fields | dict[str, str],
    error: str,
    status: int,
    profile: Profile | None = None,
) -> Response:
    """The profile form (new, or editing ``profile``), with what was typed and why it was refused."""
    return render(request, "profiles/form.html", visit, status=status, values=values, error=error, profile=profile)


@router.get("/profiles/new")
def new_profile_form(request: Request, visit: Visitor) -> Response:
    return _form_page(request, visit, {"timezone": "UTC"}, "", 200)


@router.post("/profiles/new")
def create_profile(request: Request, visit: Visitor, svc: UiSvc, form: Form) -> Response:
    try:
        saved = svc.profiles.create(
            forms.text(form, "name"),
            visit.who,
            description=forms.text(form, "description"),
            timezone=forms.text(form, "timezone") or "UTC",
            ignore_warning=forms.flag(form, "ignore_warning"),
            tenant=forms.optional(form, "tenant"),
        )
    except FORM_ERRORS as exc:
        return _form_page(request, visit, form, exc.message, exc.http_status)
    return RedirectResponse(f"/profiles/{saved.profile.id}", status_code=303)


def _profile_page(
    request: Request,
    svc: Services,
    visit: Visit,
    ref: str,
    weeks: int = 4,
    subject_type: str | None = None,
    subject: str | None = None,
    error: str = "",
    status: int = 200,
    values: forms.Fields | None = None,
) -> Response:
    saved = svc.profiles.saved(svc.profiles.get(ref, visit.who))
    now = svc.clock()
    until = now + timedelta(weeks=weeks)
    kind = _subject_type(subject_type) if subject_type and subject else None
    named = subject if kind is not None else None
    profile, lives = svc.profiles.timeline(saved.profile.id, until, visit.who, subject_type=kind, subject=named)
    return render(
        request,
        "profiles/show.html",
        visit,
        status=status,
        saved=saved,
        runs={p.name: describe(p, profile.timezone) for p in profile.periods},
        retention={p.name: retention_text(p) for p in profile.periods},
        assignments=svc.profiles.assignments(visit.who, saved.profile.id),
        drawing=profile_drawing(profile, lives, now, until),
        weeks=weeks,
        subject_type=subject_type or "",
        subject=subject or "",
        subject_types=SUBJECT_TYPES,
        error=error,
        values=values or {"min_snapshots": "1", "private": "on", "retention": "7d"},
        **CHOICES,
    )


@router.get("/profiles/{ref}")
def show_profile(
    request: Request,
    visit: Visitor,
    svc: UiSvc,
    ref: str,
    weeks: int = Query(4, ge=1, le=8),
    subject_type: str | None = None,
    subject: str | None = None,
) -> Response:
    """The profile, and its preview over the coming ``weeks`` (for a subject: with what it holds already)."""
    return _profile_page(request, svc, visit, ref, weeks, subject_type, subject)


@router.get("/profiles/{ref}/edit")
def edit_profile_form(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    profile = svc.profiles.get(ref, visit.who)
    values = {"name": profile.name, "description": profile.description, "timezone": profile.timezone}
    if profile.ignore_warning:
        values["ignore_warning"] = "on"
    return _form_page(request, visit, values, "", 200, profile)


@router.post("/profiles/{ref}/edit")
def edit_profile(request: Request, visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    profile = svc.profiles.get(ref, visit.who)
    try:
        svc.profiles.update(
            profile.id,
            visit.who,
            name=forms.text(form, "name"),
            description=forms.text(form, "description"),
            timezone=forms.text(form, "timezone") or "UTC",
            ignore_warning=forms.flag(form, "ignore_warning"),
        )
    except FORM_ERRORS as exc:
        page = render(
            request,
            "profiles/form.html",
            visit,
            status=exc.http_status,
            values=form,
            error=exc.message,
            profile=profile,
        )
        return page
    return RedirectResponse(f"/profiles/{profile.id}", status_code=303)


@router.get("/profiles/{ref}/delete")
def delete_profile_confirm(request: Request, visit: Visitor, svc: UiSvc, ref: str) -> Response:
    """Names the profile and every subject it is still assigned to."""
    profile = svc.profiles.get(ref, visit.who)
    assignments = svc.profiles.assignments(visit.who, profile.id)
    return render(request, "profiles/delete.html", visit, profile=profile, assignments=assignments)


@router.post("/profiles/{ref}/delete")
def delete_profile(visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    svc.profiles.delete(ref, visit.who, detach=forms.flag(form, "detach"))
    return RedirectResponse("/profiles", status_code=303)


# --- the period editor -----------------------------------------------------------------------------------


@router.post("/profiles/{ref}/periods")
def add_period(request: Request, visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    profile = svc.profiles.get(ref, visit.who)
    try:
        svc.profiles.add_period(profile.id, new_period(form), visit.who)
    except FORM_ERRORS as exc:
        return _profile_page(request, svc, visit, profile.id, error=exc.message, status=exc.http_status, values=form)
    return RedirectResponse(f"/profiles/{profile.id}#periods", status_code=303)


def _period(svc: Services, visit: Visit, ref: str, name: str) -> tuple[str, Period]:
    profile = svc.profiles.get(ref, visit.who)
    for period in profile.periods:
        if period.name == name:
            return profile.id, period
    raise InvalidInput(f"profile {profile.name!r} has no period named {name!r}", period=name)


@router.get("/profiles/{ref}/periods/{name}")
def edit_period_form(request: Request, visit: Visitor, svc: UiSvc, ref: str, name: str) -> Response:
    profile_id, period = _period(svc, visit, ref, name)
    return _period_page(request, visit, svc, profile_id, period, None, "", 200)


def _period_page(
    request: Request,
    visit: Visit,
    svc: Services,
    profile_id: str,
    period: Period,
    values: forms.Fields | None,
    error: str,
    status: int,
) -> Response:
    profile = svc.profiles.get(profile_id, visit.who)
    return render(
        request,
        "profiles/period.html",
        visit,
        status=status,
        profile=profile,
        period=period,
        values=values if values is not None else period_values(period),
        error=error,
        **CHOICES,
    )


@router.post("/profiles/{ref}/periods/{name}")
def update_period(request: Request, visit: Visitor, svc: UiSvc, form: Form, ref: str, name: str) -> Response:
    """Every field as the form shows it (renaming included); the period's slots are computed again."""
    profile_id, period = _period(svc, visit, ref, name)
    try:
        svc.profiles.update_period(profile_id, name, visit.who, **period_fields(form))
    except FORM_ERRORS as exc:
        return _period_page(request, visit, svc, profile_id, period, form, exc.message, exc.http_status)
    return RedirectResponse(f"/profiles/{profile_id}#periods", status_code=303)


@router.get("/profiles/{ref}/periods/{name}/remove")
def remove_period_confirm(request: Request, visit: Visitor, svc: UiSvc, ref: str, name: str) -> Response:
    profile_id, period = _period(svc, visit, ref, name)
    profile = svc.profiles.get(profile_id, visit.who)
    return render(request, "profiles/remove_period.html", visit, profile=profile, period=period)


@router.post("/profiles/{ref}/periods/{name}/remove")
def remove_period(visit: Visitor, svc: UiSvc, ref: str, name: str) -> Response:
    profile_id, _period_found = _period(svc, visit, ref, name)
    svc.profiles.remove_period(profile_id, name, visit.who)
    return RedirectResponse(f"/profiles/{profile_id}#periods", status_code=303)


# --- assignments -----------------------------------------------------------------------------------------


@router.post("/profiles/{ref}/assign")
def assign(visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    """A subject has one profile: one it had is replaced."""
    profile = svc.profiles.get(ref, visit.who)
    kind = _subject_type(forms.text(form, "subject_type"))
    svc.profiles.assign(profile.id, kind, forms.text(form, "subject"), visit.who)
    return RedirectResponse(f"/profiles/{profile.id}#assignments", status_code=303)


@router.post("/profiles/{ref}/unassign")
def unassign(visit: Visitor, svc: UiSvc, form: Form, ref: str) -> Response:
    """The subject's snapshots stay, with their expiry."""
    profile = svc.profiles.get(ref, visit.who)
    svc.profiles.unassign(_subject_type(forms.text(form, "subject_type")), forms.text(form, "subject"), visit.who)
    return RedirectResponse(f"/profiles/{profile.id}#assignments", status_code=303)
