"""VMSpec <-> libvirt domain XML, both ways, as pure functions (no libvirt here).

Written with ElementTree so names, paths and command lines are always escaped. The reverse direction
(``spec_from_xml``) reads back what snapkeep defined, and adopts a domain defined by someone else as far
as snapkeep can describe it: raw file disks on virtio, user or network NICs, kernel or firmware boot.
What it cannot describe (qcow2 disks, block devices, ...) is refused rather than silently dropped, so a
snapshot never misses a disk.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from snapkeep.errors import InvalidInput
from snapkeep.model.vmspec import BootSpec, DiskSpec, NicSpec, VMSpec

AGENT_CHANNEL = "org.qemu.guest_agent.0"
# virtio-blk carries at most 20 bytes of serial; libvirt accepts only these characters in it.
_SERIAL = re.compile(r"^[A-Za-z0-9_.+ -]{1,20}$")
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
_TARGET = re.compile(r"^vd[a-z]{1,2}$")
_MEMORY_UNITS = {
    "b": 1,
    "bytes": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}


def validate(spec: VMSpec) -> None:
    """Refuse, before libvirt sees it, what would fail later or be silently truncated."""
    if not spec.name or "/" in spec.name or any(ord(c) < 32 for c in spec.name):
        raise InvalidInput(f"invalid VM name {spec.name!r}")
    if spec.vcpus < 1 or spec.memory_mib < 16:
        raise InvalidInput("a VM needs at least 1 vCPU and 16 MiB of memory")
    targets = [d.target for d in spec.disks]
    if len(set(targets)) != len(targets):
        raise InvalidInput(f"two disks share a target device: {targets}")
    for disk in spec.disks:
        if not disk.file.startswith("/"):
            raise InvalidInput(f"disk file must be an absolute path: {disk.file!r}")
        if not _TARGET.match(disk.target):
            raise InvalidInput(f"disk target must be a virtio name like vda: {disk.target!r}")
        if not _SERIAL.match(disk.serial):
            raise InvalidInput(f"disk serial must be 1-20 of A-Z a-z 0-9 _ . + - or space: {disk.serial!r}")
    for nic in spec.nics:
        if not _MAC.match(nic.mac):
            raise InvalidInput(f"invalid MAC address {nic.mac!r} (lower-case aa:bb:cc:dd:ee:ff)")
    if spec.boot.initrd and not spec.boot.kernel:
        raise InvalidInput("an initrd needs a kernel")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


def domain_xml(spec: VMSpec) -> str:
    """The libvirt domain XML for ``spec``: TCG unless ``spec.kvm``, raw virtio disks with cache='none'."""
    validate(spec)
    dom = ET.Element("domain", type="kvm" if spec.kvm else "qemu")
    _sub(dom, "name", spec.name)
    _sub(dom, "uuid", spec.uuid)
    if spec.title:
        _sub(dom, "title", spec.title)
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus))
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine=spec.machine)
    if spec.boot.kernel:
        _sub(os_el, "kernel", spec.boot.kernel)
        if spec.boot.initrd:
            _sub(os_el, "initrd", spec.boot.initrd)
        if spec.boot.cmdline:
            _sub(os_el, "cmdline", spec.boot.cmdline)
    else:
        _sub(os_el, "boot", dev="hd")
    features = _sub(dom, "features")
    _sub(features, "acpi")  # the power button a graceful shutdown presses
    _sub(features, "apic")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")

    devices = _sub(dom, "devices")
    for disk in spec.disks:
        d = _sub(devices, "disk", type="file", device="disk")
        # cache='none' (O_DIRECT): a write the guest was told is done is in the file, so a snapshot of the
        # file taken while the guest is paused holds everything the guest flushed.
        _sub(d, "driver", name="qemu", type="raw", cache="none", discard="unmap")
        _sub(d, "source", file=disk.file)
        _sub(d, "target", dev=disk.target, bus="virtio")
        _sub(d, "serial", disk.serial)
    for nic in spec.nics:
        if nic.network == "user":
            i = _sub(devices, "interface", type="user")
        else:
            i = _sub(devices, "interface", type="network")
            _sub(i, "source", network=nic.network)
        _sub(i, "mac", address=nic.mac)
        _sub(i, "model", type="virtio")
    if spec.guest_agent:
        ch = _sub(devices, "channel", type="unix")
        _sub(ch, "source", mode="bind")  # libvirt picks the socket path and connects to it itself
        _sub(ch, "target", type="virtio", name=AGENT_CHANNEL)
    if spec.serial_log:
        s = _sub(devices, "serial", type="file")
        _sub(s, "source", path=spec.serial_log)
        _sub(s, "target", port="0")
    else:
        s = _sub(devices, "serial", type="pty")
        _sub(s, "target", port="0")
    _sub(devices, "memballoon", model="none")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode") + "\n"


def _memory_mib(el: ET.Element | None) -> int:
    if el is None or not el.text:
        raise InvalidInput("domain XML has no <memory>")
    unit = el.get("unit", "KiB").lower()
    if unit not in _MEMORY_UNITS:
        raise InvalidInput(f"unknown memory unit {unit!r}")
    return int(el.text) * _MEMORY_UNITS[unit] // (1 << 20)


def _disks(devices: ET.Element) -> tuple[DiskSpec, ...]:
    disks: list[DiskSpec] = []
    for d in devices.findall("disk"):
        if d.get("device", "disk") != "disk":
            continue  # CD-ROMs and floppies are not data snapkeep keeps
        driver, source, target = d.find("driver"), d.find("source"), d.find("target")
        file = source.get("file") if source is not None else None
        fmt = driver.get("type", "raw") if driver is not None else "raw"
        if d.get("type") != "file" or not file or fmt != "raw" or target is None:
            raise InvalidInput(
                f"disk {target.get('dev') if target is not None else '?'} is not a raw file: snapkeep keeps "
                "only raw disk files (convert qcow2 and block devices first)"
            )
        dev = target.get("dev", "vda")
        disks.append(DiskSpec(file=file, size=0, serial=d.findtext("serial") or dev, target=dev))
    return tuple(disks)


def _nics(devices: ET.Element) -> tuple[NicSpec, ...]:
    nics: list[NicSpec] = []
    for i in devices.findall("interface"):
        mac = i.find("mac")
        if mac is None or not mac.get("address"):
            raise InvalidInput("an interface has no MAC address")
        if i.get("type") == "user":
            nics.append(NicSpec(mac=mac.get("address", ""), network="user"))
        elif i.get("type") == "network":
            source = i.find("source")
            nics.append(
                NicSpec(mac=mac.get("address", ""), network=source.get("network", "") if source is not None else "")
            )
        else:
            raise InvalidInput(f"interface type {i.get('type')!r} is not supported (user or network)")
    return tuple(nics)


def spec_from_xml(xml: str) -> VMSpec:
    """Read a domain XML back into a VMSpec. Disk sizes are 0: the caller fills them from the files."""
    dom = ET.fromstring(xml)
    os_el = dom.find("os")
    if os_el is None:
        raise InvalidInput("domain XML has no <os>")
    type_el = os_el.find("type")
    devices = dom.find("devices")
    if devices is None:
        devices = ET.Element("devices")
    serial = next((s for s in devices.findall("serial") if s.get("type") == "file"), None)
    serial_source = serial.find("source") if serial is not None else None
    agent = any(
        (t := ch.find("target")) is not None and t.get("name") == AGENT_CHANNEL for ch in devices.findall("channel")
    )
    return VMSpec(
        name=dom.findtext("name", ""),
        uuid=dom.findtext("uuid", ""),
        vcpus=int(dom.findtext("vcpu", "1")),
        memory_mib=_memory_mib(dom.find("memory")),
        disks=_disks(devices),
        nics=_nics(devices),
        boot=BootSpec(
            kernel=os_el.findtext("kernel"), initrd=os_el.findtext("initrd"), cmdline=os_el.findtext("cmdline")
        ),
        machine=type_el.get("machine", "pc") if type_el is not None else "pc",
        guest_agent=agent,
        serial_log=serial_source.get("path") if serial_source is not None else None,
        kvm=dom.get("type") == "kvm",
    )
