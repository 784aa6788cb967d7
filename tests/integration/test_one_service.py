"""One service per data directory and per pool. A second ``snapkeep serve`` on either would settle what it
takes for interrupted operations of the first (resume guests it paused, thaw volumes it froze, discard the
snapshot it is taking) and hold guards the first cannot see: it is refused before it opens anything, and
the first goes on serving. A service killed with ``kill -9`` holds nothing (the fault tests restart one)."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.conftest import Server, free_port, make_traversable_tmp


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
