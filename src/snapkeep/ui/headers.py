"""The headers every answer carries, so that a browser holds the pages to what they are.

No other site may frame a page (clickjacking: CSP ``frame-ancestors`` and, for older browsers,
``X-Frame-Options``); a page runs only the scripts this service ships (``script-src 'self'``: the vendored
htmx runs, an injected ``<script>`` or ``javascript:`` link would not); nothing is sniffed into another
type; no URL goes to another site as a referrer; and nothing is kept in a cache, since pages hold CSRF
tokens and API answers hold secrets (a new token), and what a user saw must not come back after logout.
Static files may be cached. Every page, the API reference at ``/docs`` included, is held to the same
CSP (FastAPI's own documentation pages, which load scripts from a CDN, are not served). Inline styles are
allowed: an injected style could only come with injected markup, which the templates' autoescaping
already keeps out.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_ALWAYS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


class SecurityHeaders:
    """ASGI middleware: the headers above, added to every answer that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = dict(_ALWAYS, **{"Content-Security-Policy": CSP})
        if not scope["path"].startswith("/static/"):
            extra["Cache-Control"] = "no-store"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
