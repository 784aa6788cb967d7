"""The audit log: newest first, a page at a time, narrowed by a filter form (a GET form, so a filtered view
is a link one can keep or share; the "Next page" link keeps the filters)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from snapkeep.errors import InvalidInput
from snapkeep.model.cursors import Listing
from snapkeep.model.filters import AUDIT_OUTCOMES, AuditFilter
from snapkeep.model.timespec import parse_time
from snapkeep.ui.deps import UiSvc, Visitor
from snapkeep.ui.forms import optional
from snapkeep.ui.paging import next_url, window
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)
AUDIT = Listing("audit", (int,))
FIELDS = ("actor", "action", "target", "outcome", "since", "until")


def _filter(typed: dict[str, str]) -> AuditFilter:
    outcome = optional(typed, "outcome")
    if outcome is not None and outcome not in AUDIT_OUTCOMES:
        raise InvalidInput(f"the outcome must be one of {', '.join(AUDIT_OUTCOMES)}", outcome=outcome[:32])
    return AuditFilter(
        actor=optional(typed, "actor"),
        action=optional(typed, "action"),
        target=optional(typed, "target"),
        outcome=outcome,
        since=parse_time(optional(typed, "since"), "since"),
        until=parse_time(optional(typed, "until"), "until"),
    )


@router.get("/audit")
def audit_log(request: Request, visit: Visitor, svc: UiSvc) -> Response:
    typed = {name: request.query_params.get(name, "")[:256] for name in FIELDS}
    page = svc.audit.page(visit.who, window(request, AUDIT), _filter(typed))
    return render(
        request,
        "audit/list.html",
        visit,
        entries=page.items,
        form=typed,
        outcomes=AUDIT_OUTCOMES,
        next_url=next_url(request, AUDIT, page),
    )
