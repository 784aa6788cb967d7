"""Network definitions: what a user may define, what it overlaps, and how it is named on the host."""

from __future__ import annotations

import pytest

from snapkeep.errors import InvalidName, InvalidNetwork, NetworkOverlap
from snapkeep.model.network import (
    NetworkDef,
    check_disjoint,
    free_range_like,
    libvirt_network_name,
    network_spec,
    overlaps,
)


def test_a_valid_definition_has_its_gateway_first_and_dhcp_over_the_rest() -> None:
    net = NetworkDef("backend", "10.20.0.0/24")
    assert net.dhcp is True
    assert str(net.gateway) == "10.20.0.1"
    assert net.dhcp_range is not None and tuple(map(str, net.dhcp_range)) == ("10.20.0.2", "10.20.0.254")
    assert NetworkDef("backend", "10.20.0.0/24", dhcp=False).dhcp_range is None


def test_the_smallest_network_with_dhcp_leases_one_address() -> None:
    net = NetworkDef("tiny", "192.168.7.4/30")
    assert str(net.gateway) == "192.168.7.5"
    assert net.dhcp_range is not None and tuple(map(str, net.dhcp_range)) == ("192.168.7.6", "192.168.7.6")


@pytest.mark.parametrize(
    ("cidr", "why"),
    [
        ("10.0.0.1/24", "10.0.0.0/24"),  # a host address: the message names the network address meant
        ("10.0.0.0", "prefix"),
        ("10.0.0.0/33", "not an IPv4 network"),
        ("10.0.0.0/255.255.255.0", "10.0.0.0/24"),  # only the canonical spelling is kept
        (" 10.0.0.0/24", "10.0.0.0/24"),
        ("10.0.0/24", "not an IPv4 network"),
        ("", "prefix"),
        ("fd00::/64", "IPv6"),
        ("8.8.8.0/24", "private"),  # would hide those addresses from the host itself
        ("127.0.0.0/8", "private"),
        ("169.254.0.0/16", "private"),
        ("10.0.0.0/7", "private"),  # reaches past 10.0.0.0/8
    ],
)
def test_cidrs_that_cannot_be_realised_are_refused_with_the_reason(cidr: str, why: str) -> None:
    with pytest.raises(InvalidNetwork, match=why.replace(".", r"\.")) as caught:
        NetworkDef("net", cidr)
    assert caught.value.code == "invalid_network" and caught.value.details["cidr"] == cidr


@pytest.mark.parametrize(("cidr", "dhcp"), [("10.0.0.0/31", True), ("10.0.0.0/32", True), ("10.0.0.0/32", False)])
def test_prefixes_too_small_for_a_gateway_and_a_guest_are_refused(cidr: str, dhcp: bool) -> None:
    with pytest.raises(InvalidNetwork, match="too small"):
        NetworkDef("net", cidr, dhcp=dhcp)


def test_a_point_to_point_network_without_dhcp_holds_the_gateway_and_one_guest() -> None:
    net = NetworkDef("p2p", "10.0.0.0/31", dhcp=False)
    assert str(net.gateway) == "10.0.0.0" and net.dhcp_range is None


@pytest.mark.parametrize("name", ["", "a/b", "..", "-lead", "tab\there", "x" * 129])
def test_names_follow_the_object_name_rules(name: str) -> None:
    with pytest.raises(InvalidName):
        NetworkDef(name, "10.0.0.0/24")


def test_a_long_or_spaced_name_is_fine_because_host_names_come_from_the_id() -> None:
    net = NetworkDef("finance department back-office network", "10.0.0.0/24")
    spec = network_spec("0b6d2f0e-8a3c-4f43-9d5c-3f1a2b3c4d5e", net)
    assert len(spec.bridge.encode()) <= 15 and spec.bridge == spec.name
    assert "finance" not in spec.name


def test_libvirt_names_are_stable_prefixed_and_distinct() -> None:
    a = libvirt_network_name("0b6d2f0e-8a3c-4f43-9d5c-3f1a2b3c4d5e")
    assert a == libvirt_network_name("0b6d2f0e-8a3c-4f43-9d5c-3f1a2b3c4d5e")
    assert a.startswith("sk-") and len(a) == 13 and a[3:].isalnum()
    assert a != libvirt_network_name("0b6d2f0e-8a3c-4f43-9d5c-3f1a2b3c4d5f")
    with pytest.raises(InvalidNetwork):
        libvirt_network_name("")


def test_the_spec_is_isolated_with_the_gateway_and_range_of_the_definition() -> None:
    spec = network_spec("id-1", NetworkDef("lan", "172.16.4.0/22"))
    assert (spec.address, spec.prefix, spec.dhcp_range, spec.foreign) == (
        "172.16.4.1",
        22,
        ("172.16.4.2", "172.16.7.254"),
        (),
    )
    assert network_spec("id-1", NetworkDef("lan", "172.16.4.0/22", dhcp=False)).dhcp_range is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("10.0.0.0/24", "10.0.0.0/24", True),
        ("10.0.0.0/16", "10.0.200.0/24", True),  # one inside the other, either way round
        ("10.0.200.0/24", "10.0.0.0/16", True),
        ("10.0.0.0/24", "10.0.1.0/24", False),  # neighbours
        ("192.168.0.0/30", "192.168.0.4/30", False),
    ],
)
def test_overlaps(a: str, b: str, expected: bool) -> None:
    assert overlaps(NetworkDef("a", a), NetworkDef("b", b)) is expected


def test_check_disjoint_names_the_network_it_overlaps() -> None:
    new = NetworkDef("new", "10.1.0.0/24")
    others = [NetworkDef("far", "10.2.0.0/24"), NetworkDef("office", "10.1.0.0/16")]
    with pytest.raises(NetworkOverlap, match="office") as caught:
        check_disjoint(new, others)
    assert caught.value.code == "network_overlap" and caught.value.details["overlaps"] == "office"
    check_disjoint(new, others[:1])  # no error


def test_a_copy_gets_the_first_free_range_of_the_same_size_after_the_original() -> None:
    taken = [NetworkDef("a", "10.1.0.0/24"), NetworkDef("b", "10.1.1.0/24"), NetworkDef("c", "10.1.3.0/25")]
    assert free_range_like("10.1.0.0/24", taken) == "10.1.2.0/24"
    assert free_range_like("10.1.2.0/23", taken) == "10.1.4.0/23"  # 10.1.2.0/23 itself holds c
    assert free_range_like("192.168.255.0/24", [NetworkDef("d", "192.168.0.0/24")]) == "192.168.1.0/24"  # wraps
    with pytest.raises(NetworkOverlap):
        free_range_like("172.16.0.0/12", [NetworkDef("e", "172.20.0.0/24")])  # the whole private range
