"""Which of the host's routes a new network would clash with, from ``ip -4 -j route`` output."""

from __future__ import annotations

import ipaddress
import json

from snapkeep.hypervisor.host_routes import clashing_routes, parse_routes

# A host with a LAN on eth0, a VPN route, a blackhole, one realised snapkeep network, and the local table.
ROUTES = json.dumps(
    [
        {"dst": "default", "gateway": "192.168.1.1", "dev": "eth0", "flags": []},
        {"dst": "0.0.0.0/1", "gateway": "10.9.0.1", "dev": "tun0", "flags": []},  # a VPN's catch-all halves
        {"dst": "128.0.0.0/1", "gateway": "10.9.0.1", "dev": "tun0", "flags": []},
        {"dst": "192.168.1.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "flags": []},
        {"dst": "10.8.0.0/16", "gateway": "10.9.0.1", "dev": "tun0", "flags": []},
        {"type": "blackhole", "dst": "172.31.0.0/16", "flags": []},
        {"dst": "10.42.0.0/24", "dev": "sk-0123456789", "protocol": "kernel", "scope": "link", "flags": []},
        {"type": "local", "dst": "192.168.1.7", "dev": "eth0", "table": "local", "flags": []},
        {"type": "broadcast", "dst": "192.168.1.255", "dev": "eth0", "table": "local", "flags": []},
        {"type": "local", "dst": "127.0.0.0/8", "dev": "lo", "table": "local", "flags": []},
    ]
)


def clashes(cidr: str, bridge: str = "sk-new") -> list[str]:
    return [str(r) for r in clashing_routes(ipaddress.IPv4Network(cidr), bridge, parse_routes(ROUTES))]


def test_a_range_inside_the_hosts_lan_clashes_with_the_lan_and_the_hosts_own_address() -> None:
    assert clashes("192.168.1.0/25") == ["192.168.1.0/24 on eth0", "local 192.168.1.7/32 on eth0"]


def test_vpn_and_blackhole_routes_clash_too() -> None:
    assert clashes("10.8.4.0/24") == ["10.8.0.0/16 on tun0"]
    assert clashes("172.31.9.0/24") == ["blackhole 172.31.0.0/16"]


def test_default_and_catch_all_routes_and_unrelated_ranges_do_not_clash() -> None:
    assert clashes("10.50.0.0/24") == []
    assert clashes("192.168.2.0/24") == []


def test_a_networks_own_bridge_is_no_clash_but_another_networks_is() -> None:
    assert clashes("10.42.0.0/23", bridge="sk-0123456789") == []  # redefining it to a larger range
    assert clashes("10.42.0.0/23") == ["10.42.0.0/24 on sk-0123456789"]


def test_empty_output() -> None:
    assert parse_routes("") == []
