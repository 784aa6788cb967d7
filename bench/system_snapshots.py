"""Benchmark: whole-system snapshots with snapkeep against what an operator would do by hand.

Run from the project root, as root::

    .venv/bin/python -m bench.system_snapshots --smoke   # CI: 1 VM (running), 2 volumes, btrfs, one round
    .venv/bin/python -m bench.system_snapshots --quick   # 1 and 10 VMs/volumes, 2 running, 3 repeats
    .venv/bin/python -m bench.system_snapshots --full    # 1, 10 and 50 VMs/volumes, up to 5 running (default)

For each filesystem (a sparse image, loop-mounted, made here and always unmounted) it builds the services on
a pool there and grows one system through the levels: 1 VM and 1 volume, then 10 and 10, then the same 10
and 10 with 1 GiB more data in every volume (taken away again after), then 50 and 50. VMs are test guests
made through the service (:mod:`bench.vm_guest`); the first of them (at most 5) run under TCG with their
writer and agent, the rest are defined and stopped. Every volume holds 16 MiB in 10 files
(:mod:`bench.datagen`). At each level a reference system snapshot is taken (untimed) and each round
(``--warmup`` discarded, then ``--repeat`` recorded) runs, one after the other:

- snapkeep's system take through the services (``TakeRequest(subject_type="system", ref="system")``),
  with its paused window (``Snapshot.paused_window_ms``) and its parts (the code's step timings); the
  snapshot is deleted after, untimed. A setting of the system is changed before it (untimed), so that it
  reads the whole system from the catalog, as the first take after any change does;
- the same take again right after, nothing changed in between (as scheduled takes of a steady system):
  it reuses the system read by the take before;
- the whole-system restore of the reference snapshot in place (no pre-restore snapshot), then (untimed)
  waiting for the running guests to be back with their agent;
- one VM restored as a new VM out of the reference snapshot (the new VM is deleted after);
- what an operator would do instead, on the same guests and datasets: pause every running guest
  (libvirt-python ``virDomain.suspend``, as ``virsh suspend`` does), snapshot every dataset (every VM's and
  every volume's) with the bare tool (``btrfs subvolume snapshot -r`` on btrfs; ``cp -a --reflink=always`` of
  each VM directory and each volume's image on XFS), resume every guest; and its two halves alone:
  pause + resume of all running guests, and the per-dataset snapshots without pausing.

Where the services refuse a whole-system restore as "not available yet" (its code not landed), it is
reported as not measured rather than failed.

Before every timed call (untimed) the pool's filesystem is flushed and, on btrfs, the cleaner is waited for
until every deleted subvolume is gone; after each sample every running guest is checked to be running.

Everything made is removed even on error or Ctrl-C (SIGTERM and SIGHUP too): the domains this run defined
(only those) are powered off and undefined, the pool unmounted, libvirtd stopped only if this run started it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import btrfsutil
import libvirt

from bench.datagen import GiB, MiB, VolumeSpec, fill_volume
from bench.guest_runs import PROJECT_ROOT, guest_image, host_info, run
from bench.model import failures
from bench.report import make_console
from bench.system_report import (
    BARE,
    DATASET_SNAPSHOTS,
    OPERATOR,
    OPERATOR_RESTORE,
    PAUSE_RESUME,
    PAUSED_WINDOW,
    PAUSES,
    POWER_OFFS,
    RESTORE_SYSTEM,
    RESTORE_VM_NEW,
    RESUMES,
    SNAPSHOTS,
    STARTS,
    SWAPS,
    TAKE,
    TAKE_AGAIN,
    FsRun,
    Level,
    LevelResult,
    print_results,
    write_json,
)
from bench.vm_guest import MEMORY_MIB, VCPUS, create_vm, disk_path
from bench.vm_snapshots import Rig, remove_created, rig_on, settle
from bench.volume_snapshots import BenchError, Op, SideMetrics, install_signal_handlers, run_quiet, unique
from snapkeep.errors import SnapkeepError
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import VM, SubjectType, Volume
from snapkeep.model.vmspec import VMState
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage import images
from snapkeep.testguest import GuestImage, make_data_disk
from snapkeep.timing import recording

DEFAULT_OUT = os.path.join(PROJECT_ROOT, "bench", "results", "system_snapshots.json")
FILESYSTEMS = ("btrfs", "xfs")
VM_DISK = 256 * MiB
VOLUME_DATA = VolumeSpec(16 * MiB, 10)
VOLUME_LIMIT = 2 * GiB
EXTRA_FILES = 10
LEVELS = {
    "smoke": (Level(1, 1, 2),),
    "quick": (Level(1, 1, 1), Level(10, 2, 10), Level(10, 2, 10, 1 * GiB)),
    "full": (Level(1, 1, 1), Level(10, 5, 10), Level(10, 5, 10, 1 * GiB), Level(50, 5, 50)),
}
NOT_YET = "not available yet"  # what the services say of a restore whose code has not landed
BOOT_TIMEOUT_S = 300.0  # five TCG guests booting at once on a busy 2-core host


# --- the system being measured ------------------------------------------------------------------------------


@dataclass
class System:
    """What this run made in the pool: VMs (the first ``running`` of them running) and volumes."""

    vms: list[VM] = field(default_factory=list)
    running: list[VM] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # folders of extra data, removed after their level

    def dataset_paths(self, rig: Rig) -> list[str]:
        """Every dataset as the operator's tool takes it: a VM's directory, a volume's directory (btrfs) or
        image file (XFS)."""
        volumes = [rig.svc.pool.dataset_path(v.dataset) for v in self.volumes]
        images_or_trees = [images.image_of(p) if os.path.isfile(images.image_of(p)) else p for p in volumes]
        return [vm.path for vm in self.vms] + images_or_trees


def grow(rig: Rig, system: System, level: Level, console: Any) -> None:
    """Make the VMs, running guests and volumes the level has beyond what exists; add its extra data."""
    while len(system.vms) < level.vms:
        system.vms.append(create_vm(rig.svc, rig.image, rig.new_vm_name(f"vm{len(system.vms)}"), VM_DISK))
    starting = system.vms[len(system.running) : level.running]
    for vm in starting:
        os.unlink(disk_path(vm))
        make_data_disk(disk_path(vm), VM_DISK)  # the guest's writer needs an ext4 data disk
        rig.svc.vms.start(vm.id, who=SYSTEM)
    wait_ready(rig, starting)
    system.running.extend(starting)
    while len(system.volumes) < level.volumes:
        index = len(system.volumes)
        volume = rig.svc.volumes.create(f"{rig.run_id}-vol{index}", size_limit=VOLUME_LIMIT, who=SYSTEM)
        fill_volume(volume.path, VOLUME_DATA, seed=index)
        system.volumes.append(volume)
    if level.extra_bytes:
        for index, volume in enumerate(system.volumes):
            folder = os.path.join(volume.path, "extra")
            os.mkdir(folder, 0o755)
            fill_volume(folder, VolumeSpec(level.extra_bytes, EXTRA_FILES), seed=1000 + index)
            system.extra.append(folder)
    console.print(f"  {rig.fs.fstype}: system grown to {level.label}")


def shrink_extra(rig: Rig, system: System) -> None:
    """Take the level's extra data away again (the next level measures object counts, not data)."""
    for folder in system.extra:
        shutil.rmtree(folder)
    system.extra.clear()
    settle(rig)


