"""How many failed logins a user name and an address may have lately, before logins are refused for a while.

Counted in memory, per process: a restart forgets them, which costs an attacker a restart of the service they
cannot cause. A window slides: a failure older than ``window`` no longer counts. A successful login clears
its user's failures, not its address's (one address may try many names).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

_PRUNE_ABOVE = 10_000


@dataclass(frozen=True)
class LoginLimits:
    per_user: int = 5
    per_address: int = 20
    window: timedelta = timedelta(minutes=15)


class FailedLogins:
    def __init__(self, limits: LoginLimits, clock: Callable[[], datetime]) -> None:
        self._limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[datetime]] = {}

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._limits.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked_for(self, user: str, address: str) -> timedelta | None:
        """How long until this user (or this address) may try again; None: it may now."""
        now = self._clock()
        waits = []
        with self._lock:
            for key, most in (
                (f"user:{user}", self._limits.per_user),
                (f"address:{address}", self._limits.per_address),
            ):
                times = self._recent(key, now)
                if len(times) >= most:
                    waits.append(times[-most] + self._limits.window - now)
        return max(waits) if waits else None

    def failed(self, user: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._failures) > _PRUNE_ABOVE:  # many names tried once each: forget the stale ones
                for key in list(self._failures):
                    self._recent(key, now)
            for key in (f"user:{user}", f"address:{address}"):
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user}", None)
