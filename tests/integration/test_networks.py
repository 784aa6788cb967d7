"""Isolated networks on the real libvirtd: realised, read back, kept, redefined, refused and removed.

Every network a test creates is recorded by name and removed by that name in teardown (never everything
with the ``sk-`` prefix: the operator's and other runs' networks are not ours). Address ranges are picked
among private /24s that no route of this host uses yet. The DHCP test plugs a veth pair into the bridge
and asks busybox's udhcpc for a lease from a private network namespace; a guest is not needed for that
(the test guest has no network driver).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import secrets
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snapkeep.errors import HypervisorError, InvalidNetwork, NetworkInUse, NetworkOverlap, SnapkeepError, VMNotFound
from snapkeep.hypervisor.host_routes import clashing_routes, host_routes
from snapkeep.hypervisor.libvirt_host import LibvirtHost
from snapkeep.model.network import NetworkDef, NetworkSpec, network_spec
from snapkeep.model.vmconfig import NicConfig, VMConfig, new_mac
from snapkeep.model.vmspec import VMState
from tests.conftest import require


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=check)


def bridges_unavailable() -> str | None:
    """Why this machine cannot realise a network, or None when it can (a bridge can be made, dnsmasq is there)."""
    if shutil.which("dnsmasq", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        return "dnsmasq is not installed (Debian package dnsmasq-base): libvirt cannot serve DHCP"
    probe = f"skt{secrets.token_hex(3)}"
    made = sh("ip", "link", "add", probe, "type", "bridge", check=False)
    if made.returncode != 0:
        return f"this machine cannot create bridges (ip link add {probe} type bridge: {made.stderr.strip()})"
    sh("ip", "link", "del", probe)
    return None


@pytest.fixture(scope="module")
def host(libvirtd: None) -> Iterator[LibvirtHost]:
    why = bridges_unavailable()
    require(why is None, why or "")
    hv = LibvirtHost()
    yield hv
    hv.close()


@pytest.fixture
def free_ranges() -> Callable[[], str]:
    """Hands out private /24s that no route of this host (nor an earlier call) uses."""
    taken: list[ipaddress.IPv4Network] = []
    rng = random.Random()

    def pick() -> str:
        routes = host_routes()
        for _ in range(500):
            net = ipaddress.IPv4Network(f"10.{rng.randrange(200, 255)}.{rng.randrange(256)}.0/24")
            if not clashing_routes(net, "", routes) and not any(net.overlaps(t) for t in taken):
                taken.append(net)
                return str(net)
        pytest.fail("no free private /24 on this host")

    return pick


class Created:
    """The networks and domains a test made, by name, for teardown."""

    def __init__(self, host: LibvirtHost) -> None:
        self.host = host
        self.networks: list[str] = []
        self.domains: list[str] = []

    def network(self, cidr: str, dhcp: bool = True, name: str = "net") -> NetworkSpec:
        spec = network_spec(str(uuid.uuid4()), NetworkDef(name, cidr, dhcp))
        self.networks.append(spec.name)
        return spec


@pytest.fixture
def created(host: LibvirtHost) -> Iterator[Created]:
    made = Created(host)
    yield made
    for name in made.domains:
        try:
            host.power_off(name)
            host.undefine(name)
        except VMNotFound:
            pass
    for name in made.networks:
        try:
            host.remove_network(name)
        except SnapkeepError as exc:
            print(f"cleanup of network {name}: {exc}")
            sh("virsh", "net-destroy", name, check=False)
            sh("virsh", "net-undefine", name, check=False)


def dumpxml(name: str, inactive: bool = False) -> ET.Element:
    return ET.fromstring(sh("virsh", "net-dumpxml", *(["--inactive"] if inactive else []), name).stdout)


def net_info(name: str) -> dict[str, str]:
    lines = sh("virsh", "net-info", name).stdout.splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines if ":" in line)}


def bridge_addresses(bridge: str) -> list[str]:
    (link,) = json.loads(sh("ip", "-j", "-4", "addr", "show", "dev", bridge).stdout)
    return [f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]]


def test_a_network_is_realised_isolated_with_its_bridge_gateway_and_dhcp_range(
    host: LibvirtHost, created: Created, free_ranges: Callable[[], str]
) -> None:
    cidr = free_ranges()
    spec = created.network(cidr, name="finance department back-office network")
    assert not host.network_exists(spec.name)
    host.ensure_network(spec)

    assert host.network_exists(spec.name)
    info = net_info(spec.name)
    assert (info["Active"], info["Autostart"], info["Persistent"], info["Bridge"]) == ("yes", "no", "yes", spec.bridge)
    live = dumpxml(spec.name)
    assert live.find("forward") is None  # no uplink
    ip = live.find("ip")
    assert ip is not None and ip.get("address") == str(ipaddress.IPv4Network(cidr)[1])
    dhcp_range = live.find("ip/dhcp/range")
    assert dhcp_range is not None
    assert (dhcp_range.get("start"), dhcp_range.get("end")) == spec.dhcp_range
    assert bridge_addresses(spec.bridge) == [f"{spec.address}/24"]


def test_ensure_is_idempotent_and_starts_a_stopped_network(
    host: LibvirtHost, created: Created, free_ranges: Callable[[], str]
) -> None:
    spec = created.network(free_ranges())
    host.ensure_network(spec)
    uuid_before = sh("virsh", "net-uuid", spec.name).stdout.strip()
    host.ensure_network(spec)
    assert sh("virsh", "net-uuid", spec.name).stdout.strip() == uuid_before  # kept, not redefined

    sh("virsh", "net-destroy", spec.name)
    sh("virsh", "net-autostart", spec.name)
    host.ensure_network(spec)
    info = net_info(spec.name)
    assert (info["Active"], info["Autostart"]) == ("yes", "no")
    assert sh("virsh", "net-uuid", spec.name).stdout.strip() == uuid_before


def test_a_changed_definition_is_redefined(host: LibvirtHost, created: Created, free_ranges: Callable[[], str]) -> None:
    spec = created.network(free_ranges())
    host.ensure_network(spec)
    other = free_ranges()
    moved = network_spec("unused", NetworkDef("net", other, dhcp=False))
    changed = NetworkSpec(spec.name, spec.bridge, moved.address, moved.prefix, None)
    host.ensure_network(changed)
    live = dumpxml(spec.name)
    assert live.find("ip") is not None and live.find("ip").get("address") == moved.address  # type: ignore[union-attr]
    assert live.find("ip/dhcp") is None
    assert net_info(spec.name)["Active"] == "yes"
    assert bridge_addresses(spec.bridge) == [f"{moved.address}/24"]


def test_a_network_given_an_uplink_by_hand_is_redefined_isolated(
    host: LibvirtHost, created: Created, free_ranges: Callable[[], str], tmp_path: Path
) -> None:
    spec = created.network(free_ranges())
    host.ensure_network(spec)
    xml = ET.tostring(dumpxml(spec.name, inactive=True), encoding="unicode")
    sh("virsh", "net-destroy", spec.name)
    edited = tmp_path / "net.xml"
    edited.write_text(xml.replace("</network>", "<forward mode='nat'/></network>"))
    sh("virsh", "net-define", str(edited))
    assert dumpxml(spec.name, inactive=True).find("forward") is not None
    host.ensure_network(spec)
    assert dumpxml(spec.name).find("forward") is None


def test_a_range_the_host_already_routes_is_refused_and_nothing_is_left(
    host: LibvirtHost, created: Created, free_ranges: Callable[[], str]
) -> None:
    first = created.network(free_ranges())
    host.ensure_network(first)
    inside = str(list(ipaddress.IPv4Interface(f"{first.address}/24").network.subnets(1))[1])  # its upper /25
    second = created.network(inside)
    with pytest.raises(NetworkOverlap, match=first.bridge) as caught:
        host.ensure_network(second)
    assert caught.value.details["cidr"] == inside
    assert not host.network_exists(second.name)
    assert sh("ip", "link", "show", second.bridge, check=False).returncode != 0


def test_remove_stops_and_undefines_and_is_idempotent(
    host: LibvirtHost, created: Created, free_ranges: Callable[[], str]
) -> None:
    spec = created.network(free_ranges())
    host.ensure_network(spec)
    host.remove_network(spec.name)
    assert not host.network_exists(spec.name)
    assert sh("virsh", "net-info", spec.name, check=False).returncode != 0
    assert sh("ip", "link", "show", spec.bridge, check=False).returncode != 0
    host.remove_network(spec.name)  # absent: fine


def test_a_spec_snapkeep_never_defines_is_refused_before_libvirt_sees_it(host: LibvirtHost) -> None:
    spec = NetworkSpec("sk-" + "x" * 13, "sk-" + "x" * 13, "10.0.0.1", 24, None)
    with pytest.raises(InvalidNetwork):
        host.ensure_network(spec)
    assert not host.network_exists(spec.name)


def test_a_vm_nic_on_the_network_is_plugged_into_its_bridge_and_holds_the_network(
    host: LibvirtHost, created: Created, free_ranges: Callable[[], str]
) -> None:
    network_id = str(uuid.uuid4())
    definition = NetworkDef("lan", free_ranges())
    spec = network_spec(network_id, definition)
    created.networks.append(spec.name)
    # A diskless guest that sits in its firmware: enough for libvirt to plug its NIC in.
    nic = NicConfig(mac=new_mac(), network_id=network_id)
    config = VMConfig(vcpus=1, memory_mib=32, disks=(), nics=(nic,), guest_agent=False)
    vm = config.to_spec(f"snapkeep-test-net-{secrets.token_hex(3)}", str(uuid.uuid4()), "/nonexistent", None)
    created.domains.append(vm.name)
    host.define(vm)
    with pytest.raises(HypervisorError, match="network that is not running"):
        host.start(vm.name)  # its network is not realised yet
    host.ensure_network(spec)
    sh("virsh", "net-destroy", spec.name)
    with pytest.raises(HypervisorError, match="network that is not running"):
        host.start(vm.name)  # stopped (by hand)
    host.ensure_network(spec)
    host.start(vm.name)
    assert host.state(vm.name) == VMState.RUNNING
    ports = json.loads(sh("ip", "-j", "link", "show", "master", spec.bridge).stdout)
    assert len(ports) == 1 and ports[0]["address"] == "fe" + nic.mac[2:]  # libvirt's tap MAC

    with pytest.raises(NetworkInUse, match="running VM"):
        host.ensure_network(network_spec(network_id, NetworkDef("lan", definition.cidr, dhcp=False)))
    with pytest.raises(NetworkInUse):
        host.remove_network(spec.name)
    assert dumpxml(spec.name).find("ip/dhcp") is not None  # unchanged
    host.ensure_network(spec)  # the same definition is fine while in use

    host.power_off(vm.name)
    host.remove_network(spec.name)  # a stopped VM does not hold it
    assert not host.network_exists(spec.name)


def test_a_client_on_the_bridge_gets_a_dhcp_lease_in_the_range(
    host: LibvirtHost, created: Created, free_ranges: Callable[[], str]
) -> None:
    busybox = shutil.which("busybox")
    require(busybox is not None, "busybox is not installed (Debian package busybox-static)")
    assert busybox is not None
    spec = created.network(free_ranges())
    host.ensure_network(spec)
    tag = secrets.token_hex(3)
    netns, outside, inside = f"sk-test-{tag}", f"skvo{tag}", f"skvi{tag}"
    sh("ip", "netns", "add", netns)
    try:
        sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        sh("ip", "link", "set", inside, "netns", netns)
        sh("ip", "link", "set", outside, "master", spec.bridge, "up")
        sh("ip", "netns", "exec", netns, "ip", "link", "set", inside, "up")
        lease = sh(
            "ip", "netns", "exec", netns, busybox, "udhcpc", "-i", inside, "-f", "-q", "-n", "-t", "10", "-T", "2",
            "-s", "/bin/true",
        )  # fmt: skip
        found = re.search(r"lease of (\S+) obtained", lease.stdout + lease.stderr)
        assert found, lease.stdout + lease.stderr
        assert spec.dhcp_range is not None
        first, last = (ipaddress.IPv4Address(a) for a in spec.dhcp_range)
        assert first <= ipaddress.IPv4Address(found.group(1)) <= last
    finally:
        sh("ip", "link", "del", outside, check=False)
        sh("ip", "netns", "del", netns, check=False)