def wait_ready(rig: Rig, vms: list[VM]) -> None:
    """Until every guest runs and its agent answers (its init started the writer before the agent)."""
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    waiting = list(vms)
    while waiting:
        waiting = [vm for vm in waiting if not running_with_agent(rig, vm)]
        if waiting and time.monotonic() > deadline:
            raise BenchError(f"{', '.join(vm.name for vm in waiting)} not running with its agent in time")
        time.sleep(0.2)
    if vms:
        time.sleep(1.0)  # the writer appends a few values; the boot's own I/O settles


def running_with_agent(rig: Rig, vm: VM) -> bool:
    return rig.svc.host.state(vm.domain) == VMState.RUNNING and rig.svc.host.agent_ping(vm.domain, 1.0)


def check_running(rig: Rig, system: System) -> None:
    """Between samples: every guest that should run does, or the run stops (the next sample would be wrong)."""
    for vm in system.running:
        state = rig.svc.host.state(vm.domain)
        if state != VMState.RUNNING:
            raise BenchError(f"{vm.name} is {state} after a sample, not running")


# --- snapkeep operations -----------------------------------------------------------------------------------


def take_op(rig: Rig, changed: bool) -> Op:
    """A whole-system take through the services, as the API's job runs it; the snapshot is deleted after.
    ``changed``: a setting of the system is changed first (untimed), so that the take reads the whole system
    from the catalog, as the first take after any change does; else it follows the take before it with
    nothing changed in between (the deletion of that one's snapshot changes no object), as scheduled takes
    of a steady system do, and reuses what that one read."""
    svc = rig.svc

    def prepare() -> str:
        if changed:
            svc.settings_docs.patch(SYSTEM, {"bench_marker": unique("change")})
        return unique("take")

    def action(name: str) -> tuple[dict[str, float], Any]:
        request = TakeRequest(ref="system", subject_type="system", name=name)
        with recording() as steps:
            snap = svc.snapshots.take(request, who=SYSTEM)
        return steps, snap

    def cleanup(result: tuple[dict[str, float], Any], _ms: float) -> SideMetrics:
        steps, snap = result
        svc.snapshots.delete(snap.id, who=SYSTEM)
        if snap.paused_window_ms is None:
            raise BenchError("the system take recorded no paused window")
        return {**steps, PAUSED_WINDOW: snap.paused_window_ms}

    return Op(TAKE if changed else TAKE_AGAIN, "snapkeep", action, prepare, cleanup)


