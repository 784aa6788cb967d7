"""How refusals leave the API: one error body for all of them, and an OpenAPI document that says so.

Every refusal answers ``{"error": {...}}`` (``SnapkeepError.to_body``): snapkeep's own errors, invalid
parameters, malformed bodies, unknown routes and wrong methods alike, never FastAPI's ``{"detail": ...}``.
The body is rendered ASCII-escaped, so an error that quotes a lone surrogate can still be sent. A 405
lists in ``Allow`` every method of the path, not only those of the first route that matched it. 401 and
403 refusals are written to the audit log, under the caller's name (kept on the request by
``api.deps.principal``), whether the token was refused or a service refused the caller's role; so are 404s
that hide an object outside the caller's scope.

The OpenAPI document lists, for every operation, the error statuses it can answer, by rules over what the
operation has (a token, parameters, a body), so that no route needs its own list and none is forgotten.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from snapkeep.api.schemas import ErrorResponse
from snapkeep.errors import (
    BodyTooLarge,
    Forbidden,
    InvalidInput,
    LoginRequired,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    ServiceUnavailable,
    SnapkeepError,
    Unauthorized,
    all_error_classes,
)
from snapkeep.ui.errors import error_page

log = logging.getLogger(__name__)

_BY_STATUS: dict[int, type[SnapkeepError]] = {
    400: MalformedBody,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    413: BodyTooLarge,
    503: ServiceUnavailable,
}


def error_response(exc: SnapkeepError, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(exc.to_body(), ensure_ascii=True, default=str)
    extra = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else {}
    return Response(body, status_code=exc.http_status, media_type="application/json", headers=extra | (headers or {}))


_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


@functools.lru_cache(maxsize=256)
def _template(path: str) -> re.Pattern[str]:
    """``/api/v1/volumes/{ref}`` as a regular expression over request paths."""
    return re.compile("/".join("[^/]+" if p.startswith("{") else re.escape(p) for p in path.split("/")))


def allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document gives the request's path: what ``Allow`` must list on a 405."""
    paths: dict[str, dict[str, Any]] = request.app.openapi()["paths"]
    path = request.scope["path"]
    # As in OpenAPI's own matching, a concrete path (/snapshots/sweep) goes before a template (/snapshots/{id}).
    matched = [paths[path]] if path in paths else [item for t, item in paths.items() if _template(t).fullmatch(path)]
    return sorted({method.upper() for item in matched for method in item if method in _METHODS})


def is_api(request: Request) -> bool:
    """Whether the request is the API's (answered JSON) rather than the web UI's (answered HTML)."""
    path: str = request.scope["path"]
    return path.startswith("/api/") or path == "/openapi.json"


def answer(request: Request, exc: SnapkeepError, headers: dict[str, str] | None = None) -> Response:
    """The refusal as the caller reads it: the JSON error body for the API, a page for the web UI; a
    refusal that says when to come back (``retry_after`` seconds) says it in ``Retry-After`` too."""
    wait = exc.details.get("retry_after")
    if exc.retryable and isinstance(wait, int):
        headers = {"Retry-After": str(wait)} | (headers or {})
    if is_api(request):
        return error_response(exc, headers)
    page = error_page(request, exc)
    page.headers.update(headers or {})
    return page


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SnapkeepError)
    async def snapkeep_error(request: Request, exc: SnapkeepError) -> Response:
        refused = isinstance(exc, Unauthorized | Forbidden) or (isinstance(exc, NotFound) and exc.outside_scope)
        if refused and not isinstance(exc, LoginRequired):  # a browser sent to the login page is no refusal
            await run_in_threadpool(_audit_refusal, request, exc)
        return answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = jsonable_encoder(exc.errors(), custom_encoder={Exception: str})
        return answer(request, InvalidInput(_summary(problems), problems=problems))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            error = MethodNotAllowed(
                f"{request.method} is not allowed on {request.url.path}; it answers {', '.join(allowed)}",
                allowed=allowed,
            )
            return answer(request, error, headers={"Allow": ", ".join(allowed)})
        if exc.status_code == 404:
            what = "API route" if is_api(request) else "page"
            return answer(request, NotFound(f"no such {what}: {request.url.path}"))
        cls = _BY_STATUS.get(exc.status_code, InvalidInput if exc.status_code < 500 else SnapkeepError)
        return answer(request, cls(str(exc.detail)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        """A bug, not a refusal: logged with its traceback, answered as ``internal`` in the error body."""
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return answer(request, SnapkeepError(f"internal error ({type(exc).__name__}); the service log has details"))


def _summary(problems: list[dict[str, Any]]) -> str:
    """``invalid request: body.vcpus: Input should be ...; ...``: the first few problems, for people."""
    said = [f"{'.'.join(str(p) for p in problem.get('loc', ()))}: {problem.get('msg')}" for problem in problems[:3]]
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "invalid request: " + "; ".join(said) + more


def _audit_refusal(request: Request, exc: SnapkeepError) -> None:
    """401, 403, and 404 for an object the caller's scope hides (its body the same as for a missing one)."""
    principal = getattr(request.state, "principal", None)
    name = principal.name if principal is not None else "anonymous"
    target = f"{request.method} {request.url.path}"[:256]
    # the system's: the target is what the caller asked for, which may name what its tenant may not see
    request.app.state.services.audit.refused(name, "api.access", target, f"{exc.code}: {exc.message}", owner=None)


# --- the OpenAPI document --------------------------------------------------------------------------------
_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}


def _meaning(status: int) -> str:
    """What a status means, from the error classes that answer it (a new class shows up by itself)."""
    codes = [cls.code for cls in all_error_classes() if cls.http_status == status]
    return "Refused, with the error body; code " + ", ".join(f"`{code}`" for code in codes) + "."


def error_statuses(method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer, from what it has."""
    statuses = {400, 413, 500, 503}  # the gate reads every request's body; the catalog may be down for any
    if operation.get("security"):
        statuses |= {401, 403}
    if operation.get("parameters") or "requestBody" in operation:
        statuses |= {404, 422}
    if method != "get":
        statuses |= {409, 507}
    return statuses


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` by one that documents the error responses (and only the real error body)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            for item in schema.get("paths", {}).values():
                for method, operation in item.items():
                    responses = operation.setdefault("responses", {})
                    for status in sorted(error_statuses(method, operation)):
                        responses[str(status)] = {
                            "description": _meaning(status),
                            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
                        }
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.pop("HTTPValidationError", None)  # FastAPI's 422 body, which snapkeep never sends
            schemas.pop("ValidationError", None)
            error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(error_schema.pop("$defs", {}), ErrorResponse=error_schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
