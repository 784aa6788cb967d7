"""The libvirt driver of :class:`snapkeep.hypervisor.base.Hypervisor`: the only module that imports libvirt.

Every libvirt call goes through ``_calling()``, which turns ``libvirtError`` into snapkeep errors by
error code (STYLE.md 7), and libvirt's default handler, which would print every error on stderr even
when we handle it, is silenced once, at import.

Guest-agent calls are bounded: ``fsFreeze``/``fsThaw``/``shutdownFlags`` use the domain's agent response
timeout (``agentSetResponseTimeout``, set before each call because libvirt's default is to wait forever),
and the commands libvirt has no API for (ping, freeze status, file reads) go through
``libvirt_qemu.qemuAgentCommand`` with an explicit timeout. libvirt logs a harmless
"custom-ga-command" taint for the latter in the domain's log.

Networks are isolated libvirt networks (``network_xml``); before one starts, the host's routes are checked
for a clash (``host_routes``) on a local connection, since libvirt itself catches only exact duplicates.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import libvirt
import libvirt_qemu

from snapkeep.errors import (
    AgentUnavailable,
    FreezeTimeout,
    HypervisorError,
    HypervisorUnavailable,
    NameClash,
    NetworkInUse,
    NetworkOverlap,
    NotFound,
    ShutdownTimeout,
    SnapkeepError,
    VMNotFound,
    VMStateConflict,
)
from snapkeep.hypervisor.base import Guest
from snapkeep.hypervisor.domain_xml import domain_xml, spec_from_xml
from snapkeep.hypervisor.host_routes import clashing_routes, host_routes
from snapkeep.hypervisor.network_xml import network_xml, spec_from_network_xml
from snapkeep.hypervisor.qemu_access import unreachable_reason
from snapkeep.model.network import NetworkSpec
from snapkeep.model.vmspec import DiskSpec, VMSpec, VMState

DEFAULT_URI = "qemu:///system"
LOCAL_URIS = ("qemu:///system", "qemu+unix:///system")  # the host this process runs on
_POLL = 0.05  # seconds between state checks while waiting for a power-off


def _ignore_libvirt_error(_ctx: object, _err: object) -> None:
    """libvirt prints every error on stderr unless a handler is registered; we raise them instead."""


libvirt.registerErrorHandler(_ignore_libvirt_error, None)

_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: VMState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: VMState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: VMState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: VMState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: VMState.SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: VMState.CRASHED,
}
_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
)
_UNREACHABLE = {libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_RPC}
_AGENT_DOWN = {libvirt.VIR_ERR_AGENT_UNRESPONSIVE, libvirt.VIR_ERR_AGENT_UNSYNCED}


def _seconds(timeout: float) -> int:
    """libvirt counts whole seconds: round up, never below one (0 would mean "do not wait")."""
    return max(1, math.ceil(timeout))


def _unreachable(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() in _UNREACHABLE or exc.get_error_domain() == libvirt.VIR_FROM_RPC


def translate(exc: libvirt.libvirtError, name: str | None, *, freezing: bool = False) -> SnapkeepError:
    """The snapkeep error for a libvirt error, by its code (STYLE.md 7)."""
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    details: dict[str, Any] = {"libvirt_code": code, "vm": name}
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return VMNotFound(f"no VM named {name!r}", **details)
    if code in _AGENT_DOWN or (code == libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED and "agent" in message):
        # Only a timeout leaves it open whether the guest froze; libvirt's other agent errors come first.
        if freezing and not any(m in message for m in ("not connected", "not configured", "due to an error")):
            return FreezeTimeout(f"guest agent of {name!r} did not confirm the freeze in time: {message}", **details)
        return AgentUnavailable(f"guest agent of {name!r} is unavailable: {message}", **details)
    if code == libvirt.VIR_ERR_NO_NETWORK or (code == libvirt.VIR_ERR_OPERATION_INVALID and "network '" in message):
        return HypervisorError(
            f"VM {name!r} uses a network that is not running (ensure it first): {message}", **details
        )
    if "frozen state" in message:  # qemu-ga refuses a second freeze (and most commands) until thawed
        return VMStateConflict(f"VM {name!r} has its filesystems frozen already: thaw first", **details)
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return VMStateConflict(f"VM {name!r}: {message}", **details)
    if _unreachable(exc):
        return HypervisorUnavailable(f"libvirt connection failed: {message}", **details)
    if "already exists" in message or code == libvirt.VIR_ERR_DOM_EXIST:
        return NameClash(f"another domain clashes with VM {name!r}: {message}", **details)
    return HypervisorError(f"libvirt failed on VM {name!r}: {message}", **details)


def translate_network(exc: libvirt.libvirtError, name: str) -> SnapkeepError:
    """The snapkeep error for a libvirt error on the network ``name``."""
    message = exc.get_error_message() or str(exc)
    details: dict[str, Any] = {"libvirt_code": exc.get_error_code(), "network": name}
    if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
        return NotFound(f"no libvirt network named {name!r}", **details)
    if _unreachable(exc):
        return HypervisorUnavailable(f"libvirt connection failed: {message}", **details)
    if "already in use by interface" in message:  # libvirt's own check: a route with exactly this range
        return NetworkOverlap(f"network {name!r} clashes with a route of the host: {message}", **details)
    return HypervisorError(f"libvirt failed on network {name!r}: {message}", **details)


@contextmanager
def _calling(name: str | None, *, freezing: bool = False) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate(exc, name, freezing=freezing) from exc


@contextmanager
def _calling_network(name: str) -> Iterator[None]:
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate_network(exc, name) from exc


class _LibvirtGuest:
    """A domain looked up once: pausing or resuming it is one call to libvirtd (see ``base.Guest``).

    A resume whose connection died since the lookup (libvirtd restarted inside the window) is made again,
    once, on a fresh connection: the guest is not left paused until the service's retry comes round."""

    def __init__(self, host: LibvirtHost, name: str, dom: Any) -> None:
        self._host = host
        self.name = name
        self._dom = dom

    def pause(self) -> None:
        with _calling(self.name):
            self._dom.suspend()  # libvirt accepts suspending a paused domain: idempotent already

    def resume(self) -> None:
        try:
            _resume(self.name, self._dom)
        except HypervisorUnavailable:
            _resume(self.name, self._host._domain(self.name))  # looked up again, reconnecting