def restore_system_op(rig: Rig, system: System, reference_id: str) -> Op:
    """The whole system back to the reference snapshot, in place, without a pre-restore snapshot; then
    (untimed) the guests that ran are waited for until they run with their agent again."""

    def action(_: object) -> dict[str, float]:
        with recording() as steps:
            rig.svc.restores.over_source(reference_id, RestoreOptions(pre_restore=False), SYSTEM)
        return steps

    def cleanup(steps: dict[str, float], _ms: float) -> SideMetrics:
        wait_ready(rig, system.running)
        return steps

    return Op(RESTORE_SYSTEM, "snapkeep", action, cleanup=cleanup)


def restore_vm_new_op(rig: Rig, system: System, reference_id: str) -> Op:
    """The first VM restored as a new (stopped) VM out of the reference system snapshot; deleted after."""
    svc = rig.svc
    source = system.vms[0]

    def action(name: str) -> dict[str, object]:
        options = RestoreOptions(as_new=True, name=name, member_type=SubjectType.VM, member=source.name)
        return svc.restores.as_new(reference_id, options, SYSTEM)

    def drop(made: dict[str, object], _ms: float) -> SideMetrics:
        svc.vms.delete(str(made["vm_id"]), svc.snapshots, who=SYSTEM)
        return None

    def abandon(name: str) -> None:
        remove_created(rig, only=name)

    return Op(RESTORE_VM_NEW, "snapkeep", action, lambda: rig.new_vm_name("new"), drop, abandon)


# --- what an operator would do instead ---------------------------------------------------------------------


