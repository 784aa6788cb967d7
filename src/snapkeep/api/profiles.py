"""``/profiles``: snapshot profiles, their periods, assignments and previews; ``/scheduler``: what runs next.

A profile is addressed by id or by name (within the caller's own owner), a period by its name within the
profile. Unassigning is addressed by the subject (``/assignments/{subject_type}/{subject}``), since a
subject has at most one profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fastapi import APIRouter, Query, Response, status

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.profile_schemas import (
    AssignmentPublic,
    AssignRequest,
    PeriodCreate,
    PeriodUpdate,
    PlannedPublic,
    ProfileCreate,
    ProfilePublic,
    ProfileUpdate,
    ScheduledPublic,
)
from snapkeep.model.paging import page_of
from snapkeep.model.profile import SubjectOfProfile
from snapkeep.services.profiles import upcoming

router = APIRouter(prefix="/api/v1", tags=["profiles"])
PROFILES = Listing("profiles", (str, str))
SCHEDULE = Listing("scheduler", (datetime, int))
ASSIGNMENTS = Listing("assignments", (int,))
PREVIEW = Listing("preview", (datetime, str, str))
At = Query(description="the time to preview (ISO 8601; in the future)")


@router.get("/profiles", response_model=list[ProfilePublic], responses=PAGED)
def list_profiles(svc: Svc, who: Caller, pages: Paged) -> Sequence[ProfilePublic]:
    """By name, a page at a time."""
    page = svc.profiles.page(who, pages.window(PROFILES))
    return pages.send(PROFILES, page, lambda p: ProfilePublic.of(svc.profiles.saved(p)))


@router.post("/profiles", response_model=ProfilePublic, status_code=status.HTTP_201_CREATED)
def create_profile(svc: Svc, who: Caller, body: ProfileCreate) -> ProfilePublic:
    """Answers with the steady-state estimate, and a warning when it passes the threshold."""
    saved = svc.profiles.create(
        body.name,
        who,
        description=body.description,
        timezone=body.timezone,
        periods=tuple(p.period() for p in body.periods),
        ignore_warning=body.ignore_warning,
        tenant=body.tenant,
    )
    return ProfilePublic.of(saved)


@router.get("/profiles/{ref}", response_model=ProfilePublic)
def get_profile(svc: Svc, who: Caller, ref: str) -> ProfilePublic:
    return ProfilePublic.of(svc.profiles.saved(svc.profiles.get(ref, who)))


@router.patch("/profiles/{ref}", response_model=ProfilePublic)
def update_profile(svc: Svc, who: Caller, ref: str, body: ProfileUpdate) -> ProfilePublic:
    return ProfilePublic.of(svc.profiles.update(ref, who, **body.model_dump(exclude_none=True)))


@router.delete("/profiles/{ref}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_profile(svc: Svc, who: Caller, ref: str, detach: bool = False) -> Response:
    """Refused while assigned unless ``detach``; the snapshots it took stay, with their expiry."""
    svc.profiles.delete(ref, who, detach=detach)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/profiles/{ref}/periods", response_model=ProfilePublic, status_code=status.HTTP_201_CREATED)
def add_period(svc: Svc, who: Caller, ref: str, body: PeriodCreate) -> ProfilePublic:
    return ProfilePublic.of(svc.profiles.add_period(ref, body.period(), who))


@router.patch("/profiles/{ref}/periods/{name}", response_model=ProfilePublic)
def update_period(svc: Svc, who: Caller, ref: str, name: str, body: PeriodUpdate) -> ProfilePublic:
    return ProfilePublic.of(svc.profiles.update_period(ref, name, who, **body.changes()))


@router.delete("/profiles/{ref}/periods/{name}", response_model=ProfilePublic)
def remove_period(svc: Svc, who: Caller, ref: str, name: str) -> ProfilePublic:
    return ProfilePublic.of(svc.profiles.remove_period(ref, name, who))


@router.get("/profiles/{ref}/assignments", response_model=list[AssignmentPublic], responses=PAGED)
def list_assignments(svc: Svc, who: Caller, ref: str, pages: Paged) -> Sequence[AssignmentPublic]:
    """The subjects the profile is on, in the order it was assigned, a page at a time."""
    page = svc.profiles.assignments_page(ref, who, pages.window(ASSIGNMENTS))
    return pages.send(ASSIGNMENTS, page, AssignmentPublic.of)


@router.post("/profiles/{ref}/assignments", response_model=AssignmentPublic, status_code=status.HTTP_201_CREATED)
def assign_profile(svc: Svc, who: Caller, ref: str, body: AssignRequest) -> AssignmentPublic:
    """A subject has one profile: one it had before is replaced."""
    return AssignmentPublic.of(svc.profiles.assign(ref, body.subject_type, body.subject, who))


@router.delete("/assignments/{subject_type}/{subject}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def unassign_profile(svc: Svc, who: Caller, subject_type: SubjectOfProfile, subject: str) -> Response:
    """Idempotent; the subject's snapshots stay, with their expiry."""
    svc.profiles.unassign(subject_type, subject, who)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/profiles/{ref}/preview", response_model=list[PlannedPublic], responses=PAGED)
def preview_profile(
    svc: Svc,
    who: Caller,
    ref: str,
    pages: Paged,
    at: datetime = At,
    subject_type: SubjectOfProfile | None = None,
    subject: str | None = None,
) -> Sequence[PlannedPublic]:
    """Which snapshots of one subject would exist at ``at`` (with a subject: its existing snapshots count
    too), oldest first, a page at a time; nothing is taken."""
    planned = svc.profiles.preview(ref, at, who, subject_type=subject_type, subject=subject)
    page = page_of(planned, pages.window(PREVIEW), lambda p: (p.created_at, p.period, p.name))
    return pages.send(PREVIEW, page, lambda p: PlannedPublic.model_validate(p, from_attributes=True))


@router.get("/scheduler", response_model=list[ScheduledPublic], responses=PAGED)
def scheduler_status(svc: Svc, who: Caller, pages: Paged) -> Sequence[ScheduledPublic]:
    """Every scheduled (subject, period) the caller sees that will run again, next run first, a page at a
    time."""
    return pages.send(SCHEDULE, upcoming(svc.db, who, pages.window(SCHEDULE)), ScheduledPublic.of)
