"""Benchmark: snapshots of a running VM with snapkeep against libvirt's own snapshots and the bare floors.

Run from the project root, as root::

    .venv/bin/python -m bench.vm_snapshots --smoke    # CI: one guest, 256 MiB disk, btrfs, one round; exit 1 on failure
    .venv/bin/python -m bench.vm_snapshots --quick    # 1 GiB disk only, 3 repeats: well under a minute
    .venv/bin/python -m bench.vm_snapshots --full     # 1, 8 and 64 GiB disks, 5 repeats (the default)

For each filesystem (a sparse image, loop-mounted, made here and always unmounted) it builds the services on
a pool there and, for each disk size, creates a test-guest VM through the service whose one data disk has
that size, 10% of it allocated (see :mod:`bench.vm_guest`), boots it under TCG and waits for its writer and
guest agent. All sizes' VMs run at once, and each round (``--warmup`` discarded, then ``--repeat`` recorded)
runs every operation on every VM, one after the other, sizes interleaved: slow drift and load from other
processes then hit every operation and every size alike, instead of passing for a cost of disk size. On
each running VM it measures:

- snapkeep takes, quiesced (agent freeze, pause, capture, resume, thaw) and not (pause, capture, resume):
  wall time, and the frozen and paused windows the snapshot records, split into their parts;
- restore as new (while the source runs), and restore over the source (after a graceful shutdown,
  ``pre_restore=False``), both from a reference snapshot taken after boot;
- ``virsh snapshot-create-as --disk-only --quiesce --atomic --no-metadata``: libvirt's external snapshot,
  which puts a qcow2 overlay on top of the raw disk. Reverted after each sample, untimed, so the next one
  starts from the same raw disk: ``virsh blockcommit --active --pivot`` merges the overlay back and switches
  the guest to the raw file again, the overlay file is deleted, and the domain's persistent XML is put back
  if libvirt changed it. The commit's time is recorded beside the sample: it is what the overlay costs later;
- ``virsh snapshot-create-as`` internal: tried once per size; libvirt refuses it on raw disks (internal
  snapshots live inside qcow2 images), which is reported as not applicable rather than measured;
- the floors: the guest agent's own freeze + thaw and the hypervisor's pause + resume (the same calls
  snapkeep makes), the bare filesystem snapshot of the VM's dataset (``btrfs subvolume snapshot -r``, or
  ``cp -a --reflink=always`` on XFS) and the cost of running ``virsh`` at all (``virsh domstate``).

Before every timed call (untimed) the pool's filesystem is flushed and, on btrfs, the cleaner is waited for
until every deleted subvolume is gone (see :mod:`bench.volume_snapshots`); after each sample the guest is
checked to be running and thawed, so no sample starts from a guest a previous one left frozen or paused.

Everything made is removed even on error or Ctrl-C (SIGTERM and SIGHUP too): the domains this run defined
(only those) are powered off and undefined, its VMs deleted through the service, the pool unmounted, and
libvirtd/virtlogd stopped only if this run started them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import btrfsutil
from rich.console import Console

from bench.datagen import GiB, MiB
from bench.guest_runs import PROJECT_ROOT, guest_image, host_info, run
from bench.model import BTRFS_SNAPSHOT_CLI, BTRFSUTIL_SNAPSHOT, CP_REFLINK, RESTORE_NEW, RESTORE_OVER, failures
from bench.report import make_console
from bench.vm_guest import (
    MEMORY_MIB,
    VCPUS,
    boot,
    create_vm,
    describe_disk_method,
    disk_path,
    kill_guest_process,
    make_bench_disk,
    remove_vm,
    stop,
)
from bench.vm_model import (
    AGENT_FREEZE_THAW,
    FREEZE,
    PAUSE,
    PAUSE_RESUME,
    PAUSED_REST,
    PAUSED_WINDOW,
    QUIESCE_WINDOW,
    RESUME,
    REVERT,
    TAKE_PARTS,
    TAKE_PLAIN,
    TAKE_QUIESCED,
    THAW,
    VIRSH_EXTERNAL,
    VIRSH_INTERNAL,
    VIRSH_NOOP,
    WINDOW_REST,
    FsRun,
    SizeResult,
    size_label,
)
from bench.vm_report import print_results, write_json
from bench.volume_snapshots import (
    BenchError,
    Op,
    SideMetrics,
    install_signal_handlers,
    run_quiet,
    signals_deferred,
    unique,
    wait_btrfs_cleaner,
)
from snapkeep.errors import SnapkeepError
from snapkeep.hypervisor.daemons import ensure_libvirtd, libvirtd_answers, stop_daemons
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import VM
from snapkeep.model.vmspec import VMState
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage.linux import syncfs
from snapkeep.storage.pool import Pool
from snapkeep.testguest import GuestImage
from snapkeep.timing import recording
from tests.conftest import Mounted, build_services, make_traversable_tmp, mount_fs, unmount_fs

DEFAULT_OUT = os.path.join(PROJECT_ROOT, "bench", "results", "vm_snapshots.json")
FILESYSTEMS = ("btrfs", "xfs")
SMOKE_SIZES = (256 * MiB,)
QUICK_SIZES = (1 * GiB,)
FULL_SIZES = (1 * GiB, 8 * GiB, 64 * GiB)
RUN_PREFIX = "skbench"


def short_id() -> str:
    return uuid.uuid4().hex[:6]


class CleanupFailed(BenchError):
    """Undoing a sample failed: the VM may not be as the next sample expects, so the run stops."""


# --- the rig: one filesystem, the services on it, the VMs made ----------------------------------------


@dataclass
class Rig:
    """One loop-mounted filesystem with snapkeep's services on a pool there, and what this run created."""

    fs: Mounted
    svc: Services
    image: GuestImage
    scratch: str  # on the pool's filesystem: destinations of the bare snapshots
    tmp: str  # off the pool: random data staged for the guest's disk
    run_id: str
    created: list[str] = field(default_factory=list)  # names of every domain this run defined

    @property
    def uri(self) -> str:
        return self.svc.settings.libvirt_uri

    def new_vm_name(self, what: str) -> str:
        """A domain name no one else uses, recorded first so that clean-up finds it whatever happens."""
        name = f"{RUN_PREFIX}-{self.run_id}-{what}-{short_id()}"
        self.created.append(name)
        return name