@dataclass
class Operator:
    """The bare calls on the same guests and datasets: libvirt's suspend/resume and the filesystem's own
    snapshot of each dataset."""

    rig: Rig
    system: System
    conn: libvirt.virConnect

    def pause_all(self) -> None:
        for vm in self.system.running:
            self.conn.lookupByName(vm.domain).suspend()

    def resume_all(self) -> None:
        for vm in self.system.running:
            self.conn.lookupByName(vm.domain).resume()

    def power_off_all(self) -> None:
        for vm in self.system.running:
            self.conn.lookupByName(vm.domain).destroy()

    def start_all(self) -> None:
        for vm in self.system.running:
            self.conn.lookupByName(vm.domain).create()

    def copy(self, src: str, dst: str, read_only: bool) -> None:
        """The bare tool's snapshot (``read_only``) or writable copy of one dataset."""
        if self.rig.fs.fstype == "btrfs":
            run_quiet(["btrfs", "subvolume", "snapshot", *(["-r"] if read_only else []), src, dst])
        else:
            run_quiet(["cp", "-a", "--reflink=always", src, dst])

    def snapshot_all(self, folder: str, sources: list[str] | None = None, read_only: bool = True) -> None:
        os.mkdir(folder)
        for index, src in enumerate(sources or self.system.dataset_paths(self.rig)):
            self.copy(src, os.path.join(folder, str(index)), read_only)

    def remove(self, path: str) -> None:
        """Remove one dataset the bare tool made, as the operator would (``btrfs subvolume delete``,
        ``rm -rf``)."""
        if self.rig.fs.fstype == "btrfs":
            run_quiet(["btrfs", "subvolume", "delete", path])
        else:
            run_quiet(["rm", "-rf", path])

    def drop(self, folder: str) -> None:
        """Remove what ``snapshot_all`` (or ``restore_setup``) made: subvolumes on btrfs, nested or not."""
        if not os.path.isdir(folder):
            return
        for dirpath, dirs, _files in os.walk(folder):
            for name in list(dirs):
                path = os.path.join(dirpath, name)
                if self.rig.fs.fstype == "btrfs" and btrfsutil.is_subvolume(path):
                    btrfsutil.delete_subvolume(path)
                    dirs.remove(name)
        shutil.rmtree(folder)

    def restore_setup(self) -> str:
        """Untimed: a writable copy of every dataset (``live/``, standing in for the live datasets, which
        snapkeep owns) and the bare snapshot of each (``snap/``) to restore them from."""
        folder = self.folder()
        os.mkdir(folder)
        self.snapshot_all(os.path.join(folder, "snap"))
        self.snapshot_all(os.path.join(folder, "live"), read_only=False)
        return folder

    def restore_all(self, folder: str) -> SideMetrics:
        """What snapkeep's whole-system restore does, by hand: power off the running guests, put each
        dataset back from its snapshot (the live one moved aside, a writable snapshot of the saved one in
        its place, the old one deleted), start the guests."""
        t0 = time.perf_counter_ns()
        self.power_off_all()
        t1 = time.perf_counter_ns()
        live, snap, old = (os.path.join(folder, part) for part in ("live", "snap", "old"))
        os.mkdir(old)
        for name in sorted(os.listdir(snap)):
            os.rename(os.path.join(live, name), os.path.join(old, name))
            self.copy(os.path.join(snap, name), os.path.join(live, name), read_only=False)
            self.remove(os.path.join(old, name))
        t2 = time.perf_counter_ns()
        self.start_all()
        t3 = time.perf_counter_ns()
        return {POWER_OFFS: (t1 - t0) / 1e6, SWAPS: (t2 - t1) / 1e6, STARTS: (t3 - t2) / 1e6}

    def folder(self) -> str:
        return os.path.join(self.rig.scratch, unique("bare"))

    def take_ops(self) -> list[Op]:
        def whole(folder: str) -> SideMetrics:
            t0 = time.perf_counter_ns()
            try:
                self.pause_all()
                t1 = time.perf_counter_ns()
                self.snapshot_all(folder)
                t2 = time.perf_counter_ns()
            finally:
                t_resume = time.perf_counter_ns()
                self.resume_all()
                t3 = time.perf_counter_ns()
            return {PAUSES: (t1 - t0) / 1e6, SNAPSHOTS: (t2 - t1) / 1e6, RESUMES: (t3 - t_resume) / 1e6}

        def pause_resume(_: object) -> SideMetrics:
            t0 = time.perf_counter_ns()
            try:
                self.pause_all()
                t1 = time.perf_counter_ns()
            finally:
                self.resume_all()
                t2 = time.perf_counter_ns()
            return {PAUSES: (t1 - t0) / 1e6, RESUMES: (t2 - t1) / 1e6}

        def kept(metrics: SideMetrics, _ms: float) -> SideMetrics:
            return metrics

        def dropped(folder: str, _ms: float) -> SideMetrics:
            self.drop(folder)
            return None

        def whole_then_drop(folder: str) -> tuple[str, SideMetrics]:
            return folder, whole(folder)

        def drop_after_whole(result: tuple[str, SideMetrics], _ms: float) -> SideMetrics:
            self.drop(result[0])
            return result[1]

        def snapshots(folder: str) -> str:
            self.snapshot_all(folder)
            return folder

        return [
            Op(OPERATOR, "operator", whole_then_drop, self.folder, drop_after_whole, self.drop),
            Op(PAUSE_RESUME, "operator", pause_resume, cleanup=kept),
            Op(DATASET_SNAPSHOTS, "operator", snapshots, self.folder, dropped, self.drop),
        ]

    def restore_op(self) -> Op:
        def restored(folder: str) -> tuple[str, SideMetrics]:
            return folder, self.restore_all(folder)

        def drop_restored(result: tuple[str, SideMetrics], _ms: float) -> SideMetrics:
            wait_ready(self.rig, self.system.running)
            self.drop(result[0])
            return result[1]

        def abandon_restore(folder: str) -> None:
            for vm in self.system.running:  # the guests run again whatever failed
                if self.rig.svc.host.state(vm.domain) != VMState.RUNNING:
                    self.conn.lookupByName(vm.domain).create()
            wait_ready(self.rig, self.system.running)
            self.drop(folder)

        return Op(OPERATOR_RESTORE, "operator", restored, self.restore_setup, drop_restored, abandon_restore)


