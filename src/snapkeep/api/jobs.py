"""``/jobs``: what long operations are doing; every route that starts one answers 202 with it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fastapi import APIRouter, Query

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.schemas import JobPublic
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import Job

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
MAX_WAIT = 60.0
JOBS = Listing("jobs", (datetime, str))


def job_response(svc: Svc, job: Job, wait: float) -> JobPublic:
    """A job a service submitted, as the answer: after waiting up to ``wait`` seconds for it to end (the
    service handed this caller the job, so it is read as the system)."""
    if wait > 0:
        job = svc.jobs.wait(job.id, min(wait, MAX_WAIT), SYSTEM)
    return JobPublic.of(job)


@router.get("", response_model=list[JobPublic], responses=PAGED)
def list_jobs(svc: Svc, who: Caller, pages: Paged) -> Sequence[JobPublic]:
    """Newest first, a page at a time."""
    return pages.send(JOBS, svc.jobs.page(who, pages.window(JOBS)), JobPublic.of)


@router.get("/{job_id}", response_model=JobPublic)
def get_job(svc: Svc, who: Caller, job_id: str, wait: float = Query(0.0, ge=0, le=MAX_WAIT)) -> JobPublic:
    job = svc.jobs.wait(job_id, wait, who) if wait > 0 else svc.jobs.get(job_id, who)
    return JobPublic.of(job)
