"""``snapkeep serve --tls-cert --tls-key``: a real server over HTTPS with a certificate made here (openssl),
whose session cookie is Secure, HttpOnly and SameSite=Strict; and a half-given TLS setting refused before
anything starts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import Server, log_in, self_signed
from tests.integration.test_cli import clean_env


def _cookie_flags(set_cookie: str) -> set[str]:
    return {part.strip().lower() for part in set_cookie.split(";")[1:]}


@pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # TLS does not depend on the driver
def test_https_sessions_have_secure_cookies(https_server: Server, browser: Browser) -> None:
    server = https_server
    assert server.url.startswith("https://")
    with httpx.Client(base_url=server.url, verify=server.verify, timeout=60) as client:
        form = client.get("/login")
        login_cookie = form.headers["set-cookie"]  # the login form's own token, too
        assert login_cookie.startswith("__Host-snapkeep_login=") and "secure" in _cookie_flags(login_cookie)
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token, form.text
        answer = client.post(
            "/login", data={"login_token": token.group(1), "name": "admin", "password": server.admin_password}
        )
        assert answer.status_code == 303, answer.text
        # __Host-: a browser keeps it only Secure, host-only and Path=/, so no sibling subdomain can plant one
        session = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("__Host-snapkeep_session="))
        assert {"secure", "httponly", "samesite=strict", "path=/"} <= _cookie_flags(session), session
        assert not any(flag.startswith("domain=") for flag in _cookie_flags(session)), session
        assert client.get("/").status_code == 200
    # plain HTTP on the same port is not served
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url.replace("https://", "http://") + "/api/v1/health", timeout=5)
    # the API and the CLI over HTTPS, the certificate verified
    with server.client() as api:
        assert api.get("/api/v1/users").json()[0]["name"] == "admin"
    done = subprocess.run(
        [sys.executable, "-m", "snapkeep.cli.main", "user", "list"],
        env=server.cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "admin" in done.stdout, done.stderr
    # and a real browser keeps the cookie as Secure
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        log_in(page, server.url, "admin", server.admin_password)
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        cookie = next(c for c in context.cookies() if c["name"] == "__Host-snapkeep_session")
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        page.get_by_role("button", name="Log out").click()  # its deletion carries the prefix's attributes too
        expect(page).to_have_url(re.compile(r"/login$"))
        assert not [c for c in context.cookies() if c["name"] == "__Host-snapkeep_session"]
    finally:
        context.close()


def test_half_a_tls_setting_is_refused(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    serve = [sys.executable, "-m", "snapkeep.cli.main", "serve", "--data-dir", str(tmp_path / "data")]
    env = clean_env(SNAPKEEP_LISTEN="127.0.0.1:1")  # were anything to start, it could not listen there
    cases = {
        ("--tls-cert", cert): "--tls-key is missing",
        ("--tls-key", key): "--tls-cert is missing",
        ("--tls-cert", cert, "--tls-key", str(tmp_path / "nothing.pem")): "nothing.pem: cannot be read",
    }
    for args, message in cases.items():
        done = subprocess.run([*serve, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and "(invalid_input)" in done.stderr, done.stderr
    half = subprocess.run(serve, env={**env, "SNAPKEEP_TLS_KEY": key}, capture_output=True, text=True, timeout=60)
    assert half.returncode == 2 and "--tls-cert is missing" in half.stderr, half.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made
