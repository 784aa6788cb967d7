"""The VM the VM benchmark measures: a running test guest with one big data disk, 10% of it allocated.

Why the disk is made this way: what a snapshot of a raw disk file costs on a copy-on-write filesystem
depends on the file's extents (metadata), not on the bytes in them, so writing 6.4 GiB for the 64 GiB disk
would measure nothing more than writing 32 MiB does. The disk is therefore:

1. a sparse raw file with an empty ext4 (:func:`snapkeep.testguest.make_data_disk`, as the tests make it;
   ``mke2fs`` writes its journal and metadata, a few per cent of the disk);
2. a file ``/bench.bin`` of seeded random bytes written *through* ext4 (``debugfs -w``), so the guest sees a
   consistent filesystem with real data in it;
3. ``posix_fallocate`` of the disk file's tail on the host until 10% of the disk is allocated: real,
   preallocated extents that every snapshot and reflink must reference like written ones. Allocating a hole
   does not change what it reads (zeros), so ext4 inside is untouched: to the guest it is free space.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass

from bench.datagen import MiB, human_size
from snapkeep.errors import SnapkeepError
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import VM
from snapkeep.model.vmspec import VMState
from snapkeep.services.container import Services
from snapkeep.testguest import GuestImage, make_data_disk

ALLOCATED_FRACTION = 0.10
RANDOM_BYTES = 32 * MiB
GUEST_FILE = "/bench.bin"
BOOT_TIMEOUT_S = 120.0
READY_LINE = "snapkeep-testguest: ready"
VCPUS = 1
MEMORY_MIB = 256
QEMU_PID_DIR = "/run/libvirt/qemu"


@dataclass(frozen=True)
class DiskReport:
    """How the data disk was made, written into the results so readers know what was measured."""

    apparent_bytes: int
    allocated_bytes: int
    mkfs_allocated_bytes: int
    random_bytes_written: int
    fallocated_bytes: int
    seconds: float
    method: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def describe_disk_method(size: int) -> str:
    """One line for the printed output saying how a disk of ``size`` bytes is filled."""
    return (
        f"{human_size(size)} raw sparse file, ext4 (mkfs.ext4 -F), {human_size(RANDOM_BYTES)} seeded random bytes "
        f"written into ext4 as {GUEST_FILE} (debugfs -w), the rest up to {ALLOCATED_FRACTION:.0%} of the disk "
        "allocated by posix_fallocate of the file's tail (preallocated extents, still zeros)"
    )


def allocated_bytes(path: str) -> int:
    return os.stat(path).st_blocks * 512


def make_bench_disk(path: str, size: int, seed: int, scratch: str) -> DiskReport:
    """Replace ``path`` by an ext4 disk of ``size`` bytes with ``ALLOCATED_FRACTION`` of it allocated."""
    started = time.monotonic()
    if os.path.exists(path):
        os.unlink(path)
    make_data_disk(path, size)
    after_mkfs = allocated_bytes(path)
    write_guest_file(path, seed, scratch)
    before_fallocate = allocated_bytes(path)
    target = int(size * ALLOCATED_FRACTION)
    missing = max(0, target - before_fallocate)
    if missing:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.posix_fallocate(fd, size - missing, missing)
        finally:
            os.close(fd)
    return DiskReport(
        apparent_bytes=size,
        allocated_bytes=allocated_bytes(path),
        mkfs_allocated_bytes=after_mkfs,
        random_bytes_written=RANDOM_BYTES,
        fallocated_bytes=allocated_bytes(path) - before_fallocate,
        seconds=round(time.monotonic() - started, 3),
        method=describe_disk_method(size),
    )


def write_guest_file(image: str, seed: int, scratch: str) -> None:
    """Put ``RANDOM_BYTES`` of seeded random data into the ext4 ``image`` as ``GUEST_FILE``.

    ``debugfs -w`` writes through the filesystem without mounting it (no loop device to leak).
    """
    rng = random.Random(seed)
    fd, source = tempfile.mkstemp(prefix="bench-random-", dir=scratch)
    try:
        with os.fdopen(fd, "wb") as f:
            left = RANDOM_BYTES
            while left:
                chunk = min(left, 4 * MiB)
                f.write(rng.randbytes(chunk))
                left -= chunk
        done = subprocess.run(
            ["debugfs", "-w", "-R", f"write {source} {GUEST_FILE.lstrip('/')}", "--", image],
            capture_output=True,
            text=True,
            check=False,
        )
        problems = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
        if done.returncode != 0 or problems:
            raise RuntimeError(f"debugfs write into {image} failed: {'; '.join(problems) or done.returncode}")
    finally:
        os.unlink(source)


def create_vm(svc: Services, image: GuestImage, name: str, size: int) -> VM:
    """A stopped test-guest VM through the service, its one data disk ``size`` bytes (empty for now)."""
    return svc.vms.create(
        name,
        vcpus=VCPUS,
        memory_mib=MEMORY_MIB,
        disk_sizes=[size],
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.cmdline,
        description="snapkeep VM benchmark guest",
        who=SYSTEM,
    )


def disk_path(vm: VM) -> str:
    return os.path.join(vm.path, vm.config["disks"][0]["file"])


def console_ready(svc: Services, vm: VM) -> bool:
    """The guest's init prints ``READY_LINE`` on its serial console once its writer and agent run."""
    try:
        with open(os.path.join(svc.settings.log_dir, f"{vm.domain}.log"), errors="replace") as f:
            return READY_LINE in f.read()
    except OSError:
        return False


