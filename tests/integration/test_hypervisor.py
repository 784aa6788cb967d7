"""The libvirt driver against a real libvirtd, real QEMU (TCG) and the test guest's real qemu-ga.

One guest (kernel + initramfs from ``snapkeep.testguest``, an ext4 data disk its writer appends a
counter to) is booted for the whole module; the tests run in file order and the last ones shut it down.
A second, agent-less guest covers "agent not configured" and the ACPI-only shutdown. Teardown always
powers off and undefines both, and stops libvirtd/virtlogd only if this module started them.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from snapkeep.errors import (
    AgentUnavailable,
    FreezeTimeout,
    HypervisorUnavailable,
    NameClash,
    SnapkeepError,
    VMNotFound,
    VMStateConflict,
)
from snapkeep.hypervisor.libvirt_host import LibvirtHost
from snapkeep.model.vmspec import BootSpec, DiskSpec, NicSpec, VMSpec, VMState
from snapkeep.testguest import (
    DEFAULT_CACHE_DIR,
    GuestImage,
    build_test_guest,
    counter_is_intact,
    fsck,
    make_data_disk,
    parse_counter,
    read_counter,
)
from tests.conftest import make_traversable_tmp, require

BOOT_TIMEOUT = 60.0
AGENT_TIMEOUT = 1.0


@dataclass
class Guest:
    host: LibvirtHost
    spec: VMSpec
    image: GuestImage
    workdir: str
    boot_seconds: float

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def disk(self) -> str:
        return self.spec.disks[0].file


def _random_mac() -> str:
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))


def make_spec(image: GuestImage, workdir: str, label: str, agent: bool = True) -> VMSpec:
    disk = os.path.join(workdir, f"{label}-data.raw")
    make_data_disk(disk, 128 << 20)
    return VMSpec(
        name=f"snapkeep-test-{label}-{secrets.token_hex(3)}",
        uuid=str(uuid.uuid4()),
        vcpus=1,
        memory_mib=256,
        disks=(DiskSpec(disk, 128 << 20, f"sk-{label}"[:20]),),
        nics=(NicSpec(_random_mac()),),
        boot=BootSpec(image.kernel, image.initrd, image.cmdline),
        guest_agent=agent,
        serial_log=os.path.join(workdir, f"{label}-console.log"),
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what() if callable(what) else what} did not happen within {timeout:g} s")
        time.sleep(0.1)
    return time.monotonic() - start


def console(spec: VMSpec) -> str:
    assert spec.serial_log is not None
    try:
        with open(spec.serial_log, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def times_ready(spec: VMSpec) -> int:
    """How often the guest's init reached "ready" (once per boot)."""
    return console(spec).count("snapkeep-testguest: ready")


def discard(host: LibvirtHost, name: str) -> None:
    """Teardown: never leave a domain running or defined, whatever state the tests left it in."""
    for step in (host.power_off, host.undefine):
        try:
            step(name)
        except VMNotFound:
            return
        except SnapkeepError as exc:
            print(f"cleanup of {name}: {exc}")


@pytest.fixture(scope="module")
def host(libvirtd: None) -> Iterator[LibvirtHost]:
    hv = LibvirtHost()
    yield hv
    hv.close()


@pytest.fixture(scope="module")
def image() -> GuestImage:
    require(shutil.which("qemu-ga", path="/usr/sbin:/usr/bin") is not None, "qemu-ga is not installed")
    return build_test_guest(os.environ.get("SNAPKEEP_TESTGUEST_CACHE", DEFAULT_CACHE_DIR))


@pytest.fixture(scope="module")
def workdir() -> Iterator[str]:
    path = make_traversable_tmp("snapkeep-vm-")  # 0755: QEMU runs as libvirt-qemu
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def guest(host: LibvirtHost, image: GuestImage, workdir: str) -> Iterator[Guest]:
    spec = make_spec(image, workdir, "main")
    host.define(spec)
    try:
        started = time.monotonic()
        host.start(spec.name)
        wait_until(lambda: host.agent_ping(spec.name, AGENT_TIMEOUT), BOOT_TIMEOUT, "guest agent answering")
        boot = time.monotonic() - started
        print(f"\nboot to guest agent: {boot:.1f} s")
        yield Guest(host, spec, image, workdir, boot)
    finally:
        discard(host, spec.name)


