"""How many failed logins a user name and an address may have lately, before logins are refused for a while.

Counted in memory, per process: a restart forgets them, which costs an attacker a restart of the service they
cannot cause. A window slides: a failure older than ``window`` no longer counts. An attempt counts as a
failure from the moment it is let through, before its password is checked (a check takes long: guesses sent
at once would otherwise all pass before the first failure is counted); a successful login then clears its
user's failures and takes back its own count from its address, but not the address's earlier failures (one
address may try many names).

An IPv6 address counts with its /64: one host can pick any address in the block it is given, so counting
single addresses would let it try without end. While a name or an address is refused, only its first refusal
is reported as such (:attr:`Refusal.first`), so that a flood of refused attempts writes one audit entry per
lockout, not one per request.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

_PRUNE_ABOVE = 10_000


def counted_address(address: str) -> str:
    """Whose failures an attempt from ``address`` counts as: an IPv6 address's /64, an IPv4 address (mapped
    into IPv6 or not) itself; anything that is no IP address (a test client's name) as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Refusal:
    wait: timedelta  # until the attempt would be let through
    first: bool  # the first refusal since this name or address became limited: the one to record


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
        self._refused_until: dict[str, datetime] = {}  # the lockouts whose first refusal was reported

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self._limits.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def attempt(self, user: str, address: str) -> Refusal | None:
        """Let an attempt through, counted as a failure until it :meth:`succeeded`; or, when this user (or this
        address) has failed too often lately, count nothing and say how long until it may try again."""
        now = self._clock()
        limited: dict[str, timedelta] = {}
        with self._lock:
            for key, most in (
                (f"user:{user}", self._limits.per_user),
                (f"address:{counted_address(address)}", self._limits.per_address),
            ):
                times = self._recent(key, now)
                if len(times) >= most:
                    limited[key] = times[-most] + self._limits.window - now
            if limited:
                return self._refuse(limited, now)
            if len(self._failures) > _PRUNE_ABOVE:  # many names tried once each: forget the stale ones
                for key in list(self._failures):
                    self._recent(key, now)
                self._refused_until = {k: t for k, t in self._refused_until.items() if t > now}
            for key in (f"user:{user}", f"address:{counted_address(address)}"):
                self._failures.setdefault(key, deque()).append(now)
        return None

    def _refuse(self, limited: dict[str, timedelta], now: datetime) -> Refusal:
        first = False
        for key, wait in limited.items():
            if self._refused_until.get(key, now) <= now:
                first = True
            self._refused_until[key] = now + wait
        return Refusal(max(limited.values()), first)

    def succeeded(self, user: str, address: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{user}", None)
            times = self._failures.get(f"address:{counted_address(address)}")
            if times:
                times.pop()  # the count this attempt was let through with
