"""NetworkSpec -> libvirt network XML and back, without libvirt: an isolated network is what it reads back as."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest

from snapkeep.errors import InvalidNetwork
from snapkeep.hypervisor.network_xml import network_xml, spec_from_network_xml
from snapkeep.model.network import NetworkDef, network_spec

SPEC = network_spec("6f1c1d5e-3a55-4c1e-9c1b-1f5e2b7d9a01", NetworkDef("tenant a (lan)", "10.42.0.0/24"))


def test_isolated_own_bridge_gateway_first_and_dhcp_over_the_rest() -> None:
    net = ET.fromstring(network_xml(SPEC))
    assert net.findtext("name") == SPEC.name
    assert net.find("forward") is None  # no uplink: libvirt's isolated mode
    bridge = net.find("bridge")
    assert bridge is not None and bridge.get("name") == SPEC.bridge
    assert bridge.get("stp") == "off"  # no listening/learning delay before a guest's first DHCP request
    (ip,) = net.findall("ip")
    assert (ip.get("address"), ip.get("prefix")) == ("10.42.0.1", "24")
    (dhcp_range,) = ip.findall("dhcp/range")
    assert (dhcp_range.get("start"), dhcp_range.get("end")) == ("10.42.0.2", "10.42.0.254")


def test_no_dhcp_element_when_dhcp_is_off() -> None:
    net = ET.fromstring(network_xml(dataclasses.replace(SPEC, dhcp_range=None)))
    assert net.find("ip/dhcp") is None


def test_round_trip_gives_back_the_spec() -> None:
    assert spec_from_network_xml(network_xml(SPEC)) == SPEC
    off = dataclasses.replace(SPEC, dhcp_range=None)
    assert spec_from_network_xml(network_xml(off)) == off


# What libvirt gives back for SPEC: its own uuid, MAC and bridge defaults, a netmask instead of a prefix.
LIBVIRT_DUMP = f"""<network>
  <name>{SPEC.name}</name>
  <uuid>100b660b-bb53-4d52-b7e4-8d6182df1447</uuid>
  <bridge name='{SPEC.bridge}' stp='on' delay='0'/>
  <mac address='52:54:00:50:89:9c'/>
  <ip address='10.42.0.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.42.0.2' end='10.42.0.254'/>
    </dhcp>
  </ip>
</network>"""


def test_what_libvirt_adds_is_not_a_difference() -> None:
    assert spec_from_network_xml(LIBVIRT_DUMP) == SPEC


@pytest.mark.parametrize(
    ("change", "foreign"),
    [
        ("<forward mode='nat'/>", ("forward",)),  # someone gave it an uplink
        ("<ip family='ipv6' address='fd00::1' prefix='64'/>", ("ip",)),
        ("<ip address='10.43.0.1' prefix='24'/>", ("ip",)),
        ("<portgroup name='x'/>", ("portgroup",)),
    ],
)
def test_elements_snapkeep_does_not_define_make_the_network_differ(change: str, foreign: tuple[str, ...]) -> None:
    back = spec_from_network_xml(LIBVIRT_DUMP.replace("</network>", change + "</network>"))
    assert back.foreign == foreign and back != SPEC


def test_dhcp_hosts_or_a_second_range_make_the_network_differ() -> None:
    extra = "<range start='10.42.0.2' end='10.42.0.254'/>\n      <host mac='52:54:00:00:00:01' ip='10.42.0.9'/>"
    back = spec_from_network_xml(LIBVIRT_DUMP.replace("<range start='10.42.0.2' end='10.42.0.254'/>", extra))
    assert back != SPEC and back.foreign == ("dhcp",)


def test_a_network_without_an_address_reads_back_as_foreign() -> None:
    back = spec_from_network_xml(f"<network><name>{SPEC.name}</name><bridge name='{SPEC.bridge}'/></network>")
    assert back != SPEC and back.address == ""


def test_invalid_specs_are_refused_before_libvirt_sees_them() -> None:
    for bad in (
        dataclasses.replace(SPEC, bridge="x" * 16),
        dataclasses.replace(SPEC, name="a/b"),
        dataclasses.replace(SPEC, foreign=("forward",)),
        dataclasses.replace(SPEC, dhcp_range=("10.43.0.2", "10.43.0.9")),  # outside the network
        dataclasses.replace(SPEC, dhcp_range=("10.42.0.1", "10.42.0.9")),  # the gateway's own address
        dataclasses.replace(SPEC, address="10.42.0.300"),
    ):
        with pytest.raises(InvalidNetwork):
            network_xml(bad)
