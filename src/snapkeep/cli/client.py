"""The CLI's one HTTP client: finds the service, sends requests, and turns refusals back into errors.

The service is found from ``SNAPKEEP_URL`` and ``SNAPKEEP_TOKEN``; without them, the local defaults
(``http://127.0.0.1:8470``) and the admin token file the service wrote into its data directory. Every
refusal comes back as the :class:`~snapkeep.errors.SnapkeepError` subclass the service raised, so the CLI's
``main()`` shows the same code and exit code the service chose; an unreachable service becomes
:class:`~snapkeep.errors.ServiceUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from snapkeep.cli.settings import ClientSettings
from snapkeep.cli.transport import Response, Transport, TransportError
from snapkeep.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceUnavailable,
    SnapkeepError,
    Unauthorized,
    error_class_for_code,
)

JsonObject = dict[str, Any]
API_PREFIX = "/api/v1"
JOB_POLL_SECONDS = 1.0  # the server holds each poll up to this long, so a finished job is seen at once
FINISHED = frozenset({"succeeded", "failed"})
PAGE_ROWS = 1000  # rows asked for per page when following a listing (the service's most)
NEXT_CURSOR = "X-Next-Cursor"

# Answers without snapkeep's error body (e.g. a path the router does not know) still map to a class.
_CLASS_BY_STATUS: dict[int, type[SnapkeepError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
    503: ServiceUnavailable,
}


def error_from_body(error: Mapping[str, Any]) -> SnapkeepError:
    """Rebuild the service's error from the ``error`` member of a refusal or of a failed job."""
    exc = error_class_for_code(str(error.get("code", "")))(str(error.get("message", "unknown error")))
    exc.details = dict(error.get("details") or {})
    return exc


def _error_from_response(response: Response, method: str, path: str) -> SnapkeepError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return error_from_body(body["error"])
    cls = _CLASS_BY_STATUS.get(response.status, SnapkeepError)
    return cls(f"the service answered {response.status} {response.reason} to {method} {path}")


def _segment(part: str) -> str:
    """One URL path segment: quoted so an id or name can never reach another route (``/``, ``..``)."""
    if not part:
        raise InvalidInput("an empty name or id was given")
    return quote(part, safe="").replace(".", "%2E") if part in (".", "..") else quote(part, safe="")


class ApiClient:
    """The service's API over a :class:`~snapkeep.cli.transport.Transport`: paths are given as segments under
    ``/api/v1``, answers come back as JSON, refusals as errors."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = Transport(self.url, {"Authorization": f"Bearer {token}"}, timeout)

    def request(self, method: str, *parts: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """Send one request and return its JSON; a refusal raises the service's error."""
        response = self._send(method, parts, params, body)
        return response.json() if response.content else None  # 204: nothing to say

    def listing(self, *parts: str, limit: int | None = None, **params: Any) -> list[JsonObject]:
        """Every row of a paged listing, following its cursor page after page; with ``limit``, the first
        ``limit`` rows only (no more pages are asked for than those take)."""
        rows: list[JsonObject] = []
        cursor = None
        while limit is None or len(rows) < limit:
            size = PAGE_ROWS if limit is None else min(PAGE_ROWS, limit - len(rows))
            response = self._send("GET", parts, {**params, "limit": size, "cursor": cursor}, None)
            rows.extend(response.json())
            cursor = response.headers.get(NEXT_CURSOR)
            if cursor is None:
                break
        return rows

    def _send(self, method: str, parts: tuple[str, ...], params: Mapping[str, Any] | None, body: Any) -> Response:
        path = "/".join([API_PREFIX, *(_segment(p) for p in parts)])
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.send(method, path, query, body)
        except TransportError as exc:
            raise ServiceUnavailable(
                f"cannot reach the snapkeep service at {self.url} ({exc}); "
                "is `snapkeep serve` running? SNAPKEEP_URL says where it listens"
            ) from exc
        if not response.ok:
            raise _error_from_response(response, method, path)
        return response

    def get(self, *parts: str, **params: Any) -> Any:
        return self.request("GET", *parts, params=params)

    def post(self, *parts: str, body: Any = None) -> Any:
        return self.request("POST", *parts, body=body)

    def patch(self, *parts: str, body: Any) -> Any:
        return self.request("PATCH", *parts, body=body)

    def delete(self, *parts: str, **params: Any) -> Any:
        return self.request("DELETE", *parts, params=params)

    def wait_job(self, job_id: str, on_update: Callable[[JsonObject], None]) -> JsonObject:
        """Long-poll a job until it finishes, reporting each state seen; the job's own outcome is returned,
        not raised, so the caller can still print a failed job."""
        while True:
            job: JsonObject = self.get("jobs", job_id, wait=JOB_POLL_SECONDS)
            on_update(job)
            if job["status"] in FINISHED:
                return job


def connect() -> ApiClient:
    """The client every command uses, configured from the environment (see the module docstring)."""
    settings = ClientSettings.from_env()
    return ApiClient(settings.url, settings.api_token())
