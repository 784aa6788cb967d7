"""How many failed logins a user name and an address may have lately, before logins are refused for a while.

Counted in memory, per process: a restart forgets them, which costs an attacker a restart of the service they
cannot cause. A window slides: a failure older than ``window`` no longer counts. An attempt counts as a
failure from the moment it is let through, before its password is checked (a check takes long: guesses sent
at once would otherwise all pass before the first failure is counted); a successful login then clears its
user's failures and takes back its own count from its address, but not the address's earlier failures (one
address may try many names).
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

    def attempt(self, user: str, address: str) -> timedelta | None:
        """Let an attempt through, counted as a failure until it :meth:`succeeded`; or, when this user (or this
        address) has failed too often lately, count nothing and say how long until it may try again."""
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
            if waits:
                return max(waits)
            if len(self._failures) > _PRUNE_ABOVE:  # many names tried once each: forget the stale ones
                for key in list(self._failures):
                    self._recent(key, now)
            for key in (f"user:{user}", f"address:{address}"):
                self._failures.setdefault(key, deque()).append(now)
        return None

    def succeeded(self, user: str, address: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user}", None)
            times = self._failures.get(f"address:{address}")
            if times:
                times.pop()  # the count this attempt was let through with
