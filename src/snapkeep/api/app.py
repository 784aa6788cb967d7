"""The FastAPI application: the request gate, routers, the error handlers (api/problems.py), health, and the
web UI (:mod:`snapkeep.ui`) under ``/``."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from snapkeep import __version__
from snapkeep.api import (
    audit,
    jobs,
    networks,
    profiles,
    restores,
    snapshots,
    tags,
    tenants,
    tokens,
    users,
    vms,
    volumes,
)
from snapkeep.api import settings as settings_api
from snapkeep.api.deps import Svc
from snapkeep.api.gate import RequestGate
from snapkeep.api.problems import install_error_handlers, install_openapi
from snapkeep.services.container import Services
from snapkeep.ui.site import install_ui

misc = APIRouter(prefix="/api/v1", tags=["service"])


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


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="snapkeep",
        version=__version__,
        description="Instant snapshots and restores for KVM/libvirt hosts.",
        docs_url=None,  # the UI's own /docs (no CDN scripts); no ReDoc
        redoc_url=None,
    )
    app.state.services = services
    app.add_middleware(RequestGate)
    install_error_handlers(app)
    for router in (misc, volumes.router, vms.router, snapshots.router, restores.router, jobs.router):
        app.include_router(router)
    for router in (tenants.router, networks.router, settings_api.router, tags.router, tokens.router, profiles.router):
        app.include_router(router)
    for router in (users.router, audit.router):
        app.include_router(router)
    install_ui(app)
    install_openapi(app)
    return app
