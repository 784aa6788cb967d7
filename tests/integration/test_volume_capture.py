"""Volume snapshots are one instant (SPEC §2), cannot be redirected by a NAS user's symlink, and hold
a volume still without ever leaving it held; on XFS each volume is its own filesystem in an image."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.errors import InvalidInput, PoolError
from snapkeep.model.principal import SYSTEM
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage import rcu
from snapkeep.storage.pool import Pool
from tests.chain_writer import gaps, make_filler
from tests.conftest import Mounted, Server, make_traversable_tmp, start_server, stop_server, volume_restored_as_new
from tests.writer import torn_records

SWAPPER = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "a, b = sys.argv[1].encode(), sys.argv[2].encode()\n"
    "while True:\n"
    "    libc.renameat2(-100, a, -100, b, 2)\n"
)


def loop_devices_of(root: str) -> list[str]:
    out = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"], capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip().startswith(root)]


def mounts_under(root: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(root.rstrip("/") + "/")]


def writes_within(path: str, seconds: float) -> bool:
    """True if a child process can create a file at ``path`` in time (a frozen filesystem blocks it)."""
    child = subprocess.Popen([sys.executable, "-c", f"open({path!r}, 'w').write('x')"])
    try:
        child.wait(seconds)
        return child.returncode == 0
    except subprocess.TimeoutExpired:
        return False
    finally:
        if child.poll() is None:
            child.kill()


@pytest.fixture
def process() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_snapshots_without_quiesce_each_show_one_instant(
    services: Services, tmp_path: Path, process: list[subprocess.Popen[bytes]]
) -> None:
    """A writer appends numbered records across files and saves a document by rename, without pause;
    every snapshot holds records 0..m with none missing, and the document that went with them.

    An image volume is frozen for its capture, so even buffered writes keep their order. A btrfs snapshot is
    the filesystem at one commit, as a power cut would leave it: buffered data not yet written back may be
    missing in any order (this test saw it), so there the writer makes each step durable, as an application
    that needs order across files does."""
    vol = services.volumes.create(f"chain-{tmp_path.name}", 1 << 30, who=SYSTEM)
    durable = [] if services.pool.is_image_volume(vol.dataset) else ["--durable"]
    make_filler(vol.path, 3000)
    process.append(subprocess.Popen([sys.executable, "-m", "tests.chain_writer", vol.path, *durable]))
    while gaps(vol.path)[1] < 200:
        time.sleep(0.01)
    snaps = [services.snapshots.take(TakeRequest(ref=vol.id, name=f"busy-{i}"), who=SYSTEM) for i in range(10)]
    process[0].kill()
    for snap in snaps:
        assert not snap.quiesced
        with services.pool.snapshot_tree(snap.id, vol.dataset) as root:
            missing, top, doc = gaps(root)
        assert top > 0 and missing == [], f"snapshot {snap.name}: records {missing[:5]}... missing below {top}"
        assert doc in (top, top - 1), f"snapshot {snap.name}: doc {doc} does not go with record {top}"


def test_a_symlink_swapped_in_during_a_take_never_reads_another_volume(
    services: Services, tmp_path: Path, process: list[subprocess.Popen[bytes]]
) -> None:
    victim = services.volumes.create(f"victim-{tmp_path.name}", 1 << 30, who=SYSTEM)
    secret = f"SECRET {tmp_path.name}"
    for i in range(50):
        Path(victim.path, f"secret-{i}.txt").write_text(secret)
    attacker = services.volumes.create(f"attacker-{tmp_path.name}", 1 << 30, who=SYSTEM)
    os.mkdir(os.path.join(attacker.path, "x"))
    for i in range(50):
        Path(attacker.path, "x", f"mine-{i}.txt").write_text("harmless")
    os.symlink(victim.path, os.path.join(attacker.path, "link"))
    swap = [sys.executable, "-c", SWAPPER, os.path.join(attacker.path, "x"), os.path.join(attacker.path, "link")]
    process.append(subprocess.Popen(swap))
    time.sleep(0.2)
    for i in range(30):
        snap = services.snapshots.take(TakeRequest(ref=attacker.id, name=f"swapped-{i}"), who=SYSTEM)
        with services.pool.snapshot_tree(snap.id, attacker.dataset) as root:
            for dirpath, _dirs, files in os.walk(root):
                for name in files:
                    path = os.path.join(dirpath, name)
                    if not os.path.islink(path):
                        assert Path(path).read_text() != secret, f"snapshot {i} read {name} of another volume"


def test_capture_that_fails_leaves_the_volume_thawed(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vol = services.volumes.create(f"fails-{tmp_path.name}", 1 << 30, who=SYSTEM)
    if not services.pool.is_image_volume(vol.dataset):
        pytest.skip("only a volume with a filesystem of its own is frozen")
    from snapkeep.storage import pool as pool_module

    def broken_clone(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "injected clone failure", dst)

    monkeypatch.setattr(pool_module, "clone_file", broken_clone)
    for quiesce in (True, False):
        with pytest.raises(PoolError, match="injected"):
            services.snapshots.take(TakeRequest(ref=vol.id, name=f"broken-{quiesce}", quiesce=quiesce), who=SYSTEM)
        assert writes_within(os.path.join(vol.path, f"after-{quiesce}"), 10), "the volume was left frozen"
    assert [p for p in os.listdir(services.settings.run_dir) if p.startswith("volume-freeze-")] == []
    assert services.pool.list_staging() == []


def test_quiesced_take_through_the_api_has_no_torn_record(server: Server, tmp_path: Path) -> None:
    with server.client() as api:
        vol = api.post("/api/v1/volumes", json={"name": f"api-q-{tmp_path.name}", "size_limit": "1G"}).json()
        log = tmp_path / "writes.log"
        writer = subprocess.Popen([sys.executable, "-m", "tests.writer", os.path.join(vol["path"], "r.bin"), str(log)])
        try:
            while not log.exists() or len(log.read_text().splitlines()) < 50:
                time.sleep(0.01)
            job = api.post(
                "/api/v1/snapshots", params={"wait": 60}, json={"volume": vol["name"], "name": "q", "quiesce": True}
            ).json()
            assert job["status"] == "succeeded", job
        finally:
            writer.kill()
            writer.wait()
        snap = api.get("/api/v1/snapshots", params={"volume": vol["name"], "name": "q"}).json()[0]
    assert snap["quiesced"] is True and snap["quiesce_window_ms"] is not None
    with Pool.open(server.pool_dir).snapshot_tree(snap["id"], f"volume-{vol['id']}") as root:
        assert os.path.getsize(os.path.join(root, "r.bin")) > 0
        assert torn_records(os.path.join(root, "r.bin")) == []


def test_service_killed_while_a_volume_is_frozen_is_thawed_by_its_successor(fs: Mounted, tmp_path: Path) -> None:
    """SIGKILL the service while it holds a volume frozen (caught with SIGSTOP once the volume refuses a
    write); the restarted service thaws it at start-up, and leaves the RCU knob the freeze may have turned
    on (storage/rcu.py) as it was."""
    knob_before = rcu.before()
    data_dir = make_traversable_tmp("snapkeep-frozen-kill-")
    server = start_server(data_dir, fs.new_dir("frozen-kill-pool"))
    run_dir = os.path.join(data_dir, "run")
    try:
        with server.client() as api:
            vol = api.post("/api/v1/volumes", json={"name": "frozen", "size_limit": "1G"}).json()
        if not Pool.open(server.pool_dir).is_image_volume(f"volume-{vol['id']}"):
            pytest.skip("only a volume with a filesystem of its own is frozen")
        caught = False
        for attempt in range(40):
            with server.client() as api:
                api.post("/api/v1/snapshots", json={"volume": "frozen", "name": f"t{attempt}", "quiesce": True})
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not caught:
                if any(n.startswith("volume-freeze-") for n in os.listdir(run_dir)):
                    os.kill(server.process.pid, signal.SIGSTOP)
                    if writes_within(os.path.join(vol["path"], f"probe-{attempt}"), 0.5):
                        os.kill(server.process.pid, signal.SIGCONT)
                        break
                    caught = True
                time.sleep(0.0002)
            if caught:
                break
            time.sleep(0.2)
        assert caught, "never caught the service with the volume frozen"
        (intent,) = [n for n in os.listdir(run_dir) if n.startswith("volume-freeze-") and n.endswith(".json")]
        with open(os.path.join(run_dir, intent)) as f:
            assert json.load(f).get("rcu_expedited") == ("0" if knob_before == "0" else None)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        assert not writes_within(os.path.join(vol["path"], "while-dead"), 0.5)
        server = start_server(data_dir, server.pool_dir)
        assert writes_within(os.path.join(vol["path"], "after-restart"), 10), "the successor did not thaw"
        assert [n for n in os.listdir(run_dir) if n.startswith("volume-freeze-")] == []
        assert rcu.before() == knob_before
    finally:
        stop_server(server)


def fill(directory: str, name: str) -> int:
    """Write one file until the volume refuses; the bytes written."""
    written = 0
    block = os.urandom(1 << 16)
    fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        while True:
            try:
                written += os.write(fd, block)
            except OSError as exc:
                assert exc.errno in (errno.ENOSPC, errno.EDQUOT), exc
                return written
    finally:
        os.fsync(fd)
        os.close(fd)


def used(path: str) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_size_limit_holds_and_changes_on_a_live_volume(services: Services, tmp_path: Path) -> None:
    if not services.pool.driver.limits_enforced:
        pytest.skip("this driver does not enforce limits yet")
    limit = 64 << 20
    vol = services.volumes.create(f"limited-{tmp_path.name}", limit, who=SYSTEM)
    pool_free = services.pool.free_bytes()
    fill(vol.path, "a")
    assert abs(_content(vol.path) - limit) <= limit // 100, "stopped away from the limit"
    assert services.pool.free_bytes() > pool_free - 2 * limit, "the rest of the pool is affected"

    services.volumes.update(vol.id, size_limit=96 << 20, who=SYSTEM)
    fill(vol.path, "b")
    assert abs(_content(vol.path) - (96 << 20)) <= (96 << 20) // 100

    with pytest.raises(InvalidInput, match="below"):
        services.volumes.update(vol.id, size_limit=32 << 20, who=SYSTEM)
    assert services.volumes.get(vol.id, who=SYSTEM).size_limit == 96 << 20
    os.unlink(os.path.join(vol.path, "a"))
    os.unlink(os.path.join(vol.path, "b"))
    services.volumes.update(vol.id, size_limit=32 << 20, who=SYSTEM)
    fill(vol.path, "c")
    assert abs(_content(vol.path) - (32 << 20)) <= (32 << 20) // 100

    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="at-32m"), who=SYSTEM)
    services.volumes.update(vol.id, size_limit=48 << 20, who=SYSTEM)
    services.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)
    fill(vol.path, "d")
    assert abs(_content(vol.path) - (48 << 20)) <= (48 << 20) // 100, "the restore did not keep the limit"

    copy = volume_restored_as_new(services, snap.id, f"limited-copy-{tmp_path.name}")
    assert copy.size_limit == 32 << 20
    try:
        written = fill(copy.path, "e")
    except OSError as exc:  # full already: the snapshot was taken at the limit
        assert exc.errno in (errno.ENOSPC, errno.EDQUOT)
        written = 0
    assert written <= (32 << 20) // 100 and abs(_content(copy.path) - (32 << 20)) <= (32 << 20) // 100


def _content(path: str) -> int:
    """What counts against the limit: everything the volume's users hold (the reserve excluded)."""
    total = 0
    for dirpath, dirs, files in os.walk(path):
        if dirpath == path and ".snapkeep" in dirs:
            dirs.remove(".snapkeep")
        total += sum(os.lstat(os.path.join(dirpath, n)).st_blocks * 512 for n in files)
    return total