def _resume(name: str, dom: Any) -> None:
    with _calling(name):
        try:
            dom.resume()
        except libvirt.libvirtError as exc:
            if not (
                exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID
                and dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
            ):
                raise


class LibvirtHost:
    """The VMs of one libvirt connection (``qemu:///system`` by default); see ``Hypervisor`` for the contract.

    The connection is opened on first use and reopened if libvirtd restarted. Thread-safe as far as
    libvirt is; the per-domain agent timeout is set right before each agent call.
    """

    def __init__(self, uri: str = DEFAULT_URI) -> None:
        self.uri = uri
        self._conn: Any = None
        self._lock = threading.Lock()
        self._network_lock = threading.Lock()  # two VMs starting at once ensure their shared network once

    # -- connection ---------------------------------------------------------------------------------------

    def _connection(self) -> Any:
        with self._lock:
            if self._conn is not None:
                try:
                    # isAlive() misses a libvirtd that restarted; one cheap round trip does not
                    if self._conn.isAlive() and self._conn.getLibVersion():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._close_quietly()
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise HypervisorUnavailable(
                    f"cannot connect to libvirt at {self.uri}: {exc.get_error_message()} (is libvirtd running?)",
                    uri=self.uri,
                ) from exc
            return self._conn

    def _close_quietly(self) -> None:
        with suppress(libvirt.libvirtError):
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._close_quietly()

    def __enter__(self) -> LibvirtHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _domain(self, name: str) -> Any:
        conn = self._connection()
        with _calling(name):
            return conn.lookupByName(name)

    # -- definition ---------------------------------------------------------------------------------------

    def define(self, spec: VMSpec) -> None:
        xml = domain_xml(spec)
        conn = self._connection()
        with _calling(spec.name):
            conn.defineXML(xml)

    def undefine(self, name: str) -> None:
        try:
            dom = self._domain(name)
        except VMNotFound:
            return
        with _calling(name):
            if dom.isActive():
                raise VMStateConflict(f"VM {name!r} is running: power it off before deleting it", vm=name)
            try:
                dom.undefineFlags(_UNDEFINE_FLAGS)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:  # undefined meanwhile: fine
                    raise

    def exists(self, name: str) -> bool:
        try:
            self._domain(name)
        except VMNotFound:
            return False
        return True

    def spec(self, name: str) -> VMSpec:
        dom = self._domain(name)
        with _calling(name):
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        spec = spec_from_xml(xml)
        disks = tuple(
            DiskSpec(d.file, os.path.getsize(d.file) if os.path.exists(d.file) else 0, d.serial, d.target)
            for d in spec.disks
        )
        return VMSpec(**{**spec.__dict__, "disks": disks})

    def list_domains(self) -> list[str]:
        conn = self._connection()
        with _calling(None):
            return sorted(dom.name() for dom in conn.listAllDomains(0))

    # -- power --------------------------------------------------------------------------------------------

    def state(self, name: str) -> VMState:
        dom = self._domain(name)
        with _calling(name):
            code = dom.state()[0]
        return _STATES.get(code, VMState.OTHER)

    def states(self, names: Sequence[str]) -> dict[str, VMState]:
        wanted = set(names)
        conn = self._connection()
        with _calling(None):
            stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)  # every domain, active or not
        return {
            dom.name(): _STATES.get(values["state.state"], VMState.OTHER)
            for dom, values in stats
            if dom.name() in wanted
        }

    def start(self, name: str) -> None:
        dom = self._domain(name)
        with _calling(name):
            if not dom.isActive():
                try:
                    dom.create()
                except libvirt.libvirtError as exc:  # started by someone else meanwhile: fine
                    if not (exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and dom.isActive()):
                        raise

    def shutdown(self, name: str, timeout: float) -> None:
        dom = self._domain(name)
        deadline = time.monotonic() + timeout
        state = self.state(name)
        if state == VMState.SHUTOFF:
            return
        if state == VMState.PAUSED:
            raise VMStateConflict(f"VM {name!r} is paused and cannot shut down: resume it or power it off", vm=name)
        self._press_power_button(dom, name)
        if self._wait_shutoff(dom, name, time.monotonic() + timeout / 2):
            return
        # The guest may have missed the button (still booting, no ACPI handler): ask its agent too.
        try:
            with _calling(name):
                dom.agentSetResponseTimeout(_seconds(max(deadline - time.monotonic(), 1)))
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_GUEST_AGENT)
        except (AgentUnavailable, VMStateConflict):
            pass
        self._press_power_button(dom, name)
        if self._wait_shutoff(dom, name, deadline):
            return
        raise ShutdownTimeout(
            f"VM {name!r} did not power off within {timeout:g} s (neither the ACPI power button nor the "
            "guest agent's guest-shutdown took effect); power it off by force",
            vm=name,
            timeout=timeout,
        )

    def _press_power_button(self, dom: Any, name: str) -> None:
        try:
            with _calling(name):
                dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        except VMStateConflict:
            pass  # it stopped meanwhile; the wait sees it

    def _wait_shutoff(self, dom: Any, name: str, until: float) -> bool:
        while True:
            with _calling(name):
                if not dom.isActive():
                    return True
            if time.monotonic() >= until:
                return False
            time.sleep(_POLL)

    def power_off(self, name: str) -> None:
        dom = self._domain(name)
        with _calling(name):
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if not (exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and not dom.isActive()):
                    raise

    def reset(self, name: str) -> None:
        dom = self._domain(name)
        with _calling(name):
            dom.reset(0)

    def pause(self, name: str) -> None:
        self.guests([name])[0].pause()

    def resume(self, name: str) -> None:
        _resume(name, self._domain(name))

    def guests(self, names: Sequence[str]) -> list[Guest]:
        conn = self._connection()
        found: list[Guest] = []
        for name in names:
            with _calling(name):
                found.append(_LibvirtGuest(self, name, conn.lookupByName(name)))
        return found

    # -- guest agent --------------------------------------------------------------------------------------

    def _running_domain(self, name: str) -> Any:
        """The domain, if its vCPUs run: a paused or stopped guest's agent cannot answer, so say so at once."""
        dom = self._domain(name)
        with _calling(name):
            code = dom.state()[0]
        if code not in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED):
            state = _STATES.get(code, VMState.OTHER)
            raise VMStateConflict(
                f"VM {name!r} is {state.value}: its guest agent cannot answer", vm=name, state=state.value
            )
        return dom

    def agent_command(self, name: str, command: str, timeout: float, arguments: dict[str, Any] | None = None) -> Any:
        """Run one guest-agent command (e.g. ``guest-exec``) and return its ``return`` value.

        For tests and diagnostics; the snapshot path uses the typed methods of the contract.
        """
        dom = self._running_domain(name)
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        with _calling(name):
            reply = libvirt_qemu.qemuAgentCommand(dom, json.dumps(request), _seconds(timeout), 0)
        if reply is None:
            raise AgentUnavailable(f"guest agent of {name!r} gave no reply to {command}", vm=name)
        return json.loads(reply).get("return")

    def agent_ping(self, name: str, timeout: float) -> bool:
        try:
            self.agent_command(name, "guest-ping", timeout)
        except (AgentUnavailable, VMStateConflict):
            return False
        return True

    def freeze(self, name: str, timeout: float) -> int:
        dom = self._running_domain(name)
        with _calling(name, freezing=True):
            dom.agentSetResponseTimeout(_seconds(timeout))
            return int(dom.fsFreeze())

    def thaw(self, name: str, timeout: float) -> int:
        dom = self._running_domain(name)
        with _calling(name):
            dom.agentSetResponseTimeout(_seconds(timeout))
            return int(dom.fsThaw())

    def frozen(self, name: str, timeout: float) -> bool:
        status = self.agent_command(name, "guest-fsfreeze-status", timeout)
        return bool(status == "frozen")

    def unreachable_reason(self, path: str) -> str | None:
        """See ``Hypervisor``: checked as the user qemu.conf names, for the local system instance only
        (``qemu:///session`` runs QEMU as the caller; a remote host has its own users and paths)."""
        if self.uri not in LOCAL_URIS:
            return None
        return unreachable_reason(path)

    def guest_exec(self, name: str, argv: list[str], timeout: float) -> int:
        """Start ``argv`` inside the guest through its agent without waiting for it; returns its guest pid."""
        reply = self.agent_command(name, "guest-exec", timeout, {"path": argv[0], "arg": argv[1:]})
        return int(reply["pid"])

    def read_guest_file(self, name: str, path: str, timeout: float, limit: int = 1 << 20, tail: bool = False) -> bytes:
        """Up to ``limit`` bytes of a file inside the running guest (its last ones if ``tail``), via the agent."""
        handle = self.agent_command(name, "guest-file-open", timeout, {"path": path, "mode": "r"})
        chunks: list[bytes] = []
        try:
            if tail:
                end = self.agent_command(
                    name, "guest-file-seek", timeout, {"handle": handle, "offset": 0, "whence": "end"}
                )
                start = max(0, int(end["position"]) - limit)
                self.agent_command(
                    name, "guest-file-seek", timeout, {"handle": handle, "offset": start, "whence": "set"}
                )
            size = 0
            while size < limit:
                part = self.agent_command(
                    name, "guest-file-read", timeout, {"handle": handle, "count": min(limit - size, 48 * 1024)}
                )
                data = base64.b64decode(part.get("buf-b64", ""))
                chunks.append(data)
                size += len(data)
                if part.get("eof") or not data:
                    break
        finally:
            self.agent_command(name, "guest-file-close", timeout, {"handle": handle})
        return b"".join(chunks)

    # -- networks -----------------------------------------------------------------------------------------

    def _network(self, name: str) -> Any | None:
        conn = self._connection()
        try:
            with _calling_network(name):
                return conn.networkLookupByName(name)
        except NotFound:
            return None

    def network_exists(self, name: str) -> bool:
        return self._network(name) is not None

    def ensure_network(self, spec: NetworkSpec) -> None:
        xml = network_xml(spec)  # refuses a spec snapkeep never defines before anything changes
        with self._network_lock:
            self._ensure_network(spec, xml)

    def _ensure_network(self, spec: NetworkSpec, xml: str) -> None:
        net = self._network(spec.name)
        if net is not None:
            with _calling_network(spec.name):
                persistent = net.isPersistent()
                current = spec_from_network_xml(net.XMLDesc(libvirt.VIR_NETWORK_XML_INACTIVE)) if persistent else None
            if current == spec:
                self._start_network(net, spec)
                return
            self._refuse_in_use(net, spec.name, "redefined")
            self._check_routes(spec)
            self._drop_network(net, spec.name)
        else:
            self._check_routes(spec)
        conn = self._connection()
        with _calling_network(spec.name):
            net = conn.networkDefineXML(xml)
        try:
            self._start_network(net, spec, routes_checked=True)
        except BaseException:
            with suppress(SnapkeepError):
                self._drop_network(net, spec.name)  # a definition that cannot start is not left behind
            raise

    def remove_network(self, name: str) -> None:
        with self._network_lock:
            net = self._network(name)
            if net is None:
                return
            self._refuse_in_use(net, name, "removed")
            self._drop_network(net, name)

    def _start_network(self, net: Any, spec: NetworkSpec, routes_checked: bool = False) -> None:
        """Start (after the route check) and leave autostart off: a network starts when a VM using it does."""
        with _calling_network(spec.name):
            if net.autostart():
                net.setAutostart(False)
            if net.isActive():
                return
        if not routes_checked:
            self._check_routes(spec)
        with _calling_network(spec.name):
            try:
                net.create()
            except libvirt.libvirtError as exc:  # started by someone else meanwhile: fine
                if not (exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and net.isActive()):
                    raise

    def _check_routes(self, spec: NetworkSpec) -> None:
        """Refuse a network whose range a route of this host already uses (local connections only)."""
        if self.uri not in LOCAL_URIS:
            return
        network = ipaddress.IPv4Interface(f"{spec.address}/{spec.prefix}").network
        clashes = clashing_routes(network, spec.bridge, host_routes())
        if clashes:
            raise NetworkOverlap(
                f"network {network} clashes with the host's route {clashes[0]}: its bridge would take those "
                "addresses away from the host",
                network=spec.name,
                cidr=str(network),
                routes=[str(r) for r in clashes],
            )

    def _refuse_in_use(self, net: Any, name: str, what: str) -> None:
        """``NetworkInUse`` while running domains are plugged into the network (libvirt's ports say so)."""
        with _calling_network(name):
            ports = net.listAllPorts(0) if net.isActive() else []
        if ports:
            raise NetworkInUse(
                f"network {name!r} cannot be {what}: {len(ports)} running VM interface(s) use it; stop them first",
                network=name,
                ports=len(ports),
            )

    def _drop_network(self, net: Any, name: str) -> None:
        """Destroy and undefine, tolerating a network that stopped or vanished meanwhile."""
        with _calling_network(name):
            for step, still in ((net.destroy, net.isActive), (net.undefine, net.isPersistent)):
                try:
                    if still():
                        step()
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
                        return
                    if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID or still():
                        raise
