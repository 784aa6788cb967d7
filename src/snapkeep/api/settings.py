"""``/settings``: the system's settings document (a tenant's is under ``/tenants/{ref}/settings``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.schemas import Settings

router = APIRouter(prefix="/api/v1/settings", tags=["settings"])


@router.get("", response_model=dict[str, Any])
def get_settings(svc: Svc, who: Caller) -> dict[str, Any]:
    return svc.settings_docs.get(who)


@router.patch("", response_model=dict[str, Any])
def patch_settings(svc: Svc, who: Caller, patch: Settings) -> dict[str, Any]:
    """A JSON merge patch of the document (``null`` removes a key); admins of the system only."""
    return svc.settings_docs.patch(who, patch)