def test_browse_restore_with_a_file_open_restore_as_new_and_delete(services: Services, tmp_path: Path) -> None:
    root = services.pool.root
    vol = services.volumes.create(f"life-{tmp_path.name}", 1 << 30, who=SYSTEM)
    Path(vol.path, "kept.txt").write_text("at snapshot time\n")
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="one"), who=SYSTEM)
    loops = loop_devices_of(root)
    with services.pool.snapshot_tree(snap.id, vol.dataset) as frozen:
        assert Path(frozen, "kept.txt").read_text() == "at snapshot time\n"
        with pytest.raises(OSError):
            Path(frozen, "new.txt").write_text("snapshots are read-only")
    assert mounts_under(os.path.join(root, "staging")) == [] and loop_devices_of(root) == loops
    assert services.files.browse(snap.id, who=SYSTEM)  # through the service too
    assert mounts_under(os.path.join(root, "staging")) == []

    Path(vol.path, "kept.txt").write_text("changed\n")
    holder = open(os.path.join(vol.path, "open.log"), "w")  # noqa: SIM115 (held open across the restore)
    try:
        holder.write("before\n")
        holder.flush()
        services.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)
        assert Path(vol.path, "kept.txt").read_text() == "at snapshot time\n"
        assert not os.path.exists(os.path.join(vol.path, "open.log"))
        holder.write("still writable after the restore\n")
        holder.flush()
    finally:
        holder.close()
    assert services.pool.list_staging() == []
    assert mounts_under(os.path.join(root, "staging")) == []

    copy = volume_restored_as_new(services, snap.id, f"life-copy-{tmp_path.name}")
    assert Path(copy.path, "kept.txt").read_text() == "at snapshot time\n"
    Path(copy.path, "only-in-copy").write_text("x")
    assert not os.path.exists(os.path.join(vol.path, "only-in-copy"))

    for volume in (copy, vol):
        services.volumes.delete(volume.id, services.snapshots, who=SYSTEM)
        assert volume.dataset not in services.pool.list_datasets()
        assert mounts_under(services.pool.dataset_path(volume.dataset)) == []
        assert not os.path.lexists(services.pool.dataset_path(volume.dataset))
    assert [d for d in loop_devices_of(root) if "datasets" in d or "staging" in d] == []


