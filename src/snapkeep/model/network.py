"""Virtual networks: the definition a user gives, the rules it must keep, and what the host realises from it.

A network is realised on this host as an isolated libvirt network with its own bridge, and the host takes
the gateway address on that bridge. That is why the rules are strict: the address range must be a private
IPv4 network (a public one would hide those addresses from the host itself, as its bridge route is more
specific than the default route), written as its network address, with room for the gateway and a guest.
IPv6 is refused for now: nothing in snapkeep can hand out or route IPv6 addresses yet.

Host names (the libvirt network and its bridge) come from the network's id, never from its user-given
name, so a long or spaced name is fine (a Linux bridge name holds at most 15 bytes) and snapkeep's names
never collide with the operator's own networks: they all start with ``sk-``.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from snapkeep.errors import InvalidNetwork, NetworkOverlap
from snapkeep.model.names import check_name

LIBVIRT_PREFIX = "sk-"
_HASH_CHARS = 10  # "sk-" + 10 hex = 13 bytes: within a bridge name's 15, and 40 bits against collisions
MAX_BRIDGE_NAME = 15  # IFNAMSIZ - 1
# RFC 1918: the address ranges that no host outside a private network uses.
PRIVATE_RANGES = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    def refuse(why: str) -> InvalidNetwork:
        return InvalidNetwork(f"network address {cidr!r} {why}", cidr=cidr)

    if "/" not in cidr:
        raise refuse("has no prefix length: write it like 10.0.0.0/24")
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise refuse("is not an IPv4 network like 10.0.0.0/24") from None
    if isinstance(net, ipaddress.IPv6Network):
        raise refuse("is IPv6: only IPv4 networks are supported")
    if str(net) != cidr:
        if net.network_address != ipaddress.ip_interface(cidr).ip:
            raise refuse(f"is not a network address (host bits are set): did you mean {net}?")
        raise refuse(f"must be written as {net}")
    if not any(net.subnet_of(private) for private in PRIVATE_RANGES):
        ranges = ", ".join(map(str, PRIVATE_RANGES))
        raise refuse(f"is not private ({ranges}): its gateway would hide those addresses from this host")
    return net


@dataclass(frozen=True)
class NetworkDef:
    """A virtual network as its owner defines it; an instance is always valid (checked on creation).

    Raises ``InvalidName`` for a name that breaks the object name rules and ``InvalidNetwork`` for an
    address range snapkeep cannot realise.
    """

    name: str
    cidr: str  # the network address and prefix length, canonical: "10.0.0.0/24"
    dhcp: bool = True  # hand out the addresses after the gateway to guests

    def __post_init__(self) -> None:
        check_name(self.name, "network name")
        net = _parse_cidr(self.cidr)
        # The gateway and one guest need two addresses; with DHCP they must also be the range's own hosts
        # (a /31 has no network and broadcast address to spare, which DHCP servers do not serve).
        smallest = 30 if self.dhcp else 31
        if net.prefixlen > smallest:
            raise InvalidNetwork(
                f"network {self.cidr} is too small for a gateway and a guest{' with DHCP' if self.dhcp else ''}: "
                f"the prefix may be at most /{smallest}",
                cidr=self.cidr,
            )

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host's address on the network: its first host address."""
        return next(self.network.hosts())

    @property
    def dhcp_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None:
        """The addresses DHCP hands out, first and last: every host address after the gateway."""
        if not self.dhcp:
            return None
        return self.gateway + 1, self.network.broadcast_address - 1


def overlaps(a: NetworkDef, b: NetworkDef) -> bool:
    """Whether two networks share any address. On one host they cannot coexist: their routes would clash."""
    return a.network.overlaps(b.network)


def check_disjoint(candidate: NetworkDef, others: Iterable[NetworkDef], unseen: Iterable[NetworkDef] = ()) -> None:
    """Raise ``NetworkOverlap`` naming the first of ``others`` that ``candidate`` overlaps, or, without naming
    it, the first of ``unseen`` (networks outside the caller's scope: a tenant must not learn another's).

    Every network of the host counts, whoever owns it: all are realised on the same host. Leave the
    candidate's own current definition out when it is being changed.
    """
    for other in others:
        if overlaps(candidate, other):
            raise NetworkOverlap(
                f"network {candidate.cidr} overlaps network {other.name!r} ({other.cidr})",
                cidr=candidate.cidr,
                overlaps=other.name,
            )
    if any(overlaps(candidate, other) for other in unseen):
        raise NetworkOverlap(
            f"network {candidate.cidr} overlaps a network outside your scope on this host; choose another range",
            cidr=candidate.cidr,
        )


def free_range_like(cidr: str, taken: Iterable[NetworkDef]) -> str:
    """The first range of the same size as ``cidr`` after it (wrapping around) within its private range that
    overlaps none of ``taken``: where a copy of a network goes, beside the original it may not overlap."""
    net = _parse_cidr(cidr)
    enclosing = next(p for p in PRIVATE_RANGES if net.subnet_of(p))
    others = [t.network for t in taken]
    size, first = net.num_addresses, int(enclosing.network_address)
    count = enclosing.num_addresses // size
    start = (int(net.network_address) - first) // size
    for step in range(1, count):
        candidate = ipaddress.IPv4Network((first + (start + step) % count * size, net.prefixlen))
        if not any(candidate.overlaps(o) for o in others):
            return str(candidate)
    raise NetworkOverlap(f"no range of the size of {cidr} is free in {enclosing}", cidr=cidr)


def libvirt_network_name(network_id: str) -> str:
    """The libvirt network (and bridge) name for a snapkeep network id: ``sk-`` and a short stable hash."""
    if not network_id:
        raise InvalidNetwork("a network id must not be empty")
    return LIBVIRT_PREFIX + hashlib.sha256(network_id.encode()).hexdigest()[:_HASH_CHARS]


@dataclass(frozen=True)
class NetworkSpec:
    """An isolated libvirt network as the hypervisor layer defines it, or reads it back.

    ``foreign`` names the elements snapkeep does not define (a ``<forward>`` uplink, a second ``<ip>``,
    DHCP host entries, ...): a network read back with any of them is not the one snapkeep defined.
    """

    name: str  # the libvirt network name
    bridge: str
    address: str  # the host's (gateway) address on the bridge
    prefix: int
    dhcp_range: tuple[str, str] | None
    foreign: tuple[str, ...] = ()


def network_spec(network_id: str, definition: NetworkDef) -> NetworkSpec:
    """What the hypervisor realises for the network ``network_id`` defined as ``definition``."""
    name = libvirt_network_name(network_id)
    dhcp = definition.dhcp_range
    return NetworkSpec(
        name=name,
        bridge=name,
        address=str(definition.gateway),
        prefix=definition.network.prefixlen,
        dhcp_range=(str(dhcp[0]), str(dhcp[1])) if dhcp else None,
    )