def boot(svc: Services, vm: VM, settle_s: float = 1.0) -> float:
    """Start the VM and wait until its writer runs and its agent answers; returns the boot time in s."""
    started = time.monotonic()
    svc.vms.start(vm.id, who=SYSTEM)
    deadline = started + BOOT_TIMEOUT_S
    while not (console_ready(svc, vm) and svc.host.agent_ping(vm.domain, 1.0)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{vm.name} did not boot with its guest agent within {BOOT_TIMEOUT_S:.0f} s")
        time.sleep(0.2)
    booted = time.monotonic() - started
    time.sleep(settle_s)  # the writer appends a few values; the boot's own I/O has settled
    return booted


def stop(svc: Services, vm: VM) -> None:
    """Graceful shutdown (the guest unmounts its disk cleanly); power off if that does not work."""
    try:
        svc.vms.stop(vm.id, timeout=60, who=SYSTEM)
    except SnapkeepError:
        svc.vms.stop(vm.id, force=True, who=SYSTEM)
    if svc.vms.get(vm.id, who=SYSTEM).state != VMState.SHUTOFF:
        raise RuntimeError(f"{vm.name} did not stop")


def remove_vm(svc: Services, name: str) -> str | None:
    """Delete a VM this run made: through the service if it knows it, else only its libvirt domain.

    Returns what went wrong, or None. Never raises: it runs during clean-up, where one failure must not
    keep the others from running.
    """
    try:
        known = {vm.name: vm.id for vm in svc.vms.listing(who=SYSTEM)}
        if name in known:
            svc.vms.delete(known[name], svc.snapshots, force=True, who=SYSTEM)
            return None
        if svc.host.exists(name):  # defined by libvirt but not in the catalog: a failed create
            svc.host.power_off(name)
            svc.host.undefine(name)
        return None
    except Exception as exc:  # clean-up goes on whatever happened
        return f"removing VM {name!r}: {exc!r}"


def kill_guest_process(name: str, timeout_s: float = 10.0) -> str | None:
    """End the QEMU process of domain ``name`` by the pid libvirt recorded, after checking that the pid
    still is that guest's QEMU; for clean-up when libvirt cannot be reached. Returns what went wrong."""
    try:
        with open(os.path.join(QEMU_PID_DIR, f"{name}.pid")) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return f"no QEMU pid recorded for {name} (not running, or libvirt's state is gone)"
    signal_number = signal.SIGTERM
    deadline = time.monotonic() + timeout_s
    while is_guest_process(pid, name):
        if time.monotonic() > deadline:
            if signal_number == signal.SIGKILL:
                return f"QEMU of {name} (pid {pid}) survived SIGKILL"
            signal_number, deadline = signal.SIGKILL, time.monotonic() + timeout_s
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal_number)
        time.sleep(0.2)
    return None


def is_guest_process(pid: int, name: str) -> bool:
    """Whether ``pid`` is (still) the QEMU process running domain ``name``."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return any(arg.startswith(f"guest={name},".encode()) for arg in argv)
