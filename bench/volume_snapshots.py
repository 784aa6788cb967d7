"""Benchmark: NAS volume snapshots with snapkeep against the bare btrfs / XFS-reflink operations.

Run from the project root::

    .venv/bin/python -m bench.volume_snapshots --smoke     # CI: one small volume, one round, exit 1 on any failure
    .venv/bin/python -m bench.volume_snapshots --quick     # small matrix, well under 2 minutes
    .venv/bin/python -m bench.volume_snapshots             # --full, the default matrix

For each filesystem (a sparse image, loop-mounted, made here and always unmounted) it starts one in-process
:class:`Services` and one real ``snapkeep serve`` process, each on its own pool on that filesystem, makes each
volume of the matrix in both pools with identical bytes (see :mod:`bench.datagen`), and measures, ``--repeat``
times after ``--warmup`` discarded rounds, every snapkeep step and the bare operation an operator would use
instead. Each round runs all operations in turn, so slow drift hits all of them alike.

Why each sample starts from a settled filesystem: a btrfs snapshot commits the running transaction, and
snapkeep's seal calls ``syncfs``; both would otherwise pay for whatever the previous operation left dirty
(most of all its deletions), and the numbers would measure the order of the operations. So before every
timed call (untimed) the filesystem is flushed with ``syncfs`` and, on btrfs, the cleaner is woken and
waited for until it has dropped every deleted subvolume. An XFS image volume's own filesystem is flushed
and frozen and thawed (untimed) as well: a freeze writes back all the filesystem's metadata logged since
the last one, and the bare ``cp -a`` and ``rm -rf`` run on that filesystem, so the next operation (the
capture alone) would otherwise pay for thousands of files they made and deleted (123-193 ms instead of
~10 at 1,000-100,000 files).

Why the volume's metadata is warmed (every file ``lstat``-ed) before each sample: a NAS volume being served
has its inodes cached, and some costs depend on that (deleting a btrfs subvolume evicts its cached inodes
synchronously, about 2 us each, so a restore over the source, which frees the replaced live dataset, costs
~0.25 s at 100,000 cached files and ~0 when nothing is cached). Without this step the numbers would depend on
which earlier operation happened to read the tree.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any, NoReturn

import btrfsutil
import httpx
from rich.console import Console

from bench.datagen import DataReport, GiB, MiB, VolumeSpec, describe_method, fill_volume
from bench.model import (
    BTRFS_DELETE_CLI,
    BTRFS_SNAPSHOT_CLI,
    BTRFSUTIL_SNAPSHOT,
    CAPTURE,
    CAPTURE_SEAL,
    CP_REFLINK,
    DELETE_SERVICE,
    RESTORE_NEW,
    RESTORE_OVER,
    RESTORE_OVER_PRE,
    RM_RF,
    SPACE_SERVICE,
    TAKE_API,
    TAKE_SERVICE,
    FsResult,
    VolumeResult,
    failures,
)
from bench.report import load_json, machine_info, make_console, print_results, write_json
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import Volume
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage import images
from snapkeep.storage.linux import syncfs
from snapkeep.storage.pool import Pool
from snapkeep.timing import recording
from tests.conftest import (
    Mounted,
    Server,
    build_services,
    free_port,
    make_traversable_tmp,
    mount_fs,
    start_server,
    stop_server,
    unmount_fs,
)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join("bench", "results", "volume_snapshots.json")
QUICK_OUT = os.path.join("bench", "results", "volume_snapshots-quick.json")
FILESYSTEMS = ("btrfs", "xfs")
SIZES = (16 * MiB, 256 * MiB, 1 * GiB, 8 * GiB)
FILE_COUNTS = (10, 1_000, 10_000, 100_000)
QUICK_MATRIX = (VolumeSpec(16 * MiB, 10), VolumeSpec(256 * MiB, 10), VolumeSpec(16 * MiB, 1_000))
SMOKE_MATRIX = (VolumeSpec(16 * MiB, 100),)
FULL_MATRIX = (
    *(VolumeSpec(size, 10) for size in SIZES),
    *(VolumeSpec(16 * MiB, files) for files in FILE_COUNTS if files != 10),
)
FINISHED = ("succeeded", "failed", "cancelled")

SideMetrics = dict[str, float] | None


class BenchError(RuntimeError):
    """Something the benchmark checks went wrong (a failed job, an unexpected HTTP answer)."""


# --- the things measured ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One measured operation: ``prepare`` and ``cleanup`` are untimed, ``action`` is timed.

    ``cleanup`` gets the action's result and its time in ms, undoes what the action made, and may return
    side measurements of that sample (e.g. where a take's time went). ``abandon`` gets what ``prepare``
    made when the action failed, so that nothing prepared outlives a failed sample.
    """

    name: str
    group: str
    action: Callable[[Any], Any]
    prepare: Callable[[], Any] = lambda: None
    cleanup: Callable[[Any, float], SideMetrics] = lambda _result, _ms: None
    abandon: Callable[[Any], None] = lambda _prepared: None


