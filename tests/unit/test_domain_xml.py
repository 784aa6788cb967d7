"""VMSpec -> libvirt domain XML and back, without libvirt: what snapkeep defines is what it reads back."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import pytest
from pydantic import ValidationError

from snapkeep.errors import InvalidInput
from snapkeep.hypervisor.domain_xml import AGENT_CHANNEL, domain_xml, spec_from_xml
from snapkeep.model.network import libvirt_network_name
from snapkeep.model.vmconfig import DiskConfig, NicConfig, VMConfig
from snapkeep.model.vmspec import BootSpec, DiskSpec, NicSpec, VMSpec

SPEC = VMSpec(
    name="web & <db>",
    uuid="6f1c1d5e-3a55-4c1e-9c1b-1f5e2b7d9a01",
    vcpus=2,
    memory_mib=256,
    disks=(
        DiskSpec("/pool/vms/web/disk0.raw", 1 << 30, "sk-web-0", "vda"),
        DiskSpec("/pool/vms/web/disk1.raw", 2 << 30, "sk-web-1", "vdb"),
    ),
    nics=(NicSpec("52:54:00:aa:bb:01"), NicSpec("52:54:00:aa:bb:02", network="tenant-a")),
    boot=BootSpec(kernel="/guest/vmlinuz", initrd="/guest/initrd.img", cmdline="console=ttyS0 quiet"),
    serial_log="/var/log/snapkeep/web.log",
)


def parse(spec: VMSpec) -> ET.Element:
    return ET.fromstring(domain_xml(spec))


def test_tcg_unless_kvm_is_asked_for() -> None:
    assert parse(SPEC).get("type") == "qemu"
    assert parse(dataclasses.replace(SPEC, kvm=True)).get("type") == "kvm"


def test_names_and_command_lines_are_escaped() -> None:
    dom = parse(SPEC)
    assert dom.findtext("name") == "web & <db>"
    assert dom.findtext("os/cmdline") == "console=ttyS0 quiet"


def test_kernel_boot_and_firmware_boot() -> None:
    dom = parse(SPEC)
    assert dom.findtext("os/kernel") == "/guest/vmlinuz" and dom.findtext("os/initrd") == "/guest/initrd.img"
    assert dom.find("os/boot") is None
    firmware = parse(dataclasses.replace(SPEC, boot=BootSpec()))
    assert firmware.find("os/kernel") is None
    boot = firmware.find("os/boot")
    assert boot is not None and boot.get("dev") == "hd"


def test_disks_are_raw_virtio_files_without_host_cache_and_keep_their_serial() -> None:
    disks = parse(SPEC).findall("devices/disk")
    assert len(disks) == 2
    for disk, want in zip(disks, SPEC.disks, strict=True):
        driver, source, target = disk.find("driver"), disk.find("source"), disk.find("target")
        assert driver is not None and source is not None and target is not None
        assert (driver.get("type"), driver.get("cache")) == ("raw", "none")
        assert source.get("file") == want.file
        assert (target.get("dev"), target.get("bus")) == (want.target, "virtio")
        assert disk.findtext("serial") == want.serial


def test_nics_user_mode_or_libvirt_network() -> None:
    user, network = parse(SPEC).findall("devices/interface")
    assert user.get("type") == "user" and user.find("source") is None
    assert network.get("type") == "network"
    assert network.find("source").get("network") == "tenant-a"  # type: ignore[union-attr]
    for nic, want in zip((user, network), SPEC.nics, strict=True):
        assert nic.find("mac").get("address") == want.mac  # type: ignore[union-attr]
        assert nic.find("model").get("type") == "virtio"  # type: ignore[union-attr]


def test_guest_agent_channel_only_when_asked() -> None:
    channels = parse(SPEC).findall("devices/channel")
    assert [(c.get("type"), c.find("target").get("name")) for c in channels] == [  # type: ignore[union-attr]
        ("unix", AGENT_CHANNEL)
    ]
    assert parse(dataclasses.replace(SPEC, guest_agent=False)).findall("devices/channel") == []


def test_serial_console_goes_to_the_log_file() -> None:
    serial = parse(SPEC).find("devices/serial")
    assert serial is not None and serial.get("type") == "file"
    assert serial.find("source").get("path") == SPEC.serial_log  # type: ignore[union-attr]


def test_round_trip_gives_back_the_spec() -> None:
    back = spec_from_xml(domain_xml(SPEC))
    assert back == dataclasses.replace(SPEC, disks=tuple(dataclasses.replace(d, size=0) for d in SPEC.disks))


@pytest.mark.parametrize(
    "change",
    [
        {"disks": (DiskSpec("/a.raw", 1, "x" * 21),)},
        {"disks": (DiskSpec("relative.raw", 1, "s"),)},
        {"disks": (DiskSpec("/a.raw", 1, "s", "vda"), DiskSpec("/b.raw", 1, "t", "vda"))},
        {"disks": (DiskSpec("/a.raw", 1, "s", "sda"),)},
        {"nics": (NicSpec("52:54:00:AA:BB:CC:DD"),)},
        {"vcpus": 0},
        {"name": "a/b"},
        {"boot": BootSpec(initrd="/initrd")},
    ],
)
def test_invalid_specs_are_refused_before_libvirt_sees_them(change: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        domain_xml(dataclasses.replace(SPEC, **change))  # type: ignore[arg-type]


ADOPTED = """<domain type='kvm'>
  <name>legacy</name><uuid>0b6d2f0e-8a3c-4f43-9d5c-3f1a2b3c4d5e</uuid>
  <memory unit='KiB'>524288</memory><vcpu placement='static'>1</vcpu>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/legacy.img'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><source file='/iso/debian.iso'/><target dev='sda' bus='sata'/></disk>
    <interface type='network'><mac address='52:54:00:01:02:03'/><source network='default'/></interface>
  </devices>