def guest_counter(g: Guest) -> list[int]:
    return parse_counter(g.host.read_guest_file(g.name, "/data/counter", 5))


def last_counter(g: Guest) -> int:
    """The writer's latest value, from the file's last bytes (the first line read may be cut: skip it)."""
    return parse_counter(g.host.read_guest_file(g.name, "/data/counter", 5, limit=64, tail=True))[-1]


# -- the running guest --------------------------------------------------------------------------------------


def test_booted_guest_is_running_and_its_agent_answers(guest: Guest) -> None:
    assert guest.host.state(guest.name) == VMState.RUNNING
    assert guest.host.agent_ping(guest.name, AGENT_TIMEOUT)
    assert guest.name in guest.host.list_domains()
    assert guest.host.exists(guest.name)


def test_spec_read_back_from_libvirt_names_the_disks(guest: Guest) -> None:
    back = guest.host.spec(guest.name)
    assert back.disks == guest.spec.disks  # files, sizes, serials and targets
    assert (back.uuid, back.nics, back.boot, back.guest_agent) == (
        guest.spec.uuid,
        guest.spec.nics,
        guest.spec.boot,
        True,
    )


def test_redefining_the_same_spec_is_idempotent(guest: Guest) -> None:
    guest.host.define(guest.spec)
    assert guest.host.state(guest.name) == VMState.RUNNING


def test_same_name_with_another_uuid_is_a_clash(guest: Guest) -> None:
    with pytest.raises(NameClash):
        guest.host.define(dataclasses.replace(guest.spec, uuid=str(uuid.uuid4())))
    assert guest.host.spec(guest.name).uuid == guest.spec.uuid


def test_counter_keeps_increasing_while_running(guest: Guest) -> None:
    first = guest_counter(guest)
    time.sleep(0.5)
    second = guest_counter(guest)
    assert first and second[-1] > first[-1]
    assert counter_is_intact(second) and second[: len(first)] == first


def test_freeze_then_thaw(guest: Guest) -> None:
    h, name = guest.host, guest.name
    freezes, thaws = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        assert h.freeze(name, 10) == 1  # /data
        t1 = time.perf_counter()
        try:
            assert h.frozen(name, 10)
        finally:
            t2 = time.perf_counter()
            assert h.thaw(name, 10) == 1
            t3 = time.perf_counter()
        assert not h.frozen(name, 10)
        freezes.append(t1 - t0)
        thaws.append(t3 - t2)
    print(
        f"\nfreeze median {statistics.median(freezes) * 1000:.1f} ms (max {max(freezes) * 1000:.1f}), "
        f"thaw median {statistics.median(thaws) * 1000:.1f} ms (max {max(thaws) * 1000:.1f})"
    )
    assert h.thaw(name, 10) == 0  # thawing a thawed guest is harmless, so cleanup may always do it


def test_pause_and_resume(guest: Guest) -> None:
    h, name = guest.host, guest.name
    pauses, resumes = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        h.pause(name)
        t1 = time.perf_counter()
        assert h.state(name) == VMState.PAUSED
        h.pause(name)  # idempotent
        with pytest.raises(VMStateConflict):
            h.freeze(name, AGENT_TIMEOUT)  # a paused guest's agent cannot answer: say so at once
        assert not h.agent_ping(name, AGENT_TIMEOUT)
        t2 = time.perf_counter()
        h.resume(name)
        t3 = time.perf_counter()
        assert h.state(name) == VMState.RUNNING
        h.resume(name)  # idempotent
        pauses.append(t1 - t0)
        resumes.append(t3 - t2)
    print(
        f"\npause median {statistics.median(pauses) * 1000:.1f} ms, "
        f"resume median {statistics.median(resumes) * 1000:.1f} ms"
    )
    (looked_up,) = h.guests([name])  # what a paused window uses: one libvirt call per pause or resume
    looked_up.pause()
    assert h.state(name) == VMState.PAUSED
    looked_up.resume()
    looked_up.resume()  # idempotent too
    assert h.state(name) == VMState.RUNNING
    with pytest.raises(VMNotFound):
        h.guests([name, "snapkeep-test-no-such-domain"])
    assert h.agent_ping(name, 5)