@dataclass
class Rig:
    """One filesystem with both snapkeep instances on it (each with its own pool) and scratch space."""

    fs: Mounted
    services: Services
    server: Server
    server_launcher: str
    client: httpx.Client
    scratch: str
    api_wait: float

    @property
    def pool(self) -> Pool:
        return self.services.pool


@dataclass(frozen=True)
class Subject:
    """The volume being measured, in the in-process pool and in the server's pool."""

    spec: VolumeSpec
    volume: Volume
    api_volume_id: str
    reference_id: str
    manifest: bytes
    warm: tuple[str, ...]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def settle(rig: Rig, warm: tuple[str, ...] = ()) -> None:
    """Warm the live volumes' metadata, flush the filesystem, let btrfs drop deleted subvolumes
    (see the module docstring for why)."""
    for path in warm:
        warm_metadata(path)
    for path in warm:
        if os.path.ismount(path):  # an XFS image volume: its own filesystem, quiesced as well
            syncfs(path)
            images.freeze_tree(path)
            images.thaw_tree(path)
    syncfs(rig.fs.mountpoint)
    if rig.fs.fstype == "btrfs":
        wait_btrfs_cleaner(rig.fs.mountpoint)


def warm_metadata(top: str) -> None:
    """``lstat`` every entry under ``top`` so its dentries and inodes are cached, as on a served volume."""
    for dirpath, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            os.lstat(os.path.join(dirpath, name))


def wait_btrfs_cleaner(mountpoint: str, limit_s: float = 300.0) -> None:
    """Commit and wake the cleaner (``BTRFS_IOC_SYNC``, like ``btrfs filesystem sync``) until no deleted
    subvolume is left to drop, then commit the cleaner's own changes.

    ``btrfs subvolume sync`` alone is not enough: the cleaner otherwise wakes only on the 30 s commit
    timer, so every sample would wait up to 30 s.
    """
    deadline = time.monotonic() + limit_s
    btrfsutil.sync(mountpoint)
    while btrfsutil.deleted_subvolumes(mountpoint):
        if time.monotonic() > deadline:
            raise BenchError(f"btrfs cleaner still busy after {limit_s:.0f} s on {mountpoint}")
        time.sleep(0.002)
        btrfsutil.sync(mountpoint)
    syncfs(mountpoint)


def run_quiet(argv: list[str]) -> None:
    """Run a command as an operator would, failing loudly with its stderr."""
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")


# --- snapkeep operations -----------------------------------------------------------------------------


def pool_ops(rig: Rig, subject: Subject) -> list[Op]:
    """The capture step alone and with the seal, straight on the pool (no catalog, no HTTP)."""
    datasets = [subject.volume.dataset]

    def capture(snap_id: str) -> str:
        rig.pool.capture(snap_id, datasets)
        return snap_id

    def capture_seal(snap_id: str) -> str:
        rig.pool.capture(snap_id, datasets)
        rig.pool.seal(snap_id, subject.manifest)
        return snap_id

    return [
        Op(CAPTURE, "snapkeep", capture, lambda: unique("cap"), lambda sid, _ms: rig.pool.discard(sid)),
        Op(
            CAPTURE_SEAL,
            "snapkeep",
            capture_seal,
            lambda: unique("seal"),
            lambda sid, _ms: rig.pool.delete_snapshot(sid),
        ),
    ]


def take_breakdown(steps: dict[str, float], total_ms: float) -> dict[str, float]:
    parts = dict(steps)
    storage = ("pool.prepare_capture", "volume freeze", "pool.capture", "volume thaw", "pool.seal")
    parts["catalog and rest"] = total_ms - sum(parts.get(k, 0.0) for k in storage)
    return parts