# --- rounds ----------------------------------------------------------------------------------------------


def run_sample(rig: Rig, op: Op) -> tuple[float, SideMetrics]:
    """Prepare, settle, time the action alone, clean up."""
    arg = op.prepare()
    try:
        settle(rig)
        started = time.perf_counter_ns()
        result = op.action(arg)
    except BaseException:
        op.abandon(arg)
        raise
    elapsed_ms = (time.perf_counter_ns() - started) / 1e6
    return elapsed_ms, op.cleanup(result, elapsed_ms)


def not_available(exc: Exception) -> bool:
    return isinstance(exc, SnapkeepError) and NOT_YET in exc.message


def run_rounds(
    rig: Rig, system: System, ops: list[Op], result: LevelResult, rounds: tuple[int, int], console: Any
) -> None:
    """``rounds`` = (discarded, recorded) rounds, every operation once per round; an operation that fails
    is noted (or, if its code has not landed, marked not measured) and skipped."""
    skipped: set[str] = set(result.not_measured)
    warmup, repeat = rounds
    for round_no in range(-warmup, repeat):
        for op in ops:
            if op.name in skipped:
                continue
            try:
                elapsed_ms, side = run_sample(rig, op)
            except Exception as exc:
                skipped.add(op.name)
                if not_available(exc):
                    result.not_measured[op.name] = f"not measured: {exc}"
                else:
                    result.op(op.name, op.group).notes.append(f"FAILED: {exc!r}")
                    console.print(f"  [red]{op.name} failed on {result.level.label}: {exc!r}[/red]")
                continue
            finally:
                check_running(rig, system)
            if round_no >= 0:
                sample = result.op(op.name, op.group)
                sample.samples_ms.append(elapsed_ms)
                for name, value in (side or {}).items():
                    sample.add_side(name, value)


