"""The host's IPv4 routes that a new network's bridge would clash with.

A realised network puts a route for its whole address range on the host (its bridge's), more specific than
the default route. libvirt refuses only a range that some route covers exactly, so a /25 inside the host's
own LAN would start and silently take half of that LAN away from the host. Reading every routing table
(``ip -4 -j route show table all``) before a network starts catches that, and a clash with an operator's
network, a VPN or another snapkeep network alike.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from snapkeep.errors import HypervisorError

_SKIPPED_TYPES = {"broadcast", "multicast", "anycast"}  # each comes with the unicast or local route it belongs to
# Catch-all routes cover every address, like the default route: a VPN's 0.0.0.0/1 and 128.0.0.0/1 halves.
# Nothing shorter than the largest private range (/8) names addresses a network could take away.
_CATCH_ALL_PREFIX = 8


@dataclass(frozen=True)
class Route:
    dst: ipaddress.IPv4Network
    dev: str  # "" for routes without a device (unreachable, blackhole, prohibit)
    type: str  # "unicast", "local", "unreachable", ...

    def __str__(self) -> str:
        where = f" on {self.dev}" if self.dev else ""
        return f"{'' if self.type == 'unicast' else self.type + ' '}{self.dst}{where}"


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", None) or ""
        raise HypervisorError(f"cannot read the host's routes ({' '.join(argv)}): {stderr.strip() or exc}") from exc
    return done.stdout


def parse_routes(text: str) -> list[Route]:
    """Routes from ``ip -4 -j route`` output, without default and catch-all routes and the broadcast kind."""
    routes = []
    for entry in json.loads(text or "[]"):
        dst, kind = entry.get("dst", ""), entry.get("type", "unicast")
        if dst == "default" or kind in _SKIPPED_TYPES:
            continue
        net = ipaddress.IPv4Network(dst, strict=False)
        if net.prefixlen >= _CATCH_ALL_PREFIX:
            routes.append(Route(net, entry.get("dev", ""), kind))
    return routes


def host_routes() -> list[Route]:
    """Every IPv4 route of this host, in all routing tables, except default routes."""
    return parse_routes(_run(["ip", "-4", "-j", "route", "show", "table", "all"]))


def clashing_routes(network: ipaddress.IPv4Network, own_bridge: str, routes: list[Route]) -> list[Route]:
    """The routes that share addresses with ``network``, except those of its own bridge (already realised)."""
    return [r for r in routes if r.dev != own_bridge and r.dst.overlaps(network)]