def service_take_op(rig: Rig, subject: Subject) -> Op:
    """A whole take through the service layer, split into capture / seal / catalog by the code's own step
    timings (:mod:`snapkeep.timing`)."""
    svc = rig.services

    def action(name: str) -> tuple[dict[str, float], str]:
        with recording() as steps:
            snap = svc.snapshots.take(TakeRequest(ref=subject.volume.id, name=name), who=SYSTEM)
        return steps, snap.id

    def cleanup(result: tuple[dict[str, float], str], ms: float) -> SideMetrics:
        steps, snap_id = result
        svc.snapshots.delete(snap_id, who=SYSTEM)
        return take_breakdown(steps, ms)

    return Op(TAKE_SERVICE, "snapkeep", action, lambda: unique("svc"), cleanup)


def restore_ops(rig: Rig, subject: Subject) -> list[Op]:
    """Restores from the volume's reference snapshot: over the source (with and without safety) and as new."""
    svc = rig.services
    ref = subject.reference_id

    def drop_safety(result: dict[str, str | None], _ms: float) -> SideMetrics:
        if result["pre_restore_snapshot_id"]:
            svc.snapshots.delete(result["pre_restore_snapshot_id"], who=SYSTEM)
        return None

    def drop_volume(made: dict[str, object], _ms: float) -> SideMetrics:
        svc.volumes.delete(str(made["volume_id"]), svc.snapshots, who=SYSTEM)
        return None

    return [
        Op(
            RESTORE_OVER, "snapkeep", lambda _: svc.restores.over_source(ref, RestoreOptions(pre_restore=False), SYSTEM)
        ),
        Op(
            RESTORE_OVER_PRE,
            "snapkeep",
            lambda _: svc.restores.over_source(ref, RestoreOptions(pre_restore=True), SYSTEM),
            cleanup=drop_safety,
        ),
        Op(
            RESTORE_NEW,
            "snapkeep",
            lambda name: svc.restores.as_new(ref, RestoreOptions(as_new=True, name=name), SYSTEM),
            lambda: unique("rn"),
            drop_volume,
        ),
    ]


def service_delete_op(rig: Rig, subject: Subject) -> Op:
    svc = rig.services

    def prepare() -> str:
        return svc.snapshots.take(TakeRequest(ref=subject.volume.id, name=unique("del")), who=SYSTEM).id

    return Op(DELETE_SERVICE, "snapkeep", lambda snap_id: svc.snapshots.delete(snap_id, who=SYSTEM), prepare)


def space_op(rig: Rig, subject: Subject) -> Op:
    """Measuring the reference snapshot's space (on demand, in the background lane when through the API)."""
    return Op(
        SPACE_SERVICE, "snapkeep", lambda _: rig.services.snapshots.measure_space(subject.reference_id, who=SYSTEM)
    )


# --- the HTTP API ------------------------------------------------------------------------------------


def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise BenchError(f"{what}: HTTP {response.status_code} (expected {status}): {response.text[:500]}")
    body: dict[str, Any] = response.json()
    return body


def finish_job(client: httpx.Client, job: dict[str, Any], what: str) -> dict[str, Any]:
    """Wait (server-side, long-polling) for a job the answer did not finish, then insist it succeeded."""
    while job["status"] not in FINISHED:
        job = expect(client.get(f"/api/v1/jobs/{job['id']}", params={"wait": 60}), 200, what)
    if job["status"] != "succeeded":
        raise BenchError(f"{what}: job {job['id']} {job['status']}: {job.get('error')}")
    return job


