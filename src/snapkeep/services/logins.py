"""Logging in to the web UI: a password checked, a session opened, and every later request tied to it.

A session is a random secret in an HttpOnly cookie; the catalog keeps only its SHA-256, the user it
belongs to, and a CSRF token that every form and htmx request of the session sends back. It ends at logout,
after ``idle`` without a request, after ``lifetime`` in any case, and when its user is changed or removed.
Failed logins are limited per user name and per address (:mod:`snapkeep.services.login_limits`); each
failure and each refusal is in the audit log. A password check costs 64 MiB and most of a second of a core
(:mod:`snapkeep.services.passwords`) and anyone may ask for one, so only a few logins are checked at once; a
login beyond them is answered "busy" at once rather than queued, which would hold the threads other requests
need.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from snapkeep.catalog.db import Database
from snapkeep.errors import ServiceUnavailable, TooManyAttempts, Unauthorized
from snapkeep.model.names import MAX_NAME_LENGTH
from snapkeep.model.principal import Principal
from snapkeep.model.user import WebSession
from snapkeep.services.audit import Audit
from snapkeep.services.login_limits import FailedLogins, LoginLimits
from snapkeep.services.passwords import verify_password

_TOUCH_EVERY = timedelta(minutes=1)  # a session's idle deadline moves at most this often (one write a minute)
_CHECKS_AT_ONCE = 4  # logins being checked at the same time: at most 256 MiB of argon2 memory


@dataclass(frozen=True)
class Visit:
    """A request of a logged-in browser: who it acts as, and the CSRF token its forms must carry."""

    who: Principal
    csrf: str


def _session_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _printable(name: str) -> str:
    """A tried name as the audit log keeps it: anyone may type one, so anything but printable ASCII (which
    every user name is) is kept escaped: no terminal escape reaches ``audit list``, no bidi override the page."""
    return name if name.isascii() and name.isprintable() else ascii(name)


class Logins:
    def __init__(
        self,
        db: Database,
        audit: Audit,
        clock: Callable[[], datetime],
        idle: timedelta,
        lifetime: timedelta,
        limits: LoginLimits | None = None,
    ) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._idle = idle
        self._lifetime = lifetime
        self._failures = FailedLogins(limits or LoginLimits(), clock)
        self._checking = threading.BoundedSemaphore(_CHECKS_AT_ONCE)

    def login(self, name: str, password: str, address: str) -> tuple[str, Visit]:
        """The new session's cookie secret and its visit; refused alike for an unknown name or a wrong password."""
        if not self._checking.acquire(blocking=False):
            raise ServiceUnavailable("the service is busy checking other logins; try again in a moment")
        try:
            return self._login(name, password, address)
        finally:
            self._checking.release()

    def _login(self, name: str, password: str, address: str) -> tuple[str, Visit]:
        name = name[: MAX_NAME_LENGTH + 1]  # no user's name is longer: the limits keep no more of it
        shown = _printable(name)
        refusal = self._failures.attempt(name, address)
        if refusal is not None:
            seconds = max(1, int(refusal.wait.total_seconds()))
            if refusal.first:  # one entry per lockout, however many attempts it refuses
                why = f"too many failed logins; from {address}; refused for {seconds} s, further refusals not logged"
                self._audit.refused(shown[:128], "login", f"user:{shown}"[:256], why, owner=None)  # not looked up
            raise TooManyAttempts(f"too many failed logins; try again in {seconds} s", retry_after=seconds)
        with self._db.unit() as uow:
            user = uow.users.find_by_name(name)
        if not verify_password(user.password_hash if user else None, password) or user is None:
            why = f"wrong name or password; from {address}"
            if user is None:
                self._audit.refused(shown[:128], "login", f"user:{shown}"[:256], why, owner=None)
            else:  # a tenant reads the failed logins of its own users
                self._audit.refused(user.principal, "login", f"user:{user.name}", why, owner=user.tenant_id)
            raise Unauthorized("wrong user name or password")
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        web_session = WebSession(
            id=_session_id(secret),
            user_id=user.id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            seen_at=now,
            expires_at=min(now + self._idle, now + self._lifetime),
        )
        with self._db.unit() as uow:
            now_user = uow.users.find_by_name(name)
            if now_user is None or now_user.password_hash != user.password_hash:  # changed while it was checked
                why = f"password changed or user removed during the check; from {address}"
                self._audit.refused(user.principal, "login", f"user:{user.name}", why, owner=user.tenant_id)
                raise Unauthorized("wrong user name or password")
            uow.web_sessions.end_expired(now)
            uow.web_sessions.insert(web_session)
            self._audit.done(uow, user.principal, "login", f"user:{user.name}", f"from {address}", owner=user.tenant_id)
        self._failures.succeeded(name, address)
        return secret, Visit(user.principal, web_session.csrf)

    def visit(self, secret: str | None) -> Visit:
        """Who the browser holding ``secret`` is; Unauthorized once its session has ended."""
        if not secret:
            raise Unauthorized("not logged in")
        now = self._clock()
        with self._db.unit() as uow:
            web_session = uow.web_sessions.find(_session_id(secret))
            if web_session is None or web_session.expires_at <= now:
                raise Unauthorized("the session has ended; log in again")
            user = uow.users.get(web_session.user_id)
            if now - web_session.seen_at >= _TOUCH_EVERY:
                expires = min(now + self._idle, web_session.created_at + self._lifetime)
                uow.web_sessions.touch(web_session.id, now, expires)
            return Visit(user.principal, web_session.csrf)

    def logout(self, secret: str) -> None:
        with self._db.unit() as uow:
            web_session = uow.web_sessions.find(_session_id(secret))
            if web_session is None:
                return
            user = uow.users.get(web_session.user_id)
            uow.web_sessions.end(web_session.id)
            self._audit.done(uow, user.principal, "logout", f"user:{user.name}", owner=user.tenant_id)
