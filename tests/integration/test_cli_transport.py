"""The CLI's HTTP transport (``cli/transport.py``: the standard library's http.client, in place of httpx).

Against a real ``snapkeep serve``: the token reaches the service and a wrong one is refused, query values are
sent as the service reads them, HTTPS is verified against the trust store (``SSL_CERT_FILE`` names the test's
own certificate) and refused without it. Every way a request can fail becomes the error the CLI maps to an
exit code: a port nobody listens on is in ``test_cli``; answers that are cut short, garbled, never come, or
are not snapkeep's come from a real socket of the test's own (a fault server, in addition to the real one).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from snapkeep.cli.client import ApiClient
from snapkeep.errors import InvalidInput, NotFound, ServiceUnavailable, SnapkeepError, Unauthorized
from tests.conftest import Server
from tests.integration.test_cli import clean_env

ONE_DRIVER = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # the pool plays no part here
CLI = [sys.executable, "-m", "snapkeep.cli.main"]


@ONE_DRIVER
def test_the_token_and_the_query_reach_the_service(server: Server) -> None:
    api = ApiClient(server.url, server.token)
    assert "admin" in [user["name"] for user in api.listing("users")]
    assert api.listing("snapshots", system=True, limit=1) == api.get("snapshots", system="true", limit=1)
    with pytest.raises(Unauthorized):
        ApiClient(server.url, "sk_not-a-token").get("volumes")
    with pytest.raises(NotFound, match="no such API route"):
        api.get("no-such-route")


@pytest.mark.parametrize("url", ["127.0.0.1:8470", "ftp://127.0.0.1", "http://127.0.0.1:99999", "http://:80"])
def test_a_url_that_is_no_http_url_is_refused_before_sending(url: str) -> None:
    with pytest.raises(InvalidInput, match="SNAPKEEP_URL"):
        ApiClient(url, "sk_x")


@ONE_DRIVER
def test_https_is_verified_against_the_trust_store(https_server: Server, server: Server) -> None:
    def user_list(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, "user", "list"], env=env, capture_output=True, text=True, timeout=60)

    trusted = user_list(https_server.cli_env())  # SSL_CERT_FILE: the certificate the server was given
    assert trusted.returncode == 0 and "admin" in trusted.stdout, trusted.stderr
    untrusted = user_list(clean_env(SNAPKEEP_URL=https_server.url, SNAPKEEP_TOKEN=https_server.token))
    assert untrusted.returncode == 9 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
    plain = https_server.url.replace("https://", "http://")
    assert user_list(clean_env(SNAPKEEP_URL=plain, SNAPKEEP_TOKEN=https_server.token)).returncode == 9
    tls_to_plain = server.url.replace("http://", "https://")
    assert user_list(clean_env(SNAPKEEP_URL=tls_to_plain, SNAPKEEP_TOKEN=server.token)).returncode == 9


@contextmanager
def answering(reply: bytes | None) -> Iterator[str]:
    """The URL of a loopback server that reads one request and sends ``reply`` then closes; with None, it
    answers nothing until the client gives up."""
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                if reply is None:
                    conn.recv(1)  # returns when the client closes its end
                else:
                    conn.sendall(reply)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            thread.join(10)


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n[{", id="cut-short"),
        pytest.param(b"SSH-2.0-OpenSSH_9.2\r\n", id="not-http"),
        pytest.param(b"", id="closed-unanswered"),
        pytest.param(None, id="never-answers"),
    ],
)
def test_a_broken_answer_is_service_unavailable(reply: bytes | None) -> None:
    with (
        answering(reply) as url,
        pytest.raises(ServiceUnavailable, match=f"cannot reach the snapkeep service at {url}"),
    ):
        ApiClient(url, "sk_x", timeout=0.5).get("volumes")


@pytest.mark.parametrize(
    ("status", "error"), [("404 Not Found", NotFound), ("503 Service Unavailable", ServiceUnavailable)]
)
def test_an_answer_that_is_not_snapkeeps_maps_by_its_status(status: str, error: type[SnapkeepError]) -> None:
    reply = f"HTTP/1.1 {status}\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>".encode()
    with answering(reply) as url, pytest.raises(error, match=f"answered {status} to GET /api/v1/volumes$") as raised:
        ApiClient(url, "sk_x").get("volumes")
    assert type(raised.value) is error
    with answering(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n") as url, pytest.raises(SnapkeepError):
        ApiClient(url, "sk_x").get("volumes")
