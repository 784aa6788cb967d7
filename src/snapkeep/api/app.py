"""The FastAPI application: the request gate, routers, the error handlers (api/problems.py), health and audit,
and the web UI (:mod:`snapkeep.ui`) under ``/``."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from snapkeep import __version__
from snapkeep.api import jobs, networks, profiles, restores, snapshots, tags, tenants, tokens, vms, volumes
from snapkeep.api import settings as settings_api
from snapkeep.api.deps import Caller, Svc
from snapkeep.api.gate import RequestGate
from snapkeep.api.paging import PAGED, Listing, Paged
from snapkeep.api.problems import install_error_handlers, install_openapi
from snapkeep.api.schemas import AuditPublic
from snapkeep.services.container import Services
from snapkeep.ui.site import install_ui

misc = APIRouter(prefix="/api/v1", tags=["service"])
AUDIT = Listing("audit", (int,))


@misc.get("/health")
def health(svc: Svc) -> dict[str, str | bool | None]:
    """Answers without a token: is the service up, on which pool driver, and are size limits enforced."""
    return {
        "status": "ok",
        "version": __version__,
        "pool_driver": svc.pool.driver.name,
        "limits_enforced": svc.pool.limits_enforced,
        "limits_problem": svc.pool.limits_problem,
    }


@misc.get("/audit", response_model=list[AuditPublic], responses=PAGED)
def audit(svc: Svc, who: Caller, pages: Paged) -> Sequence[AuditPublic]:
    """Newest first, a page at a time."""
    return pages.send(AUDIT, svc.audit.page(who, pages.window(AUDIT)), AuditPublic.of)


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="snapkeep",
        version=__version__,
        description="Instant snapshots and restores for KVM/libvirt hosts.",
    )
    app.state.services = services
    app.add_middleware(RequestGate)
    install_error_handlers(app)
    for router in (misc, volumes.router, vms.router, snapshots.router, restores.router, jobs.router):
        app.include_router(router)
    for router in (tenants.router, networks.router, settings_api.router, tags.router, tokens.router, profiles.router):
        app.include_router(router)
    install_ui(app)
    install_openapi(app)
    return app