def measure_level(rig: Rig, system: System, operator: Operator, level: Level, args: argparse.Namespace) -> LevelResult:
    started = time.monotonic()
    grow(rig, system, level, args.console)
    settle(rig)
    reference = rig.svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name=unique("ref")), who=SYSTEM)
    volume_bytes = len(system.volumes) * VOLUME_DATA.total_bytes + len(system.extra) * level.extra_bytes
    result = LevelResult(level, len(system.dataset_paths(rig)), volume_bytes, time.monotonic() - started)
    takes = [take_op(rig, changed=True), take_op(rig, changed=False), *operator.take_ops()]
    takes.append(restore_vm_new_op(rig, system, reference.id))
    # these power the running guests off and start them again (a boot each, so fewer rounds)
    restores = [operator.restore_op(), restore_system_op(rig, system, reference.id)]
    try:
        run_rounds(rig, system, takes, result, (args.warmup, args.repeat), args.console)
        run_rounds(rig, system, restores, result, (0, args.restore_repeat), args.console)
    finally:
        rig.svc.snapshots.delete(reference.id, who=SYSTEM)
        if system.extra:
            shrink_extra(rig, system)
    return result


def release_volumes(rig: Rig, system: System, limit_s: float = 120.0) -> None:
    """Delete this run's volumes and wait until no loop device reads a file on the pool's filesystem: on XFS
    each volume is an image on a loop device of its own, and with 50 of them being let go the pool's
    unmount otherwise finds the filesystem busy. Reports, never raises: it runs during clean-up."""
    for volume in system.volumes:
        try:
            rig.svc.volumes.delete(volume.id, rig.svc.snapshots, who=SYSTEM)
        except Exception as exc:  # clean-up goes on whatever happened
            print(f"clean-up: deleting volume {volume.name}: {exc!r}", file=sys.stderr)
    deadline = time.monotonic() + limit_s
    while loops_on(rig.fs.mountpoint) and time.monotonic() < deadline:
        time.sleep(0.2)


def loops_on(mountpoint: str) -> list[str]:
    """The loop devices whose backing file is under ``mountpoint``."""
    found = []
    for name in os.listdir("/sys/block"):
        try:
            with open(os.path.join("/sys/block", name, "loop", "backing_file")) as f:
                backing = f.read().strip()
        except OSError:
            continue
        if backing.startswith(mountpoint.rstrip("/") + "/"):
            found.append(name)
    return found


def measure_filesystem(fstype: str, image: GuestImage, args: argparse.Namespace, runs: list[FsRun]) -> None:
    args.console.print(f"[bold]{fstype}[/bold]: making a {args.image_size} sparse pool image and mounting it")
    with rig_on(fstype, args.image_size, image) as rig, ExitStack() as stack:
        run = FsRun(fstype, args.image_size)
        runs.append(run)
        system = System()
        stack.callback(release_volumes, rig, system)
        conn = libvirt.open(rig.uri)
        stack.callback(conn.close)
        operator = Operator(rig, system, conn)
        for level in args.levels:
            run.levels.append(measure_level(rig, system, operator, level, args))
            args.console.print(f"  {fstype}, {level.label}: measured")


# --- command line ----------------------------------------------------------------------------------------


