"""The dashboard: what an operator checks first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from snapkeep.ui.deps import Visitor
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/")
def dashboard(request: Request, visit: Visitor) -> Response:
    return render(request, "dashboard.html", visit)
