"""Quiesced volume snapshots with a real writer process: no torn record, the writer blocked only
inside the recorded window, and resumed afterwards (also by the reconciler after a crash)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.engine.holds import WritersPaused
from snapkeep.model.principal import SYSTEM
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from tests.writer import torn_records


def is_stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


def completions(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.fixture
def writer(services: Services, tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    vol = services.volumes.create(f"written-{tmp_path.name}", 1 << 30, who=SYSTEM)
    target = os.path.join(vol.path, "records.bin")
    log = tmp_path / "writes.log"
    proc = subprocess.Popen([sys.executable, "-m", "tests.writer", target, str(log)])
    while not log.exists() or len(completions(log)) < 50:
        time.sleep(0.01)
    yield vol.id, log, proc
    proc.kill()
    proc.wait()


def test_quiesced_snapshot_holds_no_torn_record_and_blocks_only_in_window(
    services: Services, writer: tuple[str, Path, subprocess.Popen[bytes]]
) -> None:
    volume_id, log, proc = writer
    before = time.monotonic_ns()
    snap = services.snapshots.take(TakeRequest(ref=volume_id, name="quiet", quiesce=True), who=SYSTEM)
    after = time.monotonic_ns()
    time.sleep(0.2)
    assert snap.quiesced and snap.quiesce_window_ms is not None and snap.quiesce_note is None

    with services.pool.snapshot_tree(snap.id, f"volume-{volume_id}") as frozen:
        snapshot_file = os.path.join(frozen, "records.bin")
        assert os.path.getsize(snapshot_file) > 0
        assert torn_records(snapshot_file) == []

    times = completions(log)
    gaps = [(b - a, a, b) for a, b in itertools.pairwise(times) if a < after and b > before]
    longest, start, end = max(gaps)
    window_ns = snap.quiesce_window_ms * 1e6
    assert longest <= window_ns + 50e6, "the writer was blocked longer than the recorded window"
    assert longest >= 0.3 * window_ns, "the writer was not blocked during the window"
    assert before <= end and start <= after
    assert times[-1] > after, "the writer did not resume"
    assert not is_stopped(proc.pid)


def test_crash_consistent_snapshot_without_quiesce_leaves_writer_alone(
    services: Services, writer: tuple[str, Path, subprocess.Popen[bytes]]
) -> None:
    volume_id, _log, proc = writer
    snap = services.snapshots.take(TakeRequest(ref=volume_id, name="crash"), who=SYSTEM)
    assert not snap.quiesced and snap.quiesce_window_ms is None
    assert not is_stopped(proc.pid)


def test_reconciler_resumes_writers_a_crash_left_stopped(
    services: Services, writer: tuple[str, Path, subprocess.Popen[bytes]]
) -> None:
    volume_id, _log, proc = writer
    volume = services.volumes.get(volume_id, who=SYSTEM)
    WritersPaused([volume.path], 5, services.intents, "crashed").acquire()  # never released: a crash
    assert is_stopped(proc.pid)
    assert os.listdir(services.settings.run_dir) == ["quiesce-crashed.json"]
    report = services.reconcile()
    assert report.resumed_processes == 1
    time.sleep(0.05)
    assert not is_stopped(proc.pid)
    assert os.listdir(services.settings.run_dir) == []


@pytest.fixture
def unpausable_writer(services: Services, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A writer of the volume stuck in uninterruptible sleep (writing to another, frozen filesystem), so
    SIGSTOP cannot take effect: the real way a pause times out."""
    from tests.conftest import mount_fs, unmount_fs

    other = mount_fs("btrfs", "200M")
    vol = services.volumes.create(f"stuck-{tmp_path.name}", 1 << 30, who=SYSTEM)
    code = (
        "import os, sys, time\n"
        "held = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)\n"
        "time.sleep(0.3)\n"
        "open(sys.argv[2], 'w').write('blocked here while frozen')\n"
        "time.sleep(60)\n"
    )
    subprocess.run(["fsfreeze", "-f", other.mountpoint], check=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, os.path.join(vol.path, "held"), os.path.join(other.mountpoint, "x")]
    )
    try:
        time.sleep(1.0)
        yield vol.id, proc
    finally:
        subprocess.run(["fsfreeze", "-u", other.mountpoint], check=True)
        proc.kill()
        proc.wait()
        unmount_fs(other)


def test_writer_that_cannot_pause_require_fails_fallback_records_why(
    services: Services, unpausable_writer: tuple[str, subprocess.Popen[bytes]]
) -> None:
    from snapkeep.errors import QuiesceFailed
    from snapkeep.model.types import QuiescePolicy

    volume_id, proc = unpausable_writer
    if services.pool.is_image_volume(services.volumes.get(volume_id, who=SYSTEM).dataset):
        snap = services.snapshots.take(TakeRequest(ref=volume_id, name="frozen", quiesce=True), who=SYSTEM)
        assert snap.quiesced, "a volume of its own is frozen, whatever its writers do"
        return
    services.snapshots.kind("volume")._timeout = 0.5  # type: ignore[attr-defined]
    with pytest.raises(QuiesceFailed, match="did not pause"):
        services.snapshots.take(
            TakeRequest(ref=volume_id, name="must", quiesce=True, quiesce_policy=QuiescePolicy.REQUIRE), who=SYSTEM
        )
    assert services.snapshots.listing(volume_id, who=SYSTEM) == []
    assert services.pool.list_staging() == []

    snap = services.snapshots.take(TakeRequest(ref=volume_id, name="may", quiesce=True), who=SYSTEM)
    assert not snap.quiesced and snap.quiesce_note and "did not pause" in snap.quiesce_note
    assert not is_stopped(proc.pid)


@pytest.mark.parametrize("server", ["nfsd", "ksmbd"])
def test_volume_served_by_the_kernel_is_never_claimed_quiesced(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    from snapkeep.errors import QuiesceFailed
    from snapkeep.model.types import QuiescePolicy
    from snapkeep.writers import pause

    vol = services.volumes.create(f"{server}-{tmp_path.name}", 1 << 30, who=SYSTEM)
    if server == "nfsd":
        (tmp_path / "etab").write_text(f"{vol.path}\t*(rw,sync,no_subtree_check)\n")
        monkeypatch.setattr(pause, "NFS_EXPORT_TABLES", (str(tmp_path / "etab"),))
    else:  # ksmbd in the kernel (a stand-in for its sysfs folder) sharing the volume
        (tmp_path / "ksmbd.conf").write_text(f"[docs]\n\tpath = {vol.path}\n")
        (tmp_path / "ksmbd-control").mkdir()
        monkeypatch.setattr(pause, "KSMBD_CONFIGS", (str(tmp_path / "ksmbd.conf"),))
        monkeypatch.setattr(pause, "KSMBD_LOADED", (str(tmp_path / "ksmbd-control"),))
    said = {"nfsd": "kernel NFS", "ksmbd": "SMB server"}[server]
    if services.pool.is_image_volume(vol.dataset):  # frozen: the kernel server's writes are blocked too
        assert services.snapshots.take(TakeRequest(ref=vol.id, name="frozen", quiesce=True), who=SYSTEM).quiesced
        return
    with pytest.raises(QuiesceFailed, match=said):
        services.snapshots.take(
            TakeRequest(ref=vol.id, name="must", quiesce=True, quiesce_policy=QuiescePolicy.REQUIRE), who=SYSTEM
        )
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="may", quiesce=True), who=SYSTEM)
    assert not snap.quiesced and snap.quiesce_note and said in snap.quiesce_note
