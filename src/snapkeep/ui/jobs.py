"""Jobs: the list, and one job with its progress, polled by htmx every second while it runs.

The progress fragment carries its own polling trigger only while the job is queued or running: the swap
that brings the finished state replaces it with a fragment that has none, so polling stops by itself.
Without JavaScript the page shows the state at load, with a link to reload it.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from snapkeep.model.cursors import Listing
from snapkeep.model.types import JobStatus
from snapkeep.ui.deps import UiSvc, Visitor
from snapkeep.ui.paging import next_url, window
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)
JOBS = Listing("jobs", (datetime, str))
RUNNING = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


@router.get("/jobs")
def job_list(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    page = svc.jobs.page(visit.who, window(request, JOBS))
    return render(request, "jobs/list.html", visit, jobs=page.items, next_url=next_url(request, JOBS, page))


@router.get("/jobs/{job_id}")
def job_detail(request: Request, visit: Visitor, svc: UiSvc, job_id: str) -> Response:
    job = svc.jobs.get(job_id, visit.who)
    return render(request, "jobs/detail.html", visit, job=job, running=job.status in RUNNING)


@router.get("/jobs/{job_id}/progress")
def job_progress(request: Request, visit: Visitor, svc: UiSvc, job_id: str) -> Response:
    """The progress fragment alone (htmx polls it)."""
    job = svc.jobs.get(job_id, visit.who)
    return render(request, "jobs/progress.html", visit, job=job, running=job.status in RUNNING)