def test_states_of_several_domains_read_at_once(guest: Guest, image: GuestImage, workdir: str) -> None:
    h = guest.host
    off = make_spec(image, workdir, "states-off")
    h.define(off)
    try:
        missing = "snapkeep-test-no-such-domain"
        assert h.states([guest.name, off.name, missing]) == {guest.name: VMState.RUNNING, off.name: VMState.SHUTOFF}
        h.pause(guest.name)
        try:
            assert h.states([guest.name]) == {guest.name: VMState.PAUSED}
        finally:
            h.resume(guest.name)
    finally:
        discard(h, off.name)


def test_agent_not_answering_is_reported_within_the_timeout(guest: Guest) -> None:
    h, name = guest.host, guest.name
    # Stop qemu-ga inside the guest for a few seconds (it continues by itself): an agent slower than us.
    h.guest_exec(name, ["/bin/sh", "-c", "killall -STOP qemu-ga; sleep 4; killall -CONT qemu-ga"], 5)
    time.sleep(0.3)
    bound = 2 * AGENT_TIMEOUT + 0.5  # libvirt's resync and the command each get the timeout

    t0 = time.monotonic()
    assert not h.agent_ping(name, AGENT_TIMEOUT)
    assert time.monotonic() - t0 < bound
    t0 = time.monotonic()
    with pytest.raises(FreezeTimeout) as caught:
        h.freeze(name, AGENT_TIMEOUT)
    assert isinstance(caught.value, AgentUnavailable)
    assert time.monotonic() - t0 < bound
    t0 = time.monotonic()
    with pytest.raises(AgentUnavailable):
        h.thaw(name, AGENT_TIMEOUT)
    assert time.monotonic() - t0 < bound

    wait_until(lambda: h.agent_ping(name, AGENT_TIMEOUT), 15, "agent answering again")
    h.thaw(name, 10)  # what the caller's finally does after a FreezeTimeout
    assert not h.frozen(name, 10)
    assert h.state(name) == VMState.RUNNING


def test_second_freeze_is_refused_until_thawed(guest: Guest) -> None:
    h, name = guest.host, guest.name
    h.freeze(name, 10)
    try:
        with pytest.raises(VMStateConflict, match="frozen"):
            h.freeze(name, 10)
    finally:
        h.thaw(name, 10)
    assert not h.frozen(name, 10)


def test_agent_killed_while_frozen_comes_back_and_can_thaw(guest: Guest) -> None:
    """The guest restarts a dead qemu-ga; the new one knows the filesystems are frozen and thaws them."""
    h, name = guest.host, guest.name
    h.guest_exec(name, ["/bin/sh", "-c", "sleep 0.5; killall -9 qemu-ga"], 5)
    try:
        assert h.freeze(name, 10) == 1
        wait_until(lambda: not h.agent_ping(name, AGENT_TIMEOUT), 10, "agent going away")
        wait_until(lambda: h.agent_ping(name, AGENT_TIMEOUT), 15, "agent coming back")
        assert h.frozen(name, 10)
    finally:
        h.thaw(name, 10)
    assert not h.frozen(name, 10)
    before = last_counter(guest)
    wait_until(lambda: last_counter(guest) > before, 10, "writer moving again after the thaw")


def test_running_domain_cannot_be_undefined(guest: Guest) -> None:
    with pytest.raises(VMStateConflict):
        guest.host.undefine(guest.name)
    assert guest.host.exists(guest.name)


# -- a second guest without an agent ------------------------------------------------------------------------


