"""A VM's configuration as the catalog and snapshot manifests keep it, and how it becomes a VMSpec.

Disk files are named relative to the VM's dataset, so the same configuration describes the VM wherever
its dataset is (restored in place, cloned as a new VM).
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from snapkeep.model.network import libvirt_network_name
from snapkeep.model.vmspec import BootSpec, DiskSpec, NicSpec, VMSpec


class DiskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    file: str  # name inside the VM's dataset
    size: int
    serial: str
    target: str


class NicConfig(BaseModel):
    """A NIC on QEMU's user-mode network, on a libvirt network of the operator's (``network``), or on a
    snapkeep network (``network_id``: attached to the libvirt network the hypervisor realises for it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mac: str
    network: str = "user"
    network_id: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_network(self) -> NicConfig:
        if self.network_id is not None and self.network != "user":
            raise ValueError("a NIC is on either a snapkeep network (network_id) or a libvirt network (network)")
        return self

    @property
    def libvirt_network(self) -> str:
        """What the NIC is attached to in the domain: "user", or a libvirt network name."""
        return libvirt_network_name(self.network_id) if self.network_id is not None else self.network


class VMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    vcpus: int = Field(ge=1, le=64)
    memory_mib: int = Field(ge=16)
    machine: str = "pc"
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    disks: tuple[DiskConfig, ...]
    nics: tuple[NicConfig, ...] = ()
    kvm: bool = False
    guest_agent: bool = True  # a guest-agent channel; without one, quiesce requests cannot be honoured

    def to_spec(self, name: str, uuid: str, dataset_path: str, serial_log: str | None, title: str = "") -> VMSpec:
        return VMSpec(
            name=name,
            uuid=uuid,
            title=title,
            vcpus=self.vcpus,
            memory_mib=self.memory_mib,
            machine=self.machine,
            boot=BootSpec(kernel=self.kernel, initrd=self.initrd, cmdline=self.cmdline),
            disks=tuple(
                DiskSpec(file=os.path.join(dataset_path, d.file), size=d.size, serial=d.serial, target=d.target)
                for d in self.disks
            ),
            nics=tuple(NicSpec(mac=n.mac, network=n.libvirt_network) for n in self.nics),
            serial_log=serial_log,
            kvm=self.kvm,
            guest_agent=self.guest_agent,
        )

    def with_new_macs(self) -> VMConfig:
        return self.model_copy(update={"nics": tuple(n.model_copy(update={"mac": new_mac()}) for n in self.nics)})

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def new_mac() -> str:
    """A random locally administered MAC in QEMU's 52:54:00 range."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def new_serial() -> str:
    return "sk" + secrets.token_hex(6)


def disk_target(index: int) -> str:
    return "vd" + "abcdefghijklmnopqrstuvwxyz"[index]