def job_seconds(job: dict[str, Any]) -> float:
    """How long the job took by the server's clock, from submission to finish."""
    created = datetime.fromisoformat(job["created_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    return (finished - created).total_seconds()


def api_take_op(rig: Rig, subject: Subject, notes: list[str]) -> Op:
    """POST /snapshots?wait=N against the real server; timed until the answer carrying the finished job."""
    client = rig.client

    def action(name: str) -> dict[str, Any]:
        response = client.post(
            "/api/v1/snapshots",
            params={"wait": rig.api_wait},
            json={"volume": subject.api_volume_id, "name": name},
        )
        job = expect(response, 202, "POST /api/v1/snapshots")
        if job["status"] not in FINISHED:
            notes.append(f"job not finished within wait={rig.api_wait:g} s; polled until it was")
        return finish_job(client, job, "taking a snapshot through the API")

    def cleanup(job: dict[str, Any], ms: float) -> SideMetrics:
        snap = job["result"]["snapshot"]
        if snap["status"] != "ready":
            raise BenchError(f"API take answered snapshot status {snap['status']!r}, not 'ready'")
        deleted = expect(client.delete(f"/api/v1/snapshots/{snap['id']}", params={"wait": 60}), 202, "DELETE")
        finish_job(client, deleted, "deleting a snapshot through the API")
        run_ms = job_seconds(job) * 1000
        return {
            "job run (server clock)": run_ms,
            "HTTP and job overhead": ms - run_ms,
        }

    return Op(TAKE_API, "snapkeep", action, lambda: unique("api"), cleanup)


# --- bare operations -------------------------------------------------------------------------------


def bare_ops(rig: Rig, subject: Subject) -> list[Op]:
    """What an operator would run by hand on the same data: btrfs snapshots, reflink copies, deletions."""
    src = subject.volume.path
    # A reflink copy cannot leave its filesystem: an XFS image volume's files are copied within the volume
    # (into a scratch folder beside them), which is what an operator could do by hand.
    own_fs = rig.pool.is_image_volume(subject.volume.dataset)
    scratch = os.path.join(src, ".bench-scratch") if own_fs else rig.scratch

    def target() -> str:
        os.makedirs(scratch, exist_ok=True)  # again after a restore replaced the volume's filesystem
        return os.path.join(scratch, unique("bare"))

    def cli_snapshot(dst: str) -> str:
        run_quiet(["btrfs", "subvolume", "snapshot", "-r", src, dst])
        return dst

    def lib_snapshot(dst: str) -> str:
        btrfsutil.create_snapshot(src, dst, read_only=True)
        return dst

    def reflink_copy(dst: str) -> str:
        if not own_fs:
            run_quiet(["cp", "-a", "--reflink=always", src, dst])
            return dst
        os.mkdir(dst)
        entries = [os.path.join(src, n) for n in sorted(os.listdir(src)) if n not in (".snapkeep", ".bench-scratch")]
        run_quiet(["cp", "-a", "--reflink=always", *entries, dst])
        return dst

    def drop_subvolume(dst: str, _ms: float) -> SideMetrics:
        btrfsutil.delete_subvolume(dst)
        return None

    def drop_tree(dst: str, _ms: float) -> SideMetrics:
        shutil.rmtree(dst)
        return None

    copies = [
        Op(CP_REFLINK, "bare", reflink_copy, target, drop_tree),
        Op(RM_RF, "bare", lambda dst: run_quiet(["rm", "-rf", dst]), lambda: reflink_copy(target())),
    ]
    if rig.fs.fstype != "btrfs":
        return copies
    return [
        Op(BTRFS_SNAPSHOT_CLI, "bare", cli_snapshot, target, drop_subvolume),
        Op(BTRFSUTIL_SNAPSHOT, "bare", lib_snapshot, target, drop_subvolume),
        Op(
            BTRFS_DELETE_CLI,
            "bare",
            lambda dst: run_quiet(["btrfs", "subvolume", "delete", dst]),
            lambda: lib_snapshot(target()),
        ),
        *copies,
    ]


def all_ops(rig: Rig, subject: Subject, api_notes: list[str]) -> list[Op]:
    return [
        *pool_ops(rig, subject),
        service_take_op(rig, subject),
        api_take_op(rig, subject, api_notes),
        *restore_ops(rig, subject),
        service_delete_op(rig, subject),
        space_op(rig, subject),
        *bare_ops(rig, subject),
    ]


def run_sample(rig: Rig, subject: Subject, op: Op) -> tuple[float, SideMetrics]:
    """Prepare, settle, time the action alone, clean up."""
    arg = op.prepare()
    try:
        settle(rig, subject.warm)
        started = time.perf_counter_ns()
        result = op.action(arg)
    except BaseException:
        op.abandon(arg)
        raise
    elapsed_ms = (time.perf_counter_ns() - started) / 1e6
    return elapsed_ms, op.cleanup(result, elapsed_ms)


# --- set-up and tear-down --------------------------------------------------------------------------


def _raise_interrupt(signum: int, _frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every ``finally`` (umount, server stop) runs.

    A signal the caller chose to ignore (``nohup``) stays ignored.
    """
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _raise_interrupt)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ignore Ctrl-C/SIGTERM while cleaning up: a second Ctrl-C must not leave a mount behind."""
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def launch_server(data_dir: str, pool_dir: str) -> tuple[Server, str]:
    """``snapkeep serve`` through the tests' helper when the CLI exists; else the same ``serve()`` directly.

    The fallback exists because the CLI module (``snapkeep.cli.main``) may not be written yet; it runs the
    very function ``snapkeep serve`` runs, in its own process, configured through the same environment.
    """
    if importlib.util.find_spec("snapkeep.cli.main") is not None:
        how = "python -m snapkeep.cli.main serve (tests.conftest.start_server)"
        return start_server(data_dir, pool_dir), how
    return start_serve_function(data_dir, pool_dir), "python -c 'snapkeep.api.server.serve(Settings())'"


SERVE_CODE = "from snapkeep.api.server import serve; from snapkeep.config import Settings; serve(Settings())"


def start_serve_function(data_dir: str, pool_dir: str) -> Server:
    """Start ``snapkeep.api.server.serve`` in a child process and wait until it answers its health check."""
    port = free_port()
    env = {
        **os.environ,
        "SNAPKEEP_DATA_DIR": data_dir,
        "SNAPKEEP_POOL_DIR": pool_dir,
        "SNAPKEEP_LISTEN": f"127.0.0.1:{port}",
    }
    log_path = os.path.join(data_dir, "serve.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-c", SERVE_CODE], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    server = Server(url, "", data_dir, pool_dir, process, env)
    try:
        wait_healthy(process, url, log_path)
        with open(os.path.join(data_dir, "admin.token")) as f:
            server.token = f.read().strip()
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_healthy(process: subprocess.Popen[bytes], url: str, log_path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path) as f:
                raise BenchError(f"snapkeep serve exited: {f.read()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise BenchError("snapkeep serve did not answer within 30 s")


@contextmanager
def rig_on(fstype: str, image_size: str, api_wait: float) -> Iterator[Rig]:
    """Mount a fresh filesystem, start both snapkeep instances on it; undo everything, whatever happens."""
    stack = ExitStack()
    try:
        fs = mount_fs(fstype, image_size)
        stack.callback(unmount_fs, fs)
        data_dir = make_traversable_tmp("snapkeep-bench-data-")
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        services = build_services(data_dir, Pool.open(fs.new_dir("pool")))
        stack.callback(services.close)
        server_dir = make_traversable_tmp("snapkeep-bench-serve-")
        stack.callback(shutil.rmtree, server_dir, ignore_errors=True)
        server, launcher = launch_server(server_dir, fs.new_dir("served-pool"))
        stack.callback(stop_server, server)
        client = server.client()
        stack.callback(client.close)
        yield Rig(fs, services, server, launcher, client, fs.new_dir("bare"), api_wait)
    finally:
        with signals_deferred():
            stack.close()


def size_limit(spec: VolumeSpec) -> int:
    """Room for the data twice and 8 KiB per file: limits are enforced on both drivers, and small files cost
    metadata (btrfs quota groups count it) or a whole block and an inode each (XFS: 100,000 files of 168
    bytes did not fit in 16 MiB x 2 + 4 KiB per file)."""
    return 2 * spec.total_bytes + spec.files * 8192


@contextmanager
def subject_on(rig: Rig, spec: VolumeSpec, seed: int) -> Iterator[tuple[Subject, DataReport, DataReport]]:
    """The volume in both pools (identical data) and a reference snapshot to restore from; deleted after."""
    svc = rig.services
    name = f"bench-{spec.key}"
    stack = ExitStack()
    try:
        volume = svc.volumes.create(name, size_limit=size_limit(spec), who=SYSTEM)
        stack.callback(svc.volumes.delete, volume.id, svc.snapshots, who=SYSTEM)
        data = fill_volume(volume.path, spec, seed)
        api_volume = expect(
            rig.client.post("/api/v1/volumes", json={"name": name, "size_limit": size_limit(spec)}),
            201,
            "POST /api/v1/volumes",
        )
        stack.callback(delete_api_volume, rig.client, api_volume["id"])
        server_data = fill_volume(api_volume["path"], spec, seed)
        settle(rig)
        reference = svc.snapshots.take(TakeRequest(ref=volume.id, name="bench-reference"), who=SYSTEM)
        manifest = rig.pool.read_manifest(reference.id)
        subject = Subject(spec, volume, api_volume["id"], reference.id, manifest, (volume.path, api_volume["path"]))
        yield subject, data, server_data
    finally:
        with signals_deferred():
            stack.close()


def delete_api_volume(client: httpx.Client, volume_id: str) -> None:
    job = expect(client.delete(f"/api/v1/volumes/{volume_id}", params={"wait": 60}), 202, "DELETE volume")
    finish_job(client, job, "deleting a volume through the API")


# --- the run ---------------------------------------------------------------------------------------


def measure_volume(rig: Rig, spec: VolumeSpec, seed: int, args: argparse.Namespace, fs_result: FsResult) -> None:
    """Every operation on one volume, ``--warmup`` discarded rounds then ``--repeat`` recorded ones."""
    console: Console = args.console
    with subject_on(rig, spec, seed) as (subject, data, server_data):
        volume = VolumeResult(spec, data, server_data)
        fs_result.volumes.append(volume)
        api_notes: list[str] = []
        ops = all_ops(rig, subject, api_notes)
        broken: set[str] = set()
        started = time.monotonic()
        for round_no in range(-args.warmup, args.repeat):
            for op in ops:
                if op.name not in broken:
                    record_sample(rig, subject, op, volume, round_no >= 0, broken, console)
        volume.op(TAKE_API, "snapkeep").notes.extend(sorted(set(api_notes)))
        console.print(
            f"  {fs_result.fstype} {spec.label}: data made in {data.seconds:.1f} s, "
            f"measured in {time.monotonic() - started:.1f} s"
        )


def record_sample(
    rig: Rig, subject: Subject, op: Op, volume: VolumeResult, keep: bool, broken: set[str], console: Console
) -> None:
    """One sample; an operation that fails is noted and skipped for this volume, the run goes on."""
    try:
        elapsed_ms, side = run_sample(rig, subject, op)
    except Exception as exc:
        broken.add(op.name)
        volume.op(op.name, op.group).notes.append(f"FAILED: {exc!r}")
        console.print(f"  [red]{op.name} failed on {volume.spec.label}: {exc!r}[/red]")
        return
    if not keep:
        return
    result = volume.op(op.name, op.group)
    result.samples_ms.append(elapsed_ms)
    for name, value in (side or {}).items():
        result.add_side(name, value)


def measure_filesystem(fstype: str, args: argparse.Namespace, results: list[FsResult]) -> None:
    console: Console = args.console
    console.print(f"[bold]{fstype}[/bold]: making a {args.image_size} sparse image, mounting, starting serve")
    with rig_on(fstype, args.image_size, args.api_wait) as rig:
        fs_result = FsResult(fstype, args.image_size, rig.server_launcher)
        results.append(fs_result)
        console.print(f"  server: {rig.server_launcher} at {rig.server.url}")
        for seed, spec in enumerate(args.matrix):
            measure_volume(rig, spec, seed, args, fs_result)


def check_prerequisites(filesystems: list[str]) -> None:
    """Fail early with a plain message instead of deep in a mount helper."""
    if os.geteuid() != 0:
        raise SystemExit("this benchmark mounts loop filesystems: run it as root")
    tools = ["mount", "umount", "truncate", "cp", "rm"]
    tools += ["mkfs.btrfs", "btrfs"] if "btrfs" in filesystems else []
    tools += ["mkfs.xfs"] if "xfs" in filesystems else []
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.volume_snapshots", description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small matrix: 16/256 MiB x 10 files, 16 MiB x 1,000")
    size.add_argument("--full", action="store_true", help="full matrix (the default)")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="CI check that the benchmark still runs: one 16 MiB volume of 100 files, one round, no warm-up, "
        "a 4G image, results in a temporary directory",
    )
    parser.add_argument("--repeat", type=int, help="recorded rounds per volume (default 5; 1 with --smoke)")
    parser.add_argument("--warmup", type=int, help="discarded rounds per volume (default 1; 0 with --smoke)")
    parser.add_argument("--fs", default=",".join(FILESYSTEMS), help="filesystems, comma-separated")
    parser.add_argument("--image-size", help="sparse image size per filesystem (default 40G; 4G with --smoke)")
    parser.add_argument("--api-wait", type=float, default=30.0, help="?wait= for the API take (default 30)")
    parser.add_argument(
        "--out",
        help=f"JSON results (default {DEFAULT_OUT}; {QUICK_OUT} with --quick, a temporary file with --smoke, "
        "so as not to overwrite)",
    )
    parser.add_argument("--from-json", metavar="PATH", help="print the tables of a results file; measure nothing")
    args = parser.parse_args(argv)
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    smoke = args.mode == "smoke"
    args.repeat = args.repeat if args.repeat is not None else 1 if smoke else 5
    args.warmup = args.warmup if args.warmup is not None else 0 if smoke else 1
    args.image_size = args.image_size or ("4G" if smoke else "40G")
    args.filesystems = [f.strip() for f in args.fs.split(",") if f.strip()]
    if any(f not in FILESYSTEMS for f in args.filesystems) or args.repeat < 1 or args.warmup < 0:
        parser.error(f"--fs takes {', '.join(FILESYSTEMS)}; --repeat >= 1; --warmup >= 0")
    args.matrix = {"smoke": SMOKE_MATRIX, "quick": QUICK_MATRIX, "full": FULL_MATRIX}[args.mode]
    if args.out is None and smoke:
        args.out = os.path.join(tempfile.mkdtemp(prefix="snapkeep-bench-"), "volume_snapshots-smoke.json")
    args.out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    return args


def parameters(args: argparse.Namespace) -> dict[str, object]:
    return {
        "mode": args.mode,
        "argv": sys.argv[1:],
        "repeat": args.repeat,
        "warmup_rounds_discarded": args.warmup,
        "filesystems": args.filesystems,
        "image_size": args.image_size,
        "api_wait_s": args.api_wait,
        "matrix": [
            {
                "total_bytes": s.total_bytes,
                "files": s.files,
                "label": s.label,
                "data_method": describe_method(s),
            }
            for s in args.matrix
        ],
        "timing": "time.perf_counter_ns around the action only; prepare/cleanup untimed",
        "settle_before_each_sample": (
            "syncfs(mountpoint); on btrfs also BTRFS_IOC_SYNC until no deleted subvolume is left (untimed)"
        ),
        "page_cache": "warm: no cache drop; every entry of both live volumes lstat-ed before each sample",
        "http_client": "httpx.Client with keep-alive, 127.0.0.1",
        "p90": "statistics.quantiles(n=10, method='inclusive')[-1]",
    }


def print_saved(path: str) -> int:
    document, results = load_json(path)
    console = make_console()
    params, machine = document["parameters"], document["machine"]
    console.print(
        f"{path}: {params['mode']} run of {machine['date']} on {machine['cpu_count']} CPU(s), "
        f"kernel {machine['kernel']}, repeat {params['repeat']}, complete: {params.get('complete')}"
    )
    print_results(console, results)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return print_saved(args.from_json)
    check_prerequisites(args.filesystems)
    install_signal_handlers()
    args.console = make_console()
    machine = machine_info(PROJECT_ROOT)
    results: list[FsResult] = []
    complete = False
    try:
        for fstype in args.filesystems:
            measure_filesystem(fstype, args, results)
        complete = True
    finally:
        write_json(args.out, machine, {**parameters(args), "complete": complete}, results)
        args.console.print(f"results written to {args.out}" + ("" if complete else " (INCOMPLETE run)"))
    print_results(args.console, results)
    failed = failures((f"{fs.fstype} {v.spec.label}", v.ops) for fs in results for v in fs.volumes)
    for failure in failed:
        args.console.print(f"[red]FAILED: {failure}[/red]")
    return 1 if failed else 0


def run() -> int:
    """Entry point: an interrupted run says so and exits 130, after every clean-up has run."""
    try:
        return main()
    except KeyboardInterrupt as exc:
        why = str(exc) or "Ctrl-C"
        print(f"interrupted ({why}); mounts, server and temporary files cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
