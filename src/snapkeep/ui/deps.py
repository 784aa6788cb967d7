"""Request dependencies of the pages: the logged-in visitor, and the CSRF check of every change.

A page asks for :data:`Visitor`; without a live session the request is sent to the login page (a full page
load) or answered 401 (an htmx request, whose ``HX-Redirect`` takes the browser there). A request that
changes something (any method but GET and HEAD) must also carry the session's CSRF token, in the form field
``csrf`` or the ``X-CSRF-Token`` header that htmx sends for every request of a page: the session cookie
alone, which the browser adds by itself, is never enough.
"""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from snapkeep.errors import Forbidden, LoginRequired, Unauthorized
from snapkeep.services.container import Services
from snapkeep.services.logins import Visit
from snapkeep.ui import cookies

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def ui_services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def visitor(request: Request) -> Visit:
    """The logged-in visitor; for a change, only with the session's CSRF token."""
    svc: Services = request.app.state.services
    try:
        visit = await run_in_threadpool(svc.logins.visit, cookies.read(request, cookies.SESSION))
    except Unauthorized as exc:
        raise LoginRequired(exc.message, next=quote(request.url.path)) from None
    request.state.principal = visit.who  # refusals further on are audited under the user's name
    request.state.visit = visit  # and their pages keep the session's CSRF token (the Log out form needs it)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            form = await request.form()
            field = form.get(CSRF_FIELD)
            sent = field if isinstance(field, str) else None
        if sent is None or not hmac.compare_digest(sent.encode(), visit.csrf.encode()):
            raise Forbidden("the form's CSRF token is missing or not this session's; reload the page")
    return visit


async def form_data(request: Request) -> FormData:
    """The submitted form (already read, and cached by Starlette, when the CSRF check looked in it)."""
    return await request.form()


UiSvc = Annotated[Services, Depends(ui_services)]
Visitor = Annotated[Visit, Depends(visitor)]
Form = Annotated[FormData, Depends(form_data)]
