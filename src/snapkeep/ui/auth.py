"""The login form, logging in and out.

The login form has a CSRF check of its own (a session has no token yet): GET /login sets a random token in
a short-lived cookie and in the form, and POST /login wants both the same, so another site cannot log a
browser in as someone else. Cookies are HttpOnly and SameSite=Strict, and Secure when served over HTTPS.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from snapkeep.errors import ServiceUnavailable, TooManyAttempts, Unauthorized
from snapkeep.ui import cookies
from snapkeep.ui.deps import Form, UiSvc, Visitor
from snapkeep.ui.templating import render

router = APIRouter(include_in_schema=False)


def _local(target: str | None) -> str:
    """Where to go after logging in: a path of this site only (never ``//elsewhere``), else the dashboard."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_page(request: Request, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    page = render(
        request,
        "login.html",
        None,
        status=status,
        login_token=token,
        error=error,
        next=_local(request.query_params.get("next")),
    )
    cookies.put(page, request, cookies.LOGIN, token, max_age=3600)
    return page


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
def login(request: Request, svc: UiSvc, form: Form) -> Response:
    sent, expected = str(form.get("login_token", "")), cookies.read(request, cookies.LOGIN) or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _login_page(request, "The login form expired; please try again.", status=403)
    address = request.client.host if request.client else "unknown"
    try:
        secret, _visit = svc.logins.login(str(form.get("name", "")), str(form.get("password", "")), address)
    except (TooManyAttempts, ServiceUnavailable) as exc:
        page = _login_page(request, exc.message, status=exc.http_status)
        page.headers["Retry-After"] = str(exc.details.get("retry_after", 1))  # RFC 9110: when to come back
        return page
    except Unauthorized as exc:
        return _login_page(request, exc.message, status=401)
    response = RedirectResponse(_local(str(form.get("next", ""))), status_code=303)
    cookies.put(response, request, cookies.SESSION, secret)
    cookies.drop(response, request, cookies.LOGIN)
    return response


@router.post("/logout")
def logout(request: Request, svc: UiSvc, _visit: Visitor) -> Response:
    secret = cookies.read(request, cookies.SESSION)
    if secret:
        svc.logins.logout(secret)
    response = RedirectResponse("/login", status_code=303)
    cookies.drop(response, request, cookies.SESSION)
    return response
