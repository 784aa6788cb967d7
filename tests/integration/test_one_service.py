"""One service per data directory and per pool. A second ``snapkeep serve`` on either would settle what it
takes for interrupted operations of the first (resume guests it paused, thaw volumes it froze, discard the
snapshot it is taking) and hold guards the first cannot see: it is refused before it opens anything, and
the first goes on serving. A service killed with ``kill -9`` holds nothing (the fault tests restart one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from snapkeep.storage.detect import BTRFS_MAGIC, XFS_MAGIC, filesystem_magic
from snapkeep.storage.loopfs import is_mountpoint, unmount
from tests.conftest import Server, free_port, make_traversable_tmp, require, start_server, stop_server


def second_serve(server: Server, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "snapkeep.cli.main", "serve"],
        env={**server.env, "SNAPKEEP_LISTEN": f"127.0.0.1:{free_port()}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_first_serves(server: Server) -> None:
    assert server.process.poll() is None
    headers = {"Authorization": f"Bearer {server.token}"}
    assert httpx.get(f"{server.url}/api/v1/volumes", headers=headers, timeout=10).status_code == 200


def test_a_second_service_on_the_same_data_directory_is_refused(server: Server) -> None:
    done = second_serve(server)
    assert done.returncode == 4, done.stderr
    assert f"pid {server.process.pid}" in done.stderr and server.data_dir in done.stderr
    assert "reconciled" not in done.stderr  # refused before it settled anything
    assert_first_serves(server)


def test_a_second_service_on_the_same_pool_is_refused(server: Server) -> None:
    done = second_serve(server, SNAPKEEP_DATA_DIR=make_traversable_tmp("snapkeep-second-data-"))
    assert done.returncode == 4, done.stderr
    assert f"pid {server.process.pid}" in done.stderr and server.pool_dir in done.stderr
    assert "reconciled" not in done.stderr
    assert_first_serves(server)


def test_a_second_service_on_a_loop_pool_is_refused(libvirtd: None) -> None:
    """The demo's way: the data directory's filesystem cannot hold a pool, so ``--create-loop-pool`` mounts
    a btrfs image over the pool directory. The pool's lock must be taken on that image, not on the folder
    beneath it: a second service given that pool directory (with a data directory of its own) is refused."""
    data_dir = make_traversable_tmp("snapkeep-loop-data-")
    require(filesystem_magic(data_dir) not in (BTRFS_MAGIC, XFS_MAGIC), "a temporary folder that cannot hold a pool")
    first = start_server(data_dir, None, options=("--create-loop-pool",), pool_image_size="2G")
    try:
        assert is_mountpoint(first.pool_dir)
        done = second_serve(
            first,
            SNAPKEEP_DATA_DIR=make_traversable_tmp("snapkeep-second-data-"),
            SNAPKEEP_POOL_DIR=first.pool_dir,
        )
        assert done.returncode == 4, done.stderr
        assert f"pid {first.process.pid}" in done.stderr and first.pool_dir in done.stderr
        assert_first_serves(first)
    finally:
        stop_server(first)
        if is_mountpoint(first.pool_dir):
            unmount(first.pool_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def serve_on(data_dir: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SNAPKEEP_")}
    env |= {"SNAPKEEP_DATA_DIR": data_dir, "SNAPKEEP_LISTEN": f"127.0.0.1:{free_port()}"}
    return subprocess.run(
        [sys.executable, "-m", "snapkeep.cli.main", "serve"], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_lock_file_that_cannot_be_one_is_a_clear_refusal_and_no_symlink_is_followed(tmp_path: Path) -> None:
    """``service.lock`` a folder, a FIFO, or a symlink to someone's file: ``serve`` exits with
    ``invalid_input`` (2) naming the file, and writes nothing through the symlink."""
    as_folder, as_fifo, as_link = tmp_path / "folder", tmp_path / "fifo", tmp_path / "link"
    (as_folder / "service.lock").mkdir(parents=True)
    as_fifo.mkdir()
    os.mkfifo(as_fifo / "service.lock")
    as_link.mkdir()
    target = tmp_path / "someone's file"
    target.write_text("kept\n")
    (as_link / "service.lock").symlink_to(target)
    for data_dir in (as_folder, as_fifo, as_link):
        done = serve_on(str(data_dir))
        assert done.returncode == 2, done.stderr
        assert f"cannot lock the data directory {data_dir}" in done.stderr and "Traceback" not in done.stderr
        assert sorted(os.listdir(data_dir)) == ["service.lock"]  # refused before the catalog was made
    assert target.read_text() == "kept\n"
