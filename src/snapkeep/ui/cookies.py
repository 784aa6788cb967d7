"""The UI's cookies, set and read one way: HttpOnly, SameSite=Strict, for the whole site, and over HTTPS
Secure with the ``__Host-`` prefix in their name. A browser keeps a ``__Host-`` cookie only if it was set
Secure, without a Domain and with Path=/, so another host under the same domain (a sibling subdomain) can
neither plant one nor shadow it. Over plain HTTP the prefix is not allowed, so the name is bare there.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

SESSION = "snapkeep_session"
LOGIN = "snapkeep_login"  # the login form's own token (there is no session yet)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def name(request: Request, base: str) -> str:
    return f"__Host-{base}" if _secure(request) else base


def read(request: Request, base: str) -> str | None:
    return request.cookies.get(name(request, base))


def put(response: Response, request: Request, base: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name(request, base), value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=_secure(request)
    )


def drop(response: Response, request: Request, base: str) -> None:
    """Deleted with the attributes it was set with: a browser ignores a ``__Host-`` deletion without them."""
    response.delete_cookie(name(request, base), path="/", httponly=True, samesite="strict", secure=_secure(request))