</domain>"""


def test_adopting_a_foreign_domain() -> None:
    spec = spec_from_xml(ADOPTED)
    assert (spec.name, spec.memory_mib, spec.machine, spec.kvm, spec.guest_agent) == (
        "legacy",
        512,
        "pc-q35-7.2",
        True,
        False,
    )
    assert spec.disks == (DiskSpec("/var/lib/libvirt/images/legacy.img", 0, "vda", "vda"),)  # cdrom skipped
    assert spec.nics == (NicSpec("52:54:00:01:02:03", "default"),)
    assert spec.boot == BootSpec()


def test_adopting_refuses_disks_snapkeep_cannot_keep() -> None:
    qcow2 = ADOPTED.replace("type='raw'", "type='qcow2'")
    with pytest.raises(InvalidInput, match="raw"):
        spec_from_xml(qcow2)


def test_a_nic_on_a_snapkeep_network_is_attached_to_the_libvirt_network_derived_from_its_id() -> None:
    network_id = "0b6d2f0e-8a3c-4f43-9d5c-3f1a2b3c4d5e"
    config = VMConfig(
        vcpus=1,
        memory_mib=64,
        disks=(DiskConfig(file="disk0.raw", size=1 << 20, serial="s0", target="vda"),),
        nics=(NicConfig(mac="52:54:00:aa:bb:01"), NicConfig(mac="52:54:00:aa:bb:02", network_id=network_id)),
    )
    spec = config.to_spec("web", SPEC.uuid, "/pool/vms/web", None)
    user, network = parse(spec).findall("devices/interface")
    assert user.get("type") == "user" and user.find("source") is None  # today's kind, unchanged
    assert network.get("type") == "network"
    assert network.find("source").get("network") == libvirt_network_name(network_id)  # type: ignore[union-attr]
    assert network.find("mac").get("address") == "52:54:00:aa:bb:02"  # type: ignore[union-attr]
    assert network.find("model").get("type") == "virtio"  # type: ignore[union-attr]
    assert config.with_new_macs().nics[1].network_id == network_id  # a clone stays on the network


def test_a_nic_names_one_network_only() -> None:
    with pytest.raises(ValidationError, match="either"):
        NicConfig(mac="52:54:00:aa:bb:02", network="operators-lan", network_id="0b6d2f0e")
    with pytest.raises(ValidationError):
        NicConfig(mac="52:54:00:aa:bb:02", network_id="")
