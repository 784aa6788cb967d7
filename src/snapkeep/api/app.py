"""The FastAPI application: routers, the one error handler, health and audit."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from snapkeep import __version__
from snapkeep.api import jobs, restores, snapshots, vms, volumes
from snapkeep.api.deps import Svc, Viewer
from snapkeep.api.schemas import AuditPublic, ErrorResponse
from snapkeep.errors import InvalidInput, SnapkeepError
from snapkeep.services.container import Services

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


@misc.get("/audit", response_model=list[AuditPublic])
def audit(svc: Svc, _who: Viewer, limit: int = 200) -> list[AuditPublic]:
    return [AuditPublic.of(e) for e in svc.audit.entries(limit)]


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="snapkeep",
        version=__version__,
        description="Instant snapshots and restores for KVM/libvirt hosts.",
        responses={400: {"model": ErrorResponse}},
    )
    app.state.services = services

    @app.exception_handler(SnapkeepError)
    async def snapkeep_error(_request: Request, exc: SnapkeepError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=exc.to_body())

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        error = InvalidInput("the request body or parameters are invalid", problems=jsonable(exc.errors()))
        return JSONResponse(status_code=error.http_status, content=error.to_body())

    for router in (misc, volumes.router, vms.router, snapshots.router, restores.router, jobs.router):
        app.include_router(router)
    return app


def jsonable(errors: object) -> object:
    """Validation problems as plain JSON (pydantic may put exceptions in ``ctx``)."""
    return jsonable_encoder(errors, custom_encoder={Exception: str})
