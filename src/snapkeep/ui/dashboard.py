"""The dashboard: what an operator checks first (counts, the scheduler's runs, the last day's failures,
space); the numbers come from :mod:`snapkeep.services.overview`, through the visitor's scope."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from snapkeep.services.overview import overview
from snapkeep.ui.deps import UiSvc, Visitor
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    return render(request, "dashboard.html", visit, view=overview(svc.db, svc.pool, svc.clock, svc.audit, visit.who))
