"""The contract every hypervisor driver keeps; the engine and services see only this.

The one driver is :class:`snapkeep.hypervisor.libvirt_host.LibvirtHost`; unit tests use fakes with fault
switches. A VM is addressed by its libvirt domain name. Every answer about a VM comes from the
hypervisor at the time of the call, never from a cached guess.

Errors (all :mod:`snapkeep.errors`; nothing from libvirt crosses this boundary):

- ``VMNotFound``: no domain of that name. Not retryable; the only error ``undefine`` never raises.
- ``VMStateConflict``: the domain exists but its power state does not allow the call (e.g. ``freeze``
  of a shut-off or paused guest, ``reset`` of a stopped one, ``undefine`` of a running one).
- ``AgentUnavailable``: the guest agent is not configured, not connected yet (guest still booting), or
  did not answer within the timeout. Retryable: the same call may work a moment later.
  ``FreezeTimeout`` (a subclass) is raised by ``freeze`` only, and means the freeze may still complete
  inside the guest after we gave up: **the caller must thaw** (as it does in its ``finally``).
- ``ShutdownTimeout``: a graceful shutdown did not finish in time; the guest is still running.
- ``HypervisorUnavailable``: libvirtd cannot be reached. Retryable.
- ``HypervisorError``: anything else libvirt refused, with its message and error code in ``details``.
- Networks: ``InvalidNetwork`` for a spec snapkeep never defines, ``NetworkOverlap`` when the host already
  routes some of its addresses, ``NetworkInUse`` when running VMs are plugged into it.

Timeouts are in seconds and bound the call: libvirt counts whole seconds, so a timeout is rounded up to
the next whole second (at least 1 s), and an agent call may take up to twice that (libvirt first
re-synchronises with the agent, bounded by the same timeout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from snapkeep.model.network import NetworkSpec
from snapkeep.model.vmspec import VMSpec, VMState


class Guest(Protocol):
    """One domain, looked up ahead of a paused window, so that inside the window pausing or resuming it is
    a single call to the hypervisor (no connection check, no lookup by name), with the errors of
    ``Hypervisor.pause`` and ``Hypervisor.resume``."""

    name: str

    def pause(self) -> None: ...
    def resume(self) -> None: ...


class Hypervisor(Protocol):
    """Power, definition and guest-agent operations on the VMs of one host, and the networks they use."""

    def define(self, spec: VMSpec) -> None:
        """Define the domain, or redefine it if one with this name and UUID exists (idempotent).

        A redefined running domain keeps running as it was; the new definition applies from its next
        boot. A different domain with the same name or UUID raises ``NameClash``; an invalid spec
        ``InvalidInput``.
        """
        ...

    def undefine(self, name: str) -> None:
        """Remove the domain's definition (and libvirt's snapshot metadata), never its disk files.

        Idempotent: an unknown name is not an error. A running or paused domain raises
        ``VMStateConflict`` (power it off first), so no transient domain is ever left behind.
        """
        ...

    def exists(self, name: str) -> bool:
        """Whether a domain of that name is defined (or running transiently)."""
        ...

    def spec(self, name: str) -> VMSpec:
        """The domain's persistent definition read back from the hypervisor, with disk sizes from the files.

        This is how to find a VM's disks. Raises ``InvalidInput`` for a domain with disks snapkeep
        cannot keep (not raw files), so an adopted domain is never snapshotted without a disk.
        """
        ...

    def state(self, name: str) -> VMState:
        """The power state as the hypervisor reports it right now."""
        ...

    def states(self, names: Sequence[str]) -> dict[str, VMState]:
        """The state of each of ``names`` that has a domain, all read in one call (a system snapshot asks
        about every VM at once); names without a domain are left out."""
        ...

    def list_domains(self) -> list[str]:
        """The names of all defined or running domains, sorted."""
        ...

    def start(self, name: str) -> None:
        """Power on. Idempotent: a running or paused domain is left as it is.

        The networks its NICs name must run first (``ensure_network``); else ``HypervisorError``."""
        ...

    def shutdown(self, name: str, timeout: float) -> None:
        """Graceful power-off, returning once the domain is shut off (idempotent when it already is).

        Presses the ACPI power button; if the guest has not powered off after half the timeout, asks
        its guest agent (``guest-shutdown``) and presses the button again. Raises ``ShutdownTimeout``
        when the domain is still running at the timeout, ``VMStateConflict`` for a paused domain (a
        paused guest cannot react: resume it, or power it off).
        """
        ...

    def power_off(self, name: str) -> None:
        """Pull the plug (libvirt destroy). Idempotent: a shut-off domain is left as it is."""
        ...

    def reset(self, name: str) -> None:
        """Hard reset of a running domain; ``VMStateConflict`` if it is not running."""
        ...

    def pause(self, name: str) -> None:
        """Stop the vCPUs (the disks stay open). Idempotent; ``VMStateConflict`` if not running."""
        ...

    def resume(self, name: str) -> None:
        """Restart paused vCPUs. Idempotent; ``VMStateConflict`` if the domain is not running at all."""
        ...

    def guests(self, names: Sequence[str]) -> list[Guest]:
        """The domains ``names``, ready to be paused and resumed with one call each (see :class:`Guest`);
        ``VMNotFound`` for one that does not exist."""
        ...

    def agent_ping(self, name: str, timeout: float) -> bool:
        """Whether the guest agent answers within ``timeout``; False (never an error) when it does not.

        Raises only ``VMNotFound`` and ``HypervisorUnavailable``.
        """
        ...

    def freeze(self, name: str, timeout: float) -> int:
        """Freeze the guest's filesystems through its agent; returns how many were frozen.

        ``AgentUnavailable`` if the agent is missing or not connected (nothing was frozen);
        ``FreezeTimeout`` if it did not confirm in time (it may still freeze: thaw in ``finally``);
        ``VMStateConflict`` if the guest is not running (paused or off).
        """
        ...

    def thaw(self, name: str, timeout: float) -> int:
        """Thaw the guest's filesystems; returns how many were thawed (0 if none were frozen).

        Safe to call when nothing is frozen, so cleanup may always call it. ``AgentUnavailable`` if the
        agent does not answer: the guest stays frozen and the caller (or the reconciler) must retry.
        """
        ...

    def frozen(self, name: str, timeout: float) -> bool:
        """Whether the guest agent reports its filesystems frozen; ``AgentUnavailable`` if it cannot say."""
        ...

    def unreachable_reason(self, path: str) -> str | None:
        """Why the hypervisor's QEMU processes could not open disk files under the directory ``path`` (the
        user they run as cannot enter it or a directory above it), with how to fix it; ``None`` when they
        can, or when they run as root or on another host. Needs no running hypervisor; never raises."""
        ...

    def ensure_network(self, spec: NetworkSpec) -> None:
        """Make the isolated network ``spec`` exist and run, with autostart off (idempotent).

        ``spec`` comes from ``model.network.network_spec(network_id, definition)``; its name is the one the
        VMs' NICs name. An existing network with the same definition is kept (started if it was not); a
        different one (another range, DHCP changed, or an uplink added by hand) is redefined, unless
        running VMs use it: ``NetworkInUse``. Before a network starts, a range that the host already routes
        (its LAN, a VPN, another network) raises ``NetworkOverlap``, and nothing is left defined.
        """
        ...

    def remove_network(self, name: str) -> None:
        """Stop and undefine the network ``name``. Idempotent: an unknown name is not an error.
        ``NetworkInUse`` while running VMs use it (stop them first); stopped VMs that name it stay defined."""
        ...

    def network_exists(self, name: str) -> bool:
        """Whether a network of that (libvirt) name is defined or running."""
        ...


@dataclass(frozen=True)
class GuestByName:
    """A :class:`Guest` that goes through ``Hypervisor.pause`` and ``resume`` by name: for hypervisors
    whose calls by name are already single calls (the test doubles)."""

    host: Hypervisor
    name: str

    def pause(self) -> None:
        self.host.pause(self.name)

    def resume(self) -> None:
        self.host.resume(self.name)