def check_prerequisites(filesystems: list[str]) -> None:
    if os.geteuid() != 0:
        raise SystemExit("this benchmark mounts loop filesystems and uses qemu:///system: run it as root")
    tools = ["mount", "umount", "truncate", "virsh", "mkfs.ext4", "cp", "qemu-system-x86_64"]
    tools += ["mkfs.btrfs", "btrfs"] if "btrfs" in filesystems else []
    tools += ["mkfs.xfs"] if "xfs" in filesystems else []
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.system_snapshots", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="1 and 10 VMs and volumes (2 running), 3 repeats")
    mode.add_argument("--full", action="store_true", help="1, 10 and 50 VMs and volumes, up to 5 running (default)")
    mode.add_argument(
        "--smoke",
        action="store_true",
        help="CI check that the benchmark still runs: 1 VM (running), 2 volumes, btrfs, one round, no warm-up, "
        "results in a temporary directory",
    )
    parser.add_argument("--repeat", type=int, help="recorded rounds per level (default 5; 3 --quick; 1 --smoke)")
    parser.add_argument("--warmup", type=int, help="discarded rounds per level (default 1; 0 with --smoke)")
    parser.add_argument(
        "--restore-repeat", type=int, help="recorded whole-system restores per level, no warm-up (default 3; 1 --smoke)"
    )
    parser.add_argument("--fs", help="filesystems, comma-separated (default btrfs,xfs; btrfs with --smoke)")
    parser.add_argument("--image-size", help="sparse pool image per filesystem (default 100G; 8G with --smoke)")
    parser.add_argument("--out", help="JSON results (default bench/results/system_snapshots.json)")
    args = parser.parse_args(argv)
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    smoke = args.mode == "smoke"
    args.repeat = args.repeat if args.repeat is not None else {"smoke": 1, "quick": 3, "full": 5}[args.mode]
    args.warmup = args.warmup if args.warmup is not None else 0 if smoke else 1
    args.restore_repeat = args.restore_repeat if args.restore_repeat is not None else 1 if smoke else 3
    args.image_size = args.image_size or ("8G" if smoke else "100G")
    fs = args.fs or ("btrfs" if smoke else ",".join(FILESYSTEMS))
    args.filesystems = [f.strip() for f in fs.split(",") if f.strip()]
    bad_fs = any(f not in FILESYSTEMS for f in args.filesystems)
    if bad_fs or min(args.repeat, args.restore_repeat) < 1 or args.warmup < 0:
        parser.error(f"--fs takes {', '.join(FILESYSTEMS)}; --repeat, --restore-repeat >= 1; --warmup >= 0")
    args.levels = LEVELS[args.mode]
    if args.out is None and smoke:
        args.out = os.path.join(tempfile.mkdtemp(prefix="snapkeep-sysbench-"), "system_snapshots-smoke.json")
    args.out = args.out or DEFAULT_OUT
    return args


def parameters(args: argparse.Namespace, image: GuestImage | None) -> dict[str, object]:
    return {
        "mode": args.mode,
        "argv": sys.argv[1:],
        "repeat": args.repeat,
        "warmup_rounds_discarded": args.warmup,
        "restore_repeat": args.restore_repeat,
        "filesystems": args.filesystems,
        "image_size": args.image_size,
        "levels": [level.label for level in args.levels],
        "volume_data": f"{VOLUME_DATA.label} per volume (bench.datagen), size limit {VOLUME_LIMIT // GiB} GiB",
        "extra_data": f"{EXTRA_FILES} files per volume in extra/, removed after their level",
        "bare_dataset_snapshot": BARE,
        "guest": {
            "vcpus": VCPUS,
            "memory_mib": MEMORY_MIB,
            "data_disk": f"{VM_DISK // MiB} MiB raw sparse (ext4 on the running ones)",
            "accel": "TCG (libvirt domain type qemu)",
            "kernel": image.kernel_version if image else None,
            "workload": "init appends a counter to /data/counter every 50 ms, each line fsync'd",
        },
        "pause_resume": "libvirt-python virDomain.suspend / resume, one guest after the other",
        "restore_entire_system": "Restores.over_source of the reference system snapshot, pre_restore=False",
        "timing": "time.perf_counter_ns around the action only; prepare/cleanup untimed",
        "settle_before_each_sample": "syncfs(mountpoint); on btrfs also BTRFS_IOC_SYNC until no deleted subvolume",
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
    failed = failures((f"{run.fstype} {lv.level.label}", lv.ops) for run in runs for lv in run.levels)
    for failure in failed:
        args.console.print(f"[red]FAILED: {failure}[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run(main))
