"""snapkeep's own description of a VM: what the hypervisor layer turns into a libvirt domain.

Pure data, no libvirt here. Disks are raw sparse files in the VM's dataset in the pool; no qcow2 chains,
so restoring any snapshot is a metadata operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class VMState(StrEnum):
    """The state libvirt reports (never a cached guess)."""

    RUNNING = "running"
    PAUSED = "paused"
    SHUTOFF = "shutoff"
    SHUTDOWN = "shutting-down"
    CRASHED = "crashed"
    OTHER = "other"


@dataclass(frozen=True)
class DiskSpec:
    file: str  # absolute path of the raw sparse file
    size: int  # bytes
    serial: str  # kept across restores and clones
    target: str = "vda"  # guest device name (vda, vdb, ...)


@dataclass(frozen=True)
class NicSpec:
    mac: str
    network: str = "user"  # "user": QEMU user-mode networking (no host setup); else a libvirt network name


@dataclass(frozen=True)
class BootSpec:
    """Boot by firmware (all None) or by a kernel with an optional initrd and command line."""

    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None


@dataclass(frozen=True)
class VMSpec:
    name: str  # libvirt domain name
    uuid: str  # libvirt UUID
    vcpus: int
    memory_mib: int
    disks: tuple[DiskSpec, ...]
    nics: tuple[NicSpec, ...] = ()
    boot: BootSpec = field(default_factory=BootSpec)
    machine: str = "pc"
    guest_agent: bool = True  # a virtio-serial channel org.qemu.guest_agent.0
    serial_log: str | None = None  # file receiving the serial console
    kvm: bool = False  # TCG unless asked: KVM is detected and opted into, never assumed
    title: str = ""  # what people call it (the VM's name), shown by `virsh list --title`
