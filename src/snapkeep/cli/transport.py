"""How the CLI sends one HTTP request: the standard library's :mod:`http.client`, a connection per request.

Why not httpx (which the tests use): with httpcore and h11 it cost every command about a tenth of a second of
CPU, for what the CLI asks of it: send a request with a token, read a JSON answer, verify TLS. One connection
per request rather than a pool: no idle connection can be closed by the service under us, so no request is
ever retried (a command sends a handful; a connection costs well under a millisecond over loopback).

TLS is verified against the system's trust store, which honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``
(:func:`ssl.create_default_context`). Proxy variables (``HTTPS_PROXY``...) are not used: the service is on
the host or the operator's own network. Redirects are not followed (a 3xx is not success).
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit

from snapkeep.errors import InvalidInput

Query = Mapping[str, str | int | float | bool]


class TransportError(Exception):
    """The request could not be sent or its answer not read (refused, timed out, TLS, a broken answer)."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    content: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON (:class:`ValueError` if it is not)."""
        return json.loads(self.content)


class Transport:
    """Sends requests to one service, ``http://`` or ``https://`` (``base`` may carry a path prefix)."""

    def __init__(self, base: str, headers: Mapping[str, str], timeout: float) -> None:
        url = _split(base)
        self._host = url.hostname or ""
        self._port = url.port  # None: the scheme's own
        self._prefix = url.path.rstrip("/")
        self._headers = {"Accept": "application/json", **headers}
        self._timeout = timeout
        # Plain http (the local service) has no TLS: the trust store is loaded only for https (tens of ms).
        self._tls = ssl.create_default_context() if url.scheme == "https" else None

    def send(self, method: str, path: str, query: Query | None = None, body: Any = None) -> Response:
        """One request; ``body`` (if not None) is sent as JSON. Raises :class:`TransportError`, never for a
        status: an error answer is a :class:`Response` like any other."""
        target = self._prefix + path + (f"?{urlencode({k: _text(v) for k, v in query.items()})}" if query else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection = self._connection()
        try:
            connection.request(method, target, body=data, headers=headers)
            answer = connection.getresponse()
            return Response(answer.status, answer.reason, answer.headers, answer.read())
        # refused, timed out, TLS, a cut or garbled answer; ValueError: a header a request cannot carry (a token
        # with a line break)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise TransportError(str(exc) or type(exc).__name__) from exc
        finally:
            connection.close()

    def _connection(self) -> http.client.HTTPConnection:
        if self._tls is not None:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout, context=self._tls)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)


def _split(base: str) -> SplitResult:
    url = urlsplit(base)
    try:
        valid = url.scheme in ("http", "https") and bool(url.hostname) and (url.port is None or url.port > 0)
    except ValueError:  # a port that is no number, or out of range
        valid = False
    if not valid:
        raise InvalidInput(f"SNAPKEEP_URL must be an http:// or https:// URL, not {base!r}")
    return url


def _text(value: str | int | float | bool) -> str:
    """A query value as the service reads it: booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