@dataclass(frozen=True)
class Guest:
    """The running VM measured for one disk size, and the snapshot restores start from."""

    vm: VM
    reference_id: str

    @property
    def name(self) -> str:
        """The libvirt domain (what virsh and the hypervisor calls name)."""
        return self.vm.domain


def settle(rig: Rig) -> None:
    """Flush the pool's filesystem and let btrfs drop deleted subvolumes, so that a sample does not pay for
    what the previous one left behind."""
    syncfs(rig.fs.mountpoint)
    if rig.fs.fstype == "btrfs":
        wait_btrfs_cleaner(rig.fs.mountpoint)


def virsh(rig: Rig, *args: str) -> str:
    """Run one ``virsh`` command against the services' libvirt URI; its stderr becomes the error."""
    done = subprocess.run(["virsh", "-c", rig.uri, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"virsh {' '.join(args)} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def check_guest(rig: Rig, guest: Guest) -> None:
    """Between samples: the guest runs and is thawed, or the run stops (the next sample would be wrong)."""
    state = rig.svc.host.state(guest.name)
    if state != VMState.RUNNING:
        raise CleanupFailed(f"{guest.name} is {state} after a sample, not running")
    if rig.svc.host.frozen(guest.name, guest.vm.agent_timeout):
        raise CleanupFailed(f"{guest.name} was left frozen after a sample")


# --- snapkeep operations -------------------------------------------------------------------------------


def take_metrics(parts: dict[str, float], total_ms: float, quiesce_ms: float | None, paused_ms: float) -> SideMetrics:
    """The windows the snapshot recorded, the parts of the take, and what each window holds beyond them."""
    metrics = dict(parts)
    named = sum(v for k, v in parts.items() if k in TAKE_PARTS)
    metrics["catalog and rest"] = total_ms - named
    metrics[PAUSED_WINDOW] = paused_ms
    metrics[PAUSED_REST] = paused_ms - sum(parts.get(k, 0.0) for k in ("intent: pause", PAUSE, "pool.capture", RESUME))
    if quiesce_ms is not None:
        metrics[QUIESCE_WINDOW] = quiesce_ms
        inside = ("intent: freeze", FREEZE, "syncfs after quiesce", THAW)
        metrics[WINDOW_REST] = quiesce_ms - paused_ms - sum(parts.get(k, 0.0) for k in inside)
    return metrics


def take_op(rig: Rig, guest: Guest, quiesce: bool) -> Op:
    """A whole take through the service, as the API's job runs it; the snapshot is deleted after."""
    svc = rig.svc

    def action(name: str) -> tuple[dict[str, float], Any]:
        request = TakeRequest(ref=guest.vm.id, subject_type="vm", name=name, quiesce=quiesce)
        with recording() as steps:  # the parts of the take, as the code's step timings report them
            snap = svc.snapshots.take(request, who=SYSTEM)
        return steps, snap

    def cleanup(result: tuple[dict[str, float], Any], ms: float) -> SideMetrics:
        steps, snap = result
        svc.snapshots.delete(snap.id, who=SYSTEM)
        if snap.quiesced != quiesce or snap.paused_window_ms is None:
            raise BenchError(f"take recorded quiesced={snap.quiesced} ({snap.quiesce_note}), asked {quiesce}")
        return take_metrics(steps, ms, snap.quiesce_window_ms, snap.paused_window_ms)

    return Op(TAKE_QUIESCED if quiesce else TAKE_PLAIN, "snapkeep", action, lambda: unique("take"), cleanup)


def restore_new_op(rig: Rig, guest: Guest) -> Op:
    """Restore the reference snapshot as a new (stopped) VM; the new VM is deleted after."""
    svc = rig.svc

    def drop(made: dict[str, object], _ms: float) -> SideMetrics:
        svc.vms.delete(str(made["vm_id"]), svc.snapshots, who=SYSTEM)
        return None

    def abandon(name: str) -> None:
        problem = remove_vm(svc, name)
        if problem:
            raise BenchError(problem)

    return Op(
        RESTORE_NEW,
        "snapkeep",
        lambda name: svc.restores.as_new(guest.reference_id, RestoreOptions(as_new=True, name=name), SYSTEM),
        lambda: rig.new_vm_name("new"),
        drop,
        abandon,
    )


def restore_over_op(rig: Rig, guest: Guest) -> Op:
    """Restore the reference snapshot over the (stopped) VM, without a safety snapshot."""
    return Op(
        RESTORE_OVER,
        "snapkeep",
        lambda _: rig.svc.restores.over_source(guest.reference_id, RestoreOptions(pre_restore=False), SYSTEM),
    )


# --- libvirt's own snapshots -----------------------------------------------------------------------------


def disk_source(rig: Rig, guest: Guest) -> str:
    """The file the running guest's vda reads right now (the overlay while an external snapshot is on)."""
    for line in virsh(rig, "domblklist", guest.name, "--details").splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4 and fields[2] == "vda":
            return fields[3].strip()
    raise BenchError(f"{guest.name} has no vda in domblklist")


def revert_overlay(rig: Rig, guest: Guest, saved_xml: str) -> float:
    """Undo an external snapshot: merge the overlay into the raw disk and pivot back, delete the overlay,
    put back the persistent definition. Returns the blockcommit's time in ms (0 if there was no overlay)."""
    base = disk_path(guest.vm)
    source = disk_source(rig, guest)
    commit_ms = 0.0
    if source != base:
        started = time.perf_counter_ns()
        virsh(rig, "blockcommit", guest.name, "vda", "--active", "--pivot", "--wait")
        commit_ms = (time.perf_counter_ns() - started) / 1e6
        if disk_source(rig, guest) != base:
            raise CleanupFailed(f"{guest.name} still reads {disk_source(rig, guest)} after blockcommit")
        os.unlink(source)
    if virsh(rig, "dumpxml", "--inactive", guest.name) != saved_xml:
        with tempfile.NamedTemporaryFile("w", dir=rig.tmp, suffix=".xml") as f:
            f.write(saved_xml)
            f.flush()
            virsh(rig, "define", f.name)
    return commit_ms


def virsh_external_op(rig: Rig, guest: Guest) -> Op:
    """``virsh snapshot-create-as --disk-only --quiesce --atomic --no-metadata``, as an operator runs it."""
    argv = ["virsh", "-c", rig.uri, "snapshot-create-as", guest.name]
    argv += ["--disk-only", "--quiesce", "--atomic", "--no-metadata"]

    def create(saved_xml: str) -> str:
        run_quiet(argv)
        return saved_xml

    def cleanup(saved_xml: str, _ms: float) -> SideMetrics:
        try:
            return {REVERT: revert_overlay(rig, guest, saved_xml)}
        except Exception as exc:  # the guest may still run on the overlay: no later sample can be trusted
            raise CleanupFailed(f"reverting the external snapshot of {guest.name}: {exc}") from exc

    def abandon(saved_xml: str) -> None:
        revert_overlay(rig, guest, saved_xml)  # an --atomic failure leaves nothing; this checks that

    def saved_xml() -> str:
        return virsh(rig, "dumpxml", "--inactive", guest.name)

    return Op(VIRSH_EXTERNAL, "libvirt", create, saved_xml, cleanup, abandon)


def probe_internal(rig: Rig, guest: Guest) -> str | None:
    """Try libvirt's internal snapshot once: None if it works, else why not (libvirt's own words).

    Internal snapshots are stored inside qcow2 images; snapkeep's disks are raw files, so libvirt refuses.
    """
    name = unique("internal")
    done = subprocess.run(
        ["virsh", "-c", rig.uri, "snapshot-create-as", guest.name, name, "--atomic"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        virsh(rig, "snapshot-delete", guest.name, name)
        return None
    why = done.stderr.strip().removeprefix("error: ")
    return f"not applicable: raw disks ({why})" if "raw" in why else f"failed: {why}"


def virsh_internal_op(rig: Rig, guest: Guest) -> Op:
    """Only used if ``probe_internal`` found that libvirt accepts it (it does not on raw disks)."""

    def create(name: str) -> str:
        virsh(rig, "snapshot-create-as", guest.name, name, "--atomic")
        return name

    def delete(name: str, _ms: float) -> SideMetrics:
        virsh(rig, "snapshot-delete", guest.name, name)
        return None

    return Op(VIRSH_INTERNAL, "libvirt", create, lambda: unique("internal"), delete)


# --- the floors ------------------------------------------------------------------------------------------


def timed_pair(first: Callable[[], object], second: Callable[[], object], names: tuple[str, str]) -> SideMetrics:
    """Call ``first`` then ``second`` (always, like snapkeep's ``finally``); the time of each, in ms."""
    t0 = time.perf_counter_ns()
    try:
        first()
        t1 = time.perf_counter_ns()
    finally:
        t_second = time.perf_counter_ns()
        second()
        t2 = time.perf_counter_ns()
    return {names[0]: (t1 - t0) / 1e6, names[1]: (t2 - t_second) / 1e6}


def floor_ops(rig: Rig, guest: Guest) -> list[Op]:
    """The agent's freeze + thaw and the hypervisor's pause + resume: the same calls snapkeep's holds make."""
    host, name, timeout = rig.svc.host, guest.name, guest.vm.agent_timeout

    def freeze_thaw(_: object) -> SideMetrics:
        return timed_pair(lambda: host.freeze(name, timeout), lambda: host.thaw(name, timeout), (FREEZE, THAW))

    def pause_resume(_: object) -> SideMetrics:
        return timed_pair(lambda: host.pause(name), lambda: host.resume(name), (PAUSE, RESUME))

    def side(metrics: SideMetrics, _ms: float) -> SideMetrics:
        return metrics

    return [
        Op(AGENT_FREEZE_THAW, "floor", freeze_thaw, cleanup=side),
        Op(PAUSE_RESUME, "floor", pause_resume, cleanup=side),
    ]


def bare_ops(rig: Rig, guest: Guest) -> list[Op]:
    """The filesystem operation under snapkeep's capture, on the live VM's dataset, as an operator runs it."""
    src = guest.vm.path
    driver = rig.svc.pool.driver

    def target() -> str:
        return os.path.join(rig.scratch, unique("bare"))

    def drop(dst: str, _ms: float) -> SideMetrics:
        driver.remove_dataset(dst)
        return None

    def make(name: str, snapshot: Callable[[str], object]) -> Op:
        def action(dst: str) -> str:
            snapshot(dst)
            return dst

        return Op(name, "bare", action, target, drop, driver.remove_dataset)

    if rig.fs.fstype == "btrfs":
        return [
            make(BTRFS_SNAPSHOT_CLI, lambda dst: run_quiet(["btrfs", "subvolume", "snapshot", "-r", src, dst])),
            make(BTRFSUTIL_SNAPSHOT, lambda dst: btrfsutil.create_snapshot(src, dst, read_only=True)),
        ]
    return [make(CP_REFLINK, lambda dst: run_quiet(["cp", "-a", "--reflink=always", src, dst]))]


def virsh_noop_op(rig: Rig, guest: Guest) -> Op:
    """What any ``virsh`` call costs before it does anything: process start-up and connecting."""
    return Op(VIRSH_NOOP, "floor", lambda _: run_quiet(["virsh", "-c", rig.uri, "domstate", guest.name]))


def running_ops(rig: Rig, guest: Guest, internal_works: bool) -> list[Op]:
    return [
        take_op(rig, guest, quiesce=True),
        take_op(rig, guest, quiesce=False),
        restore_new_op(rig, guest),
        virsh_external_op(rig, guest),
        *([virsh_internal_op(rig, guest)] if internal_works else []),
        *floor_ops(rig, guest),
        *bare_ops(rig, guest),
        virsh_noop_op(rig, guest),
    ]


# --- running samples ---------------------------------------------------------------------------------------


def run_sample(rig: Rig, op: Op) -> tuple[float, SideMetrics]:
    """Prepare, settle, time the action alone, clean up. A failed clean-up is fatal (``CleanupFailed``)."""
    arg = op.prepare()
    try:
        settle(rig)
        started = time.perf_counter_ns()
        result = op.action(arg)
    except BaseException:
        try:
            op.abandon(arg)
        except Exception as exc:
            raise CleanupFailed(f"undoing a failed {op.name}: {exc!r}") from exc
        raise
    elapsed_ms = (time.perf_counter_ns() - started) / 1e6
    try:
        return elapsed_ms, op.cleanup(result, elapsed_ms)
    except CleanupFailed:
        raise
    except BenchError as exc:  # the sample is wrong, but everything was undone: the op is broken
        raise SampleRejected(str(exc)) from exc
    except Exception as exc:
        raise CleanupFailed(f"cleaning up after {op.name}: {exc!r}") from exc


class SampleRejected(BenchError):
    """The sample ran and was undone, but did not measure what it should (e.g. a take not quiesced)."""


def record_sample(rig: Rig, op: Op, size: SizeResult, keep: bool, broken: set[str], console: Console) -> None:
    """One sample; an operation that fails is noted and skipped for this size, the run goes on."""
    try:
        elapsed_ms, side = run_sample(rig, op)
    except CleanupFailed:
        raise
    except Exception as exc:
        broken.add(op.name)
        size.op(op.name, op.group).notes.append(f"FAILED: {exc!r}")
        console.print(f"  [red]{op.name} failed on {size.label}: {exc!r}[/red]")
        return
    if not keep:
        return
    result = size.op(op.name, op.group)
    result.samples_ms.append(elapsed_ms)
    for name, value in (side or {}).items():
        result.add_side(name, value)


@dataclass
class Lane:
    """The operations measured on one VM (one disk size) and where their samples go."""

    ops: list[Op]
    result: SizeResult
    after: Callable[[], None] = lambda: None  # checked after every sample
    broken: set[str] = field(default_factory=set)


def run_rounds(rig: Rig, lanes: list[Lane], args: argparse.Namespace) -> None:
    """``--warmup`` discarded rounds then ``--repeat`` recorded ones; each round runs every op of every
    lane once, the sizes interleaved, so that load from outside (other processes, a busy host) hits every
    size alike instead of showing up as a difference between sizes."""
    for round_no in range(-args.warmup, args.repeat):
        for op_index in range(max(len(lane.ops) for lane in lanes)):
            for lane in lanes:
                if op_index < len(lane.ops) and lane.ops[op_index].name not in lane.broken:
                    op = lane.ops[op_index]
                    record_sample(rig, op, lane.result, round_no >= 0, lane.broken, args.console)
                    lane.after()


# --- the VMs, one per disk size -----------------------------------------------------------------------------


@contextmanager
def running_guest(rig: Rig, size: int, seed: int) -> Iterator[tuple[Guest, SizeResult]]:
    """A booted VM with a data disk of ``size`` and its reference snapshot; deleted afterwards, always."""
    name = rig.new_vm_name(size_label(size).replace(" ", ""))
    try:
        vm = create_vm(rig.svc, rig.image, name, size)
        disk = make_bench_disk(disk_path(vm), size, seed, rig.tmp)
        boot_s = boot(rig.svc, vm)
        reference = rig.svc.snapshots.take(
            TakeRequest(ref=vm.id, subject_type="vm", name="bench-reference", quiesce=True), who=SYSTEM
        )
        yield Guest(vm, reference.id), SizeResult(size, name, disk, boot_s)
    finally:
        with signals_deferred():
            remove_created(rig, only=name)


def remove_created(rig: Rig, only: str | None = None) -> None:
    """Delete the VMs and domains this run made (only those, or only ``only``); report, never raise, what
    cannot be.

    libvirtd is shared with whatever else runs on the host, and someone may stop it while this run is
    going. QEMU outlives libvirtd, and libvirt runs it in a mount namespace of its own, so a guest left
    running would keep the pool's loop device busy after the unmount here seems to succeed. So when
    libvirt cannot be reached, clean-up starts it (and stops it again), and as a last resort ends the
    guest's QEMU process by the pid libvirt recorded for it.
    """
    names = [n for n in rig.created if only in (None, n)]
    failed = remove_each(rig, names)
    if failed and not libvirtd_answers(rig.uri):
        failed = remove_with_libvirtd_restarted(rig, failed)
    for name in failed:
        print(f"clean-up: {failed[name]}", file=sys.stderr)
        problem = kill_guest_process(name)
        print(f"clean-up: {problem or f'ended the QEMU process of {name}'}", file=sys.stderr)


def remove_each(rig: Rig, names: list[str]) -> dict[str, str]:
    """Remove each VM; the ones that could not be removed, with why."""
    failed = {}
    for name in names:
        problem = remove_vm(rig.svc, name)
        if problem:
            failed[name] = problem
        else:
            rig.created.remove(name)
    return failed


def remove_with_libvirtd_restarted(rig: Rig, failed: dict[str, str]) -> dict[str, str]:
    """Retry the removals with libvirtd running, started here (and stopped again) if no one else has."""
    try:
        started = ensure_libvirtd(rig.uri)
    except SnapkeepError as exc:
        return {name: f"{why}; starting libvirtd again failed: {exc.message}" for name, why in failed.items()}
    try:
        return remove_each(rig, list(failed))
    finally:
        stop_daemons(started)


def start_guests(rig: Rig, args: argparse.Namespace, stack: ExitStack, run: FsRun) -> list[Guest]:
    """One running VM per disk size, all at once (so the sizes can be interleaved), each deleted by
    ``stack``."""
    guests = []
    for seed, size in enumerate(args.sizes):
        guest, result = stack.enter_context(running_guest(rig, size, seed))
        run.sizes.append(result)
        args.console.print(
            f"  {run.fstype} {result.label}: disk made in {result.disk.seconds:.1f} s, booted in {result.boot_s:.1f} s"
        )
        why_not = probe_internal(rig, guest)
        if why_not:
            result.not_applicable[VIRSH_INTERNAL] = why_not
        guests.append(guest)
    return guests


def measure_guests(rig: Rig, guests: list[Guest], run: FsRun, args: argparse.Namespace) -> None:
    """The running VMs first (takes, libvirt's snapshots, floors), then, all stopped, restores over them."""
    for guest in guests:
        check_guest(rig, guest)
    lanes = [
        Lane(running_ops(rig, g, VIRSH_INTERNAL not in r.not_applicable), r, partial(check_guest, rig, g))
        for g, r in zip(guests, run.sizes, strict=True)
    ]
    run_rounds(rig, lanes, args)
    for guest in guests:
        stop(rig.svc, guest.vm)
    run_rounds(rig, [Lane([restore_over_op(rig, g)], r) for g, r in zip(guests, run.sizes, strict=True)], args)


# --- set-up and tear-down ----------------------------------------------------------------------------------


@contextmanager
def rig_on(fstype: str, image_size: str, image: GuestImage) -> Iterator[Rig]:
    """Mount a fresh filesystem and build the services on a pool there; undo everything, whatever happens."""
    stack = ExitStack()
    try:
        fs = mount_fs(fstype, image_size)
        stack.callback(unmount_fs, fs)
        data_dir = make_traversable_tmp("snapkeep-vmbench-data-")
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        svc = build_services(data_dir, Pool.open(fs.new_dir("pool")))
        stack.callback(svc.close)
        tmp = os.path.join(data_dir, "tmp")
        os.makedirs(tmp, mode=0o755)
        rig = Rig(fs, svc, image, fs.new_dir("bare"), tmp, short_id())
        stack.callback(remove_created, rig)
        yield rig
    finally:
        with signals_deferred():
            stack.close()


def measure_filesystem(fstype: str, image: GuestImage, args: argparse.Namespace, runs: list[FsRun]) -> None:
    args.console.print(f"[bold]{fstype}[/bold]: making a {args.image_size} sparse pool image and mounting it")
    with rig_on(fstype, args.image_size, image) as rig, ExitStack() as guests_stack:
        run = FsRun(fstype, args.image_size)
        runs.append(run)
        guests = start_guests(rig, args, guests_stack, run)
        started = time.monotonic()
        measure_guests(rig, guests, run, args)
        args.console.print(f"  {fstype}: measured in {time.monotonic() - started:.1f} s")


def check_prerequisites(filesystems: list[str]) -> None:
    """Fail early with a plain message instead of deep in a mount helper or a libvirt call."""
    if os.geteuid() != 0:
        raise SystemExit("this benchmark mounts loop filesystems and uses qemu:///system: run it as root")
    tools = ["mount", "umount", "truncate", "virsh", "mkfs.ext4", "debugfs", "cp", "qemu-system-x86_64"]
    tools += ["mkfs.btrfs", "btrfs"] if "btrfs" in filesystems else []
    tools += ["mkfs.xfs"] if "xfs" in filesystems else []
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.vm_snapshots", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="1 GiB disk only, 3 repeats")
    mode.add_argument("--full", action="store_true", help="1, 8 and 64 GiB disks (the default)")
    mode.add_argument(
        "--smoke",
        action="store_true",
        help="CI check that the benchmark still runs: one guest with a 256 MiB disk on btrfs, one round, "
        "no warm-up, an 8G pool image, results in a temporary directory",
    )
    parser.add_argument("--repeat", type=int, help="recorded rounds per size (default 5; 3 --quick; 1 --smoke)")
    parser.add_argument("--warmup", type=int, help="discarded rounds per size (default 1; 0 with --smoke)")
    parser.add_argument("--fs", help="filesystems, comma-separated (default btrfs,xfs; btrfs with --smoke)")
    parser.add_argument("--image-size", help="sparse pool image per filesystem (default 100G; 8G with --smoke)")
    parser.add_argument(
        "--out", help="JSON results (default bench/results/vm_snapshots.json; a temporary file with --smoke)"
    )
    args = parser.parse_args(argv)
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    smoke = args.mode == "smoke"
    args.repeat = args.repeat if args.repeat is not None else {"smoke": 1, "quick": 3, "full": 5}[args.mode]
    args.warmup = args.warmup if args.warmup is not None else 0 if smoke else 1
    args.image_size = args.image_size or ("8G" if smoke else "100G")
    fs = args.fs or ("btrfs" if smoke else ",".join(FILESYSTEMS))
    args.filesystems = [f.strip() for f in fs.split(",") if f.strip()]
    if any(f not in FILESYSTEMS for f in args.filesystems) or args.repeat < 1 or args.warmup < 0:
        parser.error(f"--fs takes {', '.join(FILESYSTEMS)}; --repeat >= 1; --warmup >= 0")
    args.sizes = {"smoke": SMOKE_SIZES, "quick": QUICK_SIZES, "full": FULL_SIZES}[args.mode]
    if args.out is None and smoke:
        args.out = os.path.join(tempfile.mkdtemp(prefix="snapkeep-vmbench-"), "vm_snapshots-smoke.json")
    args.out = args.out or DEFAULT_OUT
    return args


def parameters(args: argparse.Namespace, image: GuestImage | None) -> dict[str, object]:
    return {
        "mode": args.mode,
        "argv": sys.argv[1:],
        "repeat": args.repeat,
        "warmup_rounds_discarded": args.warmup,
        "filesystems": args.filesystems,
        "image_size": args.image_size,
        "disk_sizes_bytes": list(args.sizes),
        "disk_data_method": {size_label(s): describe_disk_method(s) for s in args.sizes},
        "guest": {
            "vcpus": VCPUS,
            "memory_mib": MEMORY_MIB,
            "accel": "TCG (libvirt domain type qemu)",
            "kernel": image.kernel_version if image else None,
            "workload": "init appends a counter to /data/counter every 50 ms, each line fsync'd",
            "disk_cache": "none (O_DIRECT), raw, virtio",
        },
        "timing": "time.perf_counter_ns around the action only; prepare/cleanup untimed",
        "windows": "quiesce_window_ms and paused_window_ms as recorded on each snapshot by snapkeep's engine",
        "settle_before_each_sample": "syncfs(mountpoint); on btrfs also BTRFS_IOC_SYNC until no deleted subvolume",
        "virsh_external_revert": "blockcommit --active --pivot --wait, overlay deleted, inactive XML restored",
        "p90": "statistics.quantiles(n=10, method='inclusive')[-1]",
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_prerequisites(args.filesystems)
    install_signal_handlers()
    args.console = make_console()
    machine = host_info()
    runs: list[FsRun] = []
    image: GuestImage | None = None
    complete = False
    try:
        with guest_image(args.console) as image:
            for fstype in args.filesystems:
                measure_filesystem(fstype, image, args, runs)
        complete = True
    finally:
        machine["loadavg_at_end"] = os.getloadavg()
        write_json(args.out, machine, {**parameters(args, image), "complete": complete}, runs)
        args.console.print(f"results written to {args.out}" + ("" if complete else " (INCOMPLETE run)"))
    print_results(args.console, runs, args.repeat, machine)
    failed = failures((f"{run.fstype} {size.label}", size.ops) for run in runs for size in run.sizes)
    for failure in failed:
        args.console.print(f"[red]FAILED: {failure}[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run(main))
