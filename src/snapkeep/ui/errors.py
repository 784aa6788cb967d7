"""How a refusal reaches a browser: the login page when the session is gone, else a page that says why.

The API answers JSON problems; a page answers HTML with the same message and status, so a user sees what
was wrong (``name_clash``: "a volume named 'docs' already exists") and nothing changed behind it.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from snapkeep.errors import Conflict, InvalidInput, SnapkeepError, Unauthorized
from snapkeep.services.logins import Visit
from snapkeep.ui.templating import render

# The refusals a form shows again beside what was typed, because changing the input can fix them (a name
# taken, minute 61). Every other refusal (a role or scope that does not allow it) goes to the error page
# through the application's handler, which writes it to the audit log.
FORM_ERRORS = (InvalidInput, Conflict)


def error_page(request: Request, exc: SnapkeepError) -> Response:
    if isinstance(exc, Unauthorized):
        target = "/login?next=" + quote(request.url.path)
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    visit: Visit | None = getattr(request.state, "visit", None)
    if request.headers.get("HX-Request"):
        return render(request, "fragments/error.html", visit, status=exc.http_status, error=exc)
    return render(request, "error.html", visit, status=exc.http_status, error=exc)
