"""``/audit``: the audit log, newest first, narrowed by who did what to which target, how it ended, and when."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fastapi import APIRouter, Query

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.schemas import AuditPublic
from snapkeep.model.filters import AuditFilter
from snapkeep.model.timespec import parse_time

router = APIRouter(prefix="/api/v1/audit", tags=["service"])
AUDIT = Listing("audit", (int,))


@router.get("", response_model=list[AuditPublic], responses=PAGED)
def audit(
    svc: Svc,
    who: Caller,
    pages: Paged,
    actor: str | None = Query(None, max_length=128, description="only entries of this actor (exactly)"),
    action: str | None = Query(None, max_length=64, description="only this action (exactly), e.g. `user.create`"),
    target: str | None = Query(
        None, max_length=256, description="only targets containing this (case-insensitive), e.g. `user:alice`"
    ),
    outcome: Literal["done", "failed", "refused"] | None = Query(None, description="only entries that ended so"),
    since: str | None = Query(None, max_length=64, description="only entries at or after this time (ISO 8601)"),
    until: str | None = Query(None, max_length=64, description="only entries before this time (ISO 8601)"),
) -> Sequence[AuditPublic]:
    """Newest first, a page at a time; the filters combine (all must match). Times without an offset are UTC."""
    where = AuditFilter(
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        since=parse_time(since, "since"),
        until=parse_time(until, "until"),
    )
    return pages.send(AUDIT, svc.audit.page(who, pages.window(AUDIT), where), AuditPublic.of)