def test_restore_as_new_cut_short_leaves_nothing_under_datasets(services: Services, tmp_path: Path) -> None:
    """A process killed while it clones a snapshot into a new volume: the half-made copy is in staging,
    which the next start-up removes; nothing appears under datasets/."""
    vol = services.volumes.create(f"source-{tmp_path.name}", 1 << 30, who=SYSTEM)
    Path(vol.path, "f").write_text("data")
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="src"), who=SYSTEM)
    before = services.pool.list_datasets()
    if not services.pool.is_image_volume(vol.dataset):
        pytest.skip("a btrfs clone is one subvolume snapshot")
    code = (
        "import sys, time\n"
        "from snapkeep.storage import pool as p\n"
        "def slow(src, dst):\n"
        "    open(dst, 'wb').write(b'partial')\n"
        "    print('cloning', flush=True)\n"
        "    time.sleep(60)\n"
        "p.clone_file = slow\n"
        "p.Pool.open(sys.argv[1]).clone_dataset(sys.argv[2], sys.argv[3], 'volume-cut-short')\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, services.pool.root, snap.id, vol.dataset], stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"cloning\n"
    finally:
        child.kill()
        child.wait()
    assert services.pool.list_datasets() == before
    assert services.pool.list_staging() == ["clone-volume-cut-short"]
    report = services.reconcile()
    assert "clone-volume-cut-short" in report.staging_removed and services.pool.list_staging() == []


def test_a_directory_volume_made_before_images_keeps_working(pool: Pool) -> None:
    """XFS volumes made before images are plain directories: captured file by file as before, restored,
    cloned and browsed; limits are not enforced on them (nothing migrates them behind the operator's back)."""
    if not pool.driver.volume_images:
        pytest.skip("only XFS pools had directory volumes")
    legacy = "volume-legacy"
    os.mkdir(pool.dataset_path(legacy), 0o755)
    Path(pool.dataset_path(legacy), "f.txt").write_text("old layout\n")
    assert not pool.is_image_volume(legacy)
    assert pool.mount_volumes() == []
    pool.set_size_limit(legacy, 1 << 20)  # accepted, not enforced
    pool.capture("legacy-snap", [legacy])
    pool.seal("legacy-snap", b"{}")
    Path(pool.dataset_path(legacy), "f.txt").write_text("changed\n")
    with pool.snapshot_tree("legacy-snap", legacy) as frozen:
        assert Path(frozen, "f.txt").read_text() == "old layout\n"
    pool.restore_dataset("legacy-snap", legacy, "op-legacy")
    assert Path(pool.dataset_path(legacy), "f.txt").read_text() == "old layout\n"
    copy = pool.clone_dataset("legacy-snap", legacy, "volume-legacy-copy")
    assert Path(copy, "f.txt").read_text() == "old layout\n" and not pool.is_image_volume("volume-legacy-copy")
    for dataset in (legacy, "volume-legacy-copy"):
        pool.destroy_dataset(dataset)
    pool.delete_snapshot("legacy-snap")
    assert pool.list_datasets() == [] and pool.list_staging() == []


def test_a_version_1_pool_is_upgraded_and_an_unknown_version_refused(pool: Pool) -> None:
    import json

    marker = os.path.join(pool.root, "snapkeep-pool.json")
    assert json.loads(Path(marker).read_text())["pool_id"] == pool.identity != ""
    Path(marker).write_text(json.dumps({"format_version": 1, "driver": pool.driver.name}))
    upgraded = Pool.open(pool.root)
    written = 3 if pool.driver.copy_per_directory else 2  # btrfs captures in lanes (format 3); XFS as in 2
    info = json.loads(Path(marker).read_text())
    assert info["format_version"] == written
    assert info["pool_id"] == upgraded.identity != pool.identity  # a pool from before ids gets one, once
    assert Pool.open(pool.root).identity == upgraded.identity
    Path(marker).write_text(json.dumps({"format_version": written, "driver": pool.driver.name}))  # before ids
    given = Pool.open(pool.root).identity
    assert given and json.loads(Path(marker).read_text())["pool_id"] == given
    Path(marker).write_text(json.dumps({"format_version": 4, "driver": pool.driver.name}))
    with pytest.raises(PoolError, match="format_version 4"):
        Pool.open(pool.root)


def test_early_clone_caught_up_while_frozen_equals_the_volume(pool: Pool) -> None:
    """A take clones the image before freezing and, frozen, catches up with what changed since: data
    rewritten, files deleted (their blocks discarded from the image), files created. The snapshot equals
    the volume at the freeze and is a clean filesystem."""
    from tests.treeutil import make_rich_tree, tree_signature

    path = pool.create_dataset("volume-caught-up")
    if not pool.is_image_volume("volume-caught-up"):
        pytest.skip("only image volumes are cloned early")
    make_rich_tree(path)
    for i in range(20):
        Path(path, f"big-{i}").write_bytes(os.urandom(1 << 20))
    os.sync()
    pool.prepare_capture("early", ["volume-caught-up"])
    with open(os.path.join(path, "big-3"), "r+b") as f:
        f.seek(4096 * 7)
        f.write(os.urandom(3 * 4096))
    for i in range(10, 20):
        os.unlink(os.path.join(path, f"big-{i}"))
    Path(path, "new-after-early-clone").write_bytes(os.urandom(2 << 20))
    pool.capture("early", ["volume-caught-up"])
    pool.seal("early", b"{}")
    expected = tree_signature(path)
    image = pool.snapshot_data_path("early", "volume-caught-up")
    check = subprocess.run(["xfs_repair", "-n", image], capture_output=True, text=True)
    report = (check.stdout + check.stderr).lower()  # lazy counters (sb_fdblocks) differ in any frozen image
    assert not any(word in report for word in ("would", "bad ", "corrupt", "invalid")), report
    with pool.snapshot_tree("early", "volume-caught-up") as frozen:
        assert tree_signature(frozen) == expected


def test_restore_whose_mount_switch_fails_leaves_the_volume_as_it_was(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restored image cannot be mounted after the images were exchanged (say the pool is too full for
    its log): the restore fails and the volume keeps its image, its mount and its data."""
    vol = services.volumes.create(f"nomove-{tmp_path.name}", 1 << 30, who=SYSTEM)
    if not services.pool.is_image_volume(vol.dataset):
        pytest.skip("only image volumes are switched by a mount")
    Path(vol.path, "f").write_text("old\n")
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    Path(vol.path, "f").write_text("live\n")
    from snapkeep.storage import images

    mount, refusals = images.mount, [1]

    def refused_once(image: str, mountpoint: str, *, readonly: bool = False) -> None:
        if refusals:
            refusals.pop()
            raise PoolError("mount refused (injected)")
        mount(image, mountpoint, readonly=readonly)

    monkeypatch.setattr(images, "mount", refused_once)
    with pytest.raises(PoolError, match="injected"):
        services.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)
    assert Path(vol.path, "f").read_text() == "live\n"
    assert images.mounted_from(vol.path, images.image_of(vol.path))
    assert services.pool.list_staging() == [] and mounts_under(os.path.join(services.pool.root, "staging")) == []
