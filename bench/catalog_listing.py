"""How listing and sweeping cost with a catalog the size schedules make (issue 9, item 7).

A real ``snapkeep serve`` on a loop-mounted btrfs pool gets ``VOLUMES`` real volumes (through the API);
``SNAPSHOTS`` snapshot rows are then written straight into its catalog, as a test helper can (taking 2,000
real snapshots costs minutes and says nothing about listing them). What is measured goes through the public
paths only: ``GET /api/v1/snapshots`` (every page of it, as a client follows the cursor), ``snapkeep snapshot
list`` (a new process, as a person runs it) and ``Snapshots.sweep_expired`` with nothing due, in process on
the same catalog once the server has stopped. Each is the best of ``ROUNDS``, except the CLI: the median of
``CLI_RUNS`` runs, its wall time and its CPU time (user + system of the CLI's process; on a shared machine
the CPU time moves less than the wall time), with the 1-minute load beside them.

    .venv/bin/python -m bench.catalog_listing
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta

from snapkeep.catalog.db import Database, make_engine
from snapkeep.catalog.tables import SnapshotRow
from snapkeep.model.principal import SYSTEM
from snapkeep.model.timespec import utcnow
from snapkeep.storage.pool import Pool
from tests.conftest import build_services, make_traversable_tmp, mount_fs, start_server, stop_server, unmount_fs

VOLUMES = 200
SNAPSHOTS = 2000
ROUNDS = 3
CLI_RUNS = 7
# The CLI in one process, timed apart: its imports, then `snapshot list` (fetch every page, print the table).
SPLIT = """
import sys, time
start = time.perf_counter()
from snapkeep.cli.main import main
imported = time.perf_counter()
sys.argv = ["snapkeep", "snapshot", "list"]
try:
    main()
except SystemExit:
    pass
print(f"{(imported - start) * 1000:.0f} {(time.perf_counter() - imported) * 1000:.0f}", file=sys.stderr)
"""


def _rows(volumes: list[dict[str, str]]) -> list[SnapshotRow]:
    now = utcnow()
    rows = []
    for i in range(SNAPSHOTS):
        vol = volumes[i % len(volumes)]
        rows.append(
            SnapshotRow(
                id=str(uuid.uuid4()),
                kind="volume",
                subject_type="volume",
                subject_id=vol["id"],
                subject_name=vol["name"],
                owner_tenant_id=None,
                name=f"daily_{i:05d}",
                description="",
                created_at=now - timedelta(minutes=SNAPSHOTS - i),
                expires_at=None if i % 10 == 0 else now + timedelta(days=7),
                origin="manual",
                status="ready",
            )
        )
    return rows


def _best(fn: object) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    mounted = mount_fs("btrfs", "2G")
    data_dir = make_traversable_tmp("snapkeep-bench-")
    pool_dir = mounted.new_dir("pool")
    server = start_server(data_dir, pool_dir)
    try:
        with server.client() as http:
            volumes = [
                http.post("/api/v1/volumes", json={"name": f"vol{i:03d}", "size_limit": "64M"}).json()
                for i in range(VOLUMES)
            ]
            db = Database(make_engine(f"sqlite:///{data_dir}/catalog.db"))
            with db.unit() as uow:
                uow.snapshots._s.add_all(_rows(volumes))  # a bench helper filling the catalog

            def every_page() -> tuple[int, int]:
                count = size = 0
                params: dict[str, object] = {"limit": 1000}
                while True:
                    response = http.get("/api/v1/snapshots", params=params)
                    response.raise_for_status()
                    count += len(response.json())
                    size += len(response.content)
                    cursor = response.headers.get("x-next-cursor")
                    if not cursor:
                        return count, size
                    params["cursor"] = cursor

            count, size = every_page()
            first = http.get("/api/v1/snapshots")
            print(
                f"GET /api/v1/snapshots (first page): {len(first.json())} rows, {len(first.content):,} bytes,"
                f" {_best(lambda: http.get('/api/v1/snapshots')) * 1000:.0f} ms"
            )
            print(f"GET /api/v1/snapshots (all pages): {count} rows, {size:,} bytes, {_best(every_page) * 1000:.0f} ms")
            cli = [sys.executable, "-m", "snapkeep.cli.main", "snapshot", "list"]

            def run_cli() -> tuple[float, float]:
                """(wall, CPU) seconds of one `snapkeep snapshot list`."""
                before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
                out = subprocess.run(cli, env=server.cli_env(), check=True, capture_output=True, text=True).stdout
                wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
                assert len(out.splitlines()) == SNAPSHOTS + 1, len(out.splitlines())
                return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

            runs = [run_cli() for _ in range(CLI_RUNS)]
            wall, cpu = (statistics.median(times) * 1000 for times in zip(*runs, strict=True))
            print(
                f"snapkeep snapshot list ({SNAPSHOTS} rows), median of {CLI_RUNS}: {wall:.0f} ms "
                f"(the CLI's CPU: {cpu:.0f} ms; load {os.getloadavg()[0]:.1f})"
            )
            split = subprocess.run(
                [sys.executable, "-c", SPLIT], env=server.cli_env(), check=True, capture_output=True, text=True
            ).stderr.split()
            print(f"  of which importing the CLI {split[0]} ms, the command itself {split[1]} ms")
            nothing = [sys.executable, "-c", "import snapkeep.cli.main"]
            print(
                f"  (python -c 'import snapkeep.cli.main' alone: "
                f"{_best(lambda: subprocess.run(nothing, check=True)) * 1000:.0f} ms)"
            )
    finally:
        stop_server(server)
    svc = build_services(data_dir, Pool.open(pool_dir))
    try:
        print(
            f"Snapshots.sweep_expired, nothing due: {_best(lambda: svc.snapshots.sweep_expired(SYSTEM)) * 1000:.1f} ms"
        )
    finally:
        svc.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        unmount_fs(mounted)


if __name__ == "__main__":
    main()