def test_guest_without_agent(host: LibvirtHost, image: GuestImage, workdir: str) -> None:
    """No agent channel: agent calls fail at once; reset and the ACPI-only shutdown still work."""
    spec = make_spec(image, workdir, "noagent", agent=False)
    host.define(spec)
    try:
        host.start(spec.name)
        host.start(spec.name)  # idempotent
        t0 = time.monotonic()
        assert not host.agent_ping(spec.name, 5)
        with pytest.raises(AgentUnavailable) as caught:
            host.freeze(spec.name, 5)
        assert not isinstance(caught.value, FreezeTimeout)  # nothing can be frozen: no thaw owed
        assert time.monotonic() - t0 < 1.0
        wait_until(
            lambda: times_ready(spec) == 1, BOOT_TIMEOUT, lambda: f"agent-less guest ready; console: {console(spec)!r}"
        )
        host.reset(spec.name)
        assert host.state(spec.name) == VMState.RUNNING
        wait_until(
            lambda: times_ready(spec) == 2, BOOT_TIMEOUT, lambda: f"guest ready after reset; console: {console(spec)!r}"
        )
        t0 = time.monotonic()
        host.shutdown(spec.name, 30)  # only the ACPI power button can do it here
        print(f"\nACPI shutdown: {time.monotonic() - t0:.2f} s")
        assert host.state(spec.name) == VMState.SHUTOFF
        assert fsck(spec.disks[0].file).clean
        host.power_off(spec.name)  # idempotent
        with pytest.raises(VMStateConflict):
            host.reset(spec.name)
    finally:
        discard(host, spec.name)
    host.undefine(spec.name)  # idempotent
    assert not host.exists(spec.name)


def test_unreachable_libvirtd_is_hypervisor_unavailable() -> None:
    with (
        LibvirtHost("qemu+unix:///system?socket=/nonexistent/libvirt-sock") as nowhere,
        pytest.raises(HypervisorUnavailable),
    ):
        nowhere.state("anything")


def test_unknown_domain_is_vm_not_found(host: LibvirtHost) -> None:
    name = f"snapkeep-test-missing-{secrets.token_hex(3)}"
    assert not host.exists(name)
    host.undefine(name)  # idempotent: nothing to do
    for call in (host.state, host.start, host.power_off, host.pause, host.resume, host.spec):
        with pytest.raises(VMNotFound):
            call(name)
    with pytest.raises(VMNotFound):
        host.freeze(name, 1)
    with pytest.raises(VMNotFound):
        host.agent_ping(name, 1)
    with pytest.raises(VMNotFound):
        host.shutdown(name, 1)


# -- shutting the shared guest down (keep these last) -------------------------------------------------------


def test_graceful_shutdown_falls_back_to_the_agent_and_leaves_a_clean_disk(guest: Guest) -> None:
    h, name = guest.host, guest.name
    seen = last_counter(guest)
    # Without acpid the guest ignores the power button: shutdown must get there through guest-shutdown.
    h.guest_exec(name, ["/bin/sh", "-c", "killall acpid"], 5)
    time.sleep(0.3)
    timeout = 6.0
    t0 = time.monotonic()
    h.shutdown(name, timeout)
    took = time.monotonic() - t0
    print(f"\nshutdown through the agent fallback: {took:.2f} s")
    assert h.state(name) == VMState.SHUTOFF
    assert took >= timeout / 2  # the button was pressed first, and ignored
    h.shutdown(name, timeout)  # idempotent

    result = fsck(guest.disk)
    assert result.clean, result.report
    values = read_counter(guest.disk)
    assert counter_is_intact(values) and values[0] == 1 and values[-1] >= seen


def test_stopped_guest_agent_calls(guest: Guest) -> None:
    h, name = guest.host, guest.name
    assert h.state(name) == VMState.SHUTOFF
    assert not h.agent_ping(name, AGENT_TIMEOUT)
    with pytest.raises(VMStateConflict):
        h.freeze(name, AGENT_TIMEOUT)
    with pytest.raises(VMStateConflict):
        h.pause(name)
    h.undefine(name)
    h.undefine(name)  # idempotent
    assert not h.exists(name)
