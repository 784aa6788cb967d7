"""The web UI put together: its pages' routers and its static files, added to the service's application."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from snapkeep.ui import (
    apidocs,
    audit,
    auth,
    dashboard,
    files,
    jobs,
    networks,
    profiles,
    restores,
    snapshot_changes,
    snapshots,
    takes,
    tenants,
    tokens,
    users,
    vms,
    volumes,
)
from snapkeep.ui.headers import SecurityHeaders

PAGES = (
    auth.router,
    dashboard.router,
    volumes.router,
    vms.router,
    tenants.router,
    networks.router,
    snapshots.router,
    snapshot_changes.router,
    jobs.router,
    takes.router,
    restores.router,
    files.router,
    profiles.router,
    users.router,
    tokens.router,
    audit.router,
    apidocs.router,
)


def install_ui(app: FastAPI) -> None:
    for router in PAGES:
        app.include_router(router)
    app.mount("/static", StaticFiles(packages=[("snapkeep.ui", "static")]), name="static")
    app.add_middleware(SecurityHeaders)  # outermost: on the request gate's refusals too
