"""NetworkSpec <-> libvirt network XML, both ways, as pure functions (no libvirt here).

snapkeep defines isolated networks only: no ``<forward>`` element, so libvirt gives the bridge no uplink
(it rejects forwarded traffic in the host's firewall) and its dnsmasq resolves no outside names. Reading
back keeps what snapkeep defines and names every other element in ``foreign``, so that a network someone
changed by hand (an uplink added, a second address) never passes for the one snapkeep defined. What
libvirt adds on its own (uuid, MAC, bridge options) is not a difference.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET

from snapkeep.errors import InvalidNetwork
from snapkeep.model.network import MAX_BRIDGE_NAME, NetworkSpec

_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_BRIDGE_NAME - 1}}}$")
_LIBVIRT_ADDS = {"name", "uuid", "bridge", "mac", "ip"}  # top-level elements that say nothing about routing


def validate(spec: NetworkSpec) -> None:
    """Refuse, before libvirt sees it, what snapkeep never defines or the kernel would refuse later."""
    for what, value in (("network name", spec.name), ("bridge name", spec.bridge)):
        if not _NAME.match(value):
            raise InvalidNetwork(f"{what} must be 1-{MAX_BRIDGE_NAME} of A-Z a-z 0-9 _ . -: {value!r}", name=value)
    if spec.foreign:
        raise InvalidNetwork(f"snapkeep defines isolated networks only, without {', '.join(spec.foreign)}")
    try:
        iface = ipaddress.IPv4Interface(f"{spec.address}/{spec.prefix}")
        first, last = (ipaddress.IPv4Address(a) for a in spec.dhcp_range or (spec.address, spec.address))
    except ValueError as exc:
        raise InvalidNetwork(f"network {spec.name}: {exc}", name=spec.name) from None
    outside = first not in iface.network or last not in iface.network or first > last
    if spec.dhcp_range and (outside or first <= iface.ip <= last):
        raise InvalidNetwork(f"network {spec.name}: the DHCP range must lie in {iface.network}, beside the gateway")


def network_xml(spec: NetworkSpec) -> str:
    """The libvirt network XML for ``spec``: its own bridge, the gateway address, DHCP when it has a range."""
    validate(spec)
    net = ET.Element("network")
    ET.SubElement(net, "name").text = spec.name
    # No spanning tree: its listening and learning delays (2 s each at least) would hold back every guest's
    # first DHCP request, and a bridge of VM interfaces without an uplink has no loop for it to break.
    ET.SubElement(net, "bridge", name=spec.bridge, stp="off")
    ip = ET.SubElement(net, "ip", address=spec.address, prefix=str(spec.prefix))
    if spec.dhcp_range:
        ET.SubElement(ET.SubElement(ip, "dhcp"), "range", start=spec.dhcp_range[0], end=spec.dhcp_range[1])
    ET.indent(net)
    return ET.tostring(net, encoding="unicode") + "\n"


def _prefix(ip: ET.Element) -> int:
    if ip.get("prefix"):
        return int(ip.get("prefix", "0"))
    return ipaddress.IPv4Network(f"0.0.0.0/{ip.get('netmask', '0.0.0.0')}").prefixlen


def _dhcp_range(ip: ET.Element, foreign: list[str]) -> tuple[str, str] | None:
    """The one DHCP range of ``ip``; anything more in ``<ip>`` (hosts, a second range, tftp) is foreign."""
    dhcp = ip.find("dhcp")
    if any(child.tag != "dhcp" for child in ip):
        foreign.extend(child.tag for child in ip if child.tag != "dhcp")
    if dhcp is None:
        return None
    ranges = dhcp.findall("range")
    if len(ranges) != 1 or len(dhcp) != 1 or len(ranges[0]):
        foreign.append("dhcp")
    return (ranges[0].get("start", ""), ranges[0].get("end", "")) if ranges else None


def spec_from_network_xml(xml: str) -> NetworkSpec:
    """Read a network's XML back: what snapkeep would define, plus the names of any foreign elements."""
    net = ET.fromstring(xml)
    foreign = [child.tag for child in net if child.tag not in _LIBVIRT_ADDS]
    ips = net.findall("ip")
    ipv4 = ips[0] if ips and ips[0].get("family", "ipv4") == "ipv4" else None
    foreign.extend("ip" for ip in ips if ip is not ipv4)
    bridge = net.find("bridge")
    address, prefix, dhcp_range = "", 0, None
    if ipv4 is not None:
        address, prefix, dhcp_range = ipv4.get("address", ""), _prefix(ipv4), _dhcp_range(ipv4, foreign)
    return NetworkSpec(
        name=net.findtext("name", ""),
        bridge=bridge.get("name", "") if bridge is not None else "",
        address=address,
        prefix=prefix,
        dhcp_range=dhcp_range,
        foreign=tuple(foreign),
    )
