"""The gate every request passes before routing: a bounded body, and strict JSON in it.

A body over :data:`MAX_BODY_BYTES` is refused with 413 before it is read further, so a 10 MB description
never reaches the catalog. A JSON body must be JSON text as RFC 8259 defines it: UTF-8, no ``NaN`` or
``Infinity`` (nor a number that only a double's infinity holds), and no lone surrogate (``"\\ud800"`` is
valid JSON syntax but not Unicode: it cannot be stored, logged or sent back). Checking here, once, covers
every string field of every route, present and future; the routes then parse the same bytes again, which
at this size costs microseconds.
"""

from __future__ import annotations

import email.message
import json
import math
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snapkeep.api.problems import error_response
from snapkeep.errors import BodyTooLarge, MalformedBody, SnapkeepError

MAX_BODY_BYTES = 1 << 20


def _no_constant(name: str) -> Any:
    raise MalformedBody(f"the request body is not JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedBody(f"the request body holds a number too large for a double: {text[:40]}")
    return value


def is_json(content_type: str | None) -> bool:
    """Whether FastAPI will parse a body of this content type as JSON (application/json or ``+json``)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def check_json(body: bytes) -> None:
    """Raise :class:`MalformedBody` unless ``body`` is strict JSON text."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("the request body is not UTF-8") from None
    except UnicodeEncodeError:
        raise MalformedBody("the request body holds a lone surrogate (e.g. \\ud800): text must be Unicode") from None
    except RecursionError:
        raise MalformedBody("the request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more digits than Python converts
        raise MalformedBody(f"the request body is not JSON: {exc}") from None


class RequestGate:
    """ASGI middleware: read the whole body (at most ``max_bytes``), check it, then hand it to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        try:
            body = await self._read(headers, receive)
            if body is None:
                return  # the client went away
            if body and is_json(headers.get("content-type")):
                check_json(body)
        except SnapkeepError as exc:
            await error_response(exc)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, headers: Headers, receive: Receive) -> bytes | None:
        length = headers.get("content-length")
        if length is not None and (not length.isascii() or not length.isdigit()):
            raise MalformedBody("Content-Length is not a number", content_length=length[:32])
        too_large = BodyTooLarge(f"the request body is larger than {self.max_bytes} bytes", limit=self.max_bytes)
        if length is not None and (len(length) > 18 or int(length) > self.max_bytes):
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
