"""Benchmark: the scheduler's paths at the scale schedules create (issue 9): 10,000 subjects x 4 periods with
1,000,000 snapshots in the catalog (SQLite).

Run from the project root, as root::

    .venv/bin/python -m bench.scheduler                 # 10,000 volumes, 1,000,000 snapshots
    .venv/bin/python -m bench.scheduler --smoke         # 20 volumes, 2,000 snapshots, one round (CI)
    .venv/bin/python -m bench.scheduler --copy-pool     # the pool a plain directory (copy mode), no loop mount
    .venv/bin/python -m bench.scheduler --out bench/results/scheduler.json

Set-up (not measured): services on a loop-mounted btrfs pool (quota groups on, as snapkeep runs it), one
profile of four periods (hourly kept 3 days, daily 14 days, weekly 35 days, monthly 274 days: 72 + 14 + 5 +
9 = 100 snapshots per subject) saved through ``Profiles.create``; then, written straight into the catalog in
bulk as a test helper can, ``--subjects`` volumes assigned to it (four schedule entries each, waiting for
the period's next slot as ``Profiles.assign`` would set it) and 100 ready snapshots per volume, all of
them unexpired at the start. The oldest hourly snapshot of every volume (the one that expires first) also
exists in the pool, as a read-only btrfs snapshot (with ``--copy-pool``: a directory tree) laid out as
docs/format.md says; the volumes' own datasets do not (nothing measured touches them). On btrfs each of these
costs a transaction commit to make, ~0.1 s on a busy machine: the full set-up then takes about 20 minutes.

Measured through the public paths only, each the median (and best) of ``--rounds`` unless it changes state:

- **due set**: ``ScheduleStore.due(now, BATCH)`` in its own unit of work, as one ``ScheduledTakes.run_due``
  pass reads it (not the takes): when nothing is due (between slots), and at the hour when every volume's
  hourly period is due at once (the pass reads one batch of ``BATCH``);
- **empty sweep**: ``Snapshots.sweep_expired`` when nothing has expired;
- **sweep deleting one per volume**: the clock moved an hour on, the oldest hourly snapshot of every volume
  has expired, and one ``Snapshots.sweep_expired`` deletes them all, catalog rows and pool snapshots (once;
  the btrfs cleaner frees their extents afterwards, in the background, as it always does);
- **a page**: ``GET /api/v1/snapshots?volume=<name>`` (100 rows, the default limit), a page of 50 after a
  cursor, and the first page of the unfiltered listing, through the real API app served by uvicorn over
  loopback HTTP in this process (as ``tests/integration/test_background_lane.py`` serves it);
- **memory**: the process's peak resident set (``VmHWM``) over the measured part, reset after set-up
  (``/proc/self/clear_refs``), and over the whole run.

For comparison, the same due set and empty sweep without the indexes they are written for: the catalog
scanned (``NOT INDEXED`` forced through the same SQL), which is what every pass would cost had the query
no index to use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from sqlalchemy import DateTime, bindparam, insert, text

from bench.report import machine_info
from snapkeep.api.app import create_app
from snapkeep.catalog.tables import AssignmentRow, ScheduleRow, SnapshotRow, VolumeRow
from snapkeep.model.principal import SYSTEM
from snapkeep.model.profile import Frequency, Period, Profile
from snapkeep.model.schedule import next_slot
from snapkeep.services.container import Services
from snapkeep.services.scheduled import BATCH
from snapkeep.storage.pool import MANIFEST, Pool
from tests.conftest import (
    SimulatedClock,
    build_services,
    free_port,
    make_traversable_tmp,
    mount_fs,
    unmount_fs,
)

NOW = datetime(2027, 6, 2, 0, 30, tzinfo=UTC)  # half an hour after the hourly and daily slots
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
# (period, spacing, how many each volume holds): retention = spacing x count, so all are unexpired at NOW
PERIODS = (
    ("hourly", HOUR, 72, Period("hourly", Frequency.HOURLY, retention=72 * HOUR)),
    ("daily", DAY, 14, Period("daily", Frequency.DAILY, retention=14 * DAY)),
    ("weekly", 7 * DAY, 5, Period("weekly", Frequency.WEEKLY, day_of_week=3, retention=35 * DAY)),
    ("monthly", 30 * DAY, 9, Period("monthly", Frequency.MONTHLY, day_of_month=2, retention=274 * DAY)),
)
TARGETS_MS = {"due set": 1000.0, "empty sweep": 1000.0, "page, one volume": 100.0}
TARGET_RSS_MB = 500.0
INSERT_CHUNK = 20_000


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def rounds(fn: Callable[[], object], count: int) -> dict[str, Any]:
    samples = [timed(fn) for _ in range(count)]
    return {"median_ms": statistics.median(samples), "best_ms": min(samples), "samples_ms": samples}


# -- set-up --------------------------------------------------------------------------------------------------


def fill_catalog(svc: Services, profile: Profile, subjects: int) -> tuple[list[dict[str, Any]], list[str]]:
    """``subjects`` volumes assigned to ``profile``, with their schedule and 100 snapshots each, in bulk;
    the volumes, and the ids of the snapshots that expire first (the oldest hourly one of each volume)."""
    periods = {p.name: p for p in profile.periods}
    volumes = [
        {
            "id": str(uuid.uuid4()),
            "name": f"vol{i:05d}",
            "description": "",
            "size_limit": 1 << 30,
            "owner_tenant_id": None,
            "dataset": f"vol-{i:05d}",
            "settings": {},
            "created_at": NOW - 400 * DAY,
        }
        for i in range(subjects)
    ]
    first_to_expire = []
    with svc.db.engine.begin() as conn:
        conn.execute(insert(VolumeRow), volumes)
        conn.execute(
            insert(AssignmentRow),
            [
                {
                    "profile_id": profile.id,
                    "subject_type": "volume",
                    "subject_id": v["id"],
                    "subject_name": v["name"],
                    "owner_tenant_id": None,
                    "created_at": NOW - 400 * DAY,
                }
                for v in volumes
            ],
        )
        slots = {p.id: next_slot(p, profile.timezone, NOW) for p in profile.periods}
        conn.execute(
            insert(ScheduleRow),
            [
                {"period_id": pid, "subject_type": "volume", "subject_id": v["id"], "slot": at, "next_due": at}
                for v in volumes
                for pid, at in slots.items()
            ],
        )
        rows: list[dict[str, Any]] = []
        for volume in volumes:
            for name, spacing, count, _ in PERIODS:
                newest = NOW.replace(minute=0) if spacing == HOUR else NOW.replace(hour=0, minute=0)
                for k in range(count):
                    created = newest - k * spacing
                    snap_id = str(uuid.uuid4())
                    if name == "hourly" and k == count - 1:
                        first_to_expire.append(snap_id)
                    rows.append(snapshot_row(snap_id, volume, periods[name].id, name, created, spacing * count))
            if len(rows) >= INSERT_CHUNK:
                conn.execute(insert(SnapshotRow), rows)
                rows = []
        if rows:
            conn.execute(insert(SnapshotRow), rows)
    with svc.db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))  # what a long-running catalog has had time to gather
    return volumes, first_to_expire


def snapshot_row(
    snap_id: str, volume: dict[str, Any], period_id: str, period: str, created: datetime, keep: timedelta
) -> dict[str, Any]:
    return {
        "id": snap_id,
        "kind": "volume",
        "subject_type": "volume",
        "subject_id": volume["id"],
        "subject_name": volume["name"],
        "owner_tenant_id": None,
        "name": f"{period}_{created:%Y%m%d_%H%M}",
        "description": "",
        "created_at": created,
        "expires_at": created + keep,
        "origin": f"bench/{period}",
        "quiesce_requested": False,
        "quiesced": False,
        "immutable": False,
        "unlocked_at": None,
        "private": False,
        "status": "ready",
        "period_id": period_id,
    }


def lay_out_pool_snapshots(pool: Pool, volumes: list[dict[str, Any]], snap_ids: list[str]) -> None:
    """Each snapshot as the pool holds one: ``snapshots/<id>/data/<dataset>``, a read-only snapshot (here of
    one small source dataset), beside its manifest; flushed once at the end."""
    source = pool.create_dataset("bench-source")
    with open(os.path.join(source, "file"), "wb") as f:
        f.write(os.urandom(64 * 1024))
    for volume, snap_id in zip(volumes, snap_ids, strict=True):
        data = os.path.join(pool.snapshot_dir(snap_id), "data")
        os.makedirs(data)
        pool.driver.frozen_copy(source, os.path.join(data, volume["dataset"]))
        with open(os.path.join(pool.snapshot_dir(snap_id), MANIFEST), "w") as f:
            json.dump({"bench": True, "id": snap_id}, f)
    os.sync()


@contextmanager
def served(svc: Services) -> Iterator[httpx.Client]:
    """The real API app over loopback HTTP, in this process, on ``svc``; a client with the admin token."""
    token_file = os.path.join(svc.settings.data_dir, "admin.token")
    svc.tokens.ensure_admin_file(token_file)
    with open(token_file) as f:
        token = f.read().strip()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(svc), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="bench-uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    try:
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(30)


# -- measuring -----------------------------------------------------------------------------------------------


def due_count(svc: Services, now: datetime) -> int:
    with svc.db.unit() as uow:
        return len(uow.schedule.due(now, BATCH))


def unindexed(svc: Services, sql: str, now: datetime) -> int:
    """The comparison: the same question with the table scanned (``NOT INDEXED``): what a pass would cost
    without its index. ``now`` is bound as the catalog stores times."""
    query = text(sql).bindparams(bindparam("now", type_=DateTime()))
    with svc.db.engine.connect() as conn:
        return len(conn.execute(query, {"now": now}).all())


def measure(svc: Services, pool: Pool, clock: SimulatedClock, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"pool": pool.driver.name}
    profile = svc.profiles.create("bench", SYSTEM, periods=tuple(p for *_, p in PERIODS), ignore_warning=True).profile
    started = time.perf_counter()
    volumes, first_to_expire = fill_catalog(svc, profile, args.subjects)
    results["setup_catalog_s"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    lay_out_pool_snapshots(pool, volumes, first_to_expire)
    results["setup_pool_s"] = round(time.perf_counter() - started, 1)
    with svc.db.engine.connect() as conn:
        results["snapshots_in_catalog"] = conn.execute(text("SELECT count(*) FROM snapshots")).scalar_one()
        results["schedule_entries"] = conn.execute(text("SELECT count(*) FROM schedule")).scalar_one()
    results["peak_rss_setup_mb"] = round(peak_rss_mb(), 1)
    reset_peak_rss()

    ops: dict[str, dict[str, Any]] = {}
    hour = NOW.replace(minute=0) + HOUR  # every volume's hourly period is due then
    nothing = due_count(svc, NOW)
    ops["due set, nothing due"] = {**rounds(lambda: due_count(svc, NOW), args.rounds), "rows": nothing}
    rows = due_count(svc, hour)
    ops["due set, every hourly due"] = {**rounds(lambda: due_count(svc, hour), args.rounds), "rows": rows}
    scan = "SELECT id FROM schedule NOT INDEXED WHERE next_due <= :now AND running_since IS NULL"
    ops["(compared) due set by scanning the schedule"] = {
        **rounds(lambda: unindexed(svc, scan, NOW), args.rounds),
        "rows": unindexed(svc, scan, NOW),
    }

    swept = len(svc.snapshots.sweep_expired(SYSTEM))
    ops["empty sweep"] = {**rounds(lambda: svc.snapshots.sweep_expired(SYSTEM), args.rounds), "rows": swept}
    expired = "SELECT id FROM snapshots NOT INDEXED WHERE status = 'ready' AND expires_at <= :now"
    ops["(compared) expired snapshots by scanning the catalog"] = {
        **rounds(lambda: unindexed(svc, expired, NOW), args.rounds),
        "rows": unindexed(svc, expired, NOW),
    }

    with served(svc) as http:
        volume = volumes[len(volumes) // 2]["name"]

        def page(params: dict[str, Any]) -> httpx.Response:
            response = http.get("/api/v1/snapshots", params=params)
            response.raise_for_status()
            return response

        first = page({"volume": volume})
        ops["page, one volume"] = {**rounds(lambda: page({"volume": volume}), args.rounds), "rows": len(first.json())}
        half = {"volume": volume, "limit": 50}
        after = {**half, "cursor": page(half).headers["x-next-cursor"]}
        second = page(after)
        ops["page, one volume, after a cursor"] = {
            **rounds(lambda: page(after), args.rounds),
            "rows": len(second.json()),
        }
        everything = page({})
        ops["page, all snapshots"] = {**rounds(lambda: page({}), args.rounds), "rows": len(everything.json())}

    clock.now = hour + timedelta(minutes=30)  # the oldest hourly snapshot of every volume has expired
    assert all(pool.has_snapshot(snap_id) for snap_id in first_to_expire)
    deleted: list[str] = []
    ms = timed(lambda: deleted.extend(svc.snapshots.sweep_expired(SYSTEM)))
    if sorted(deleted) != sorted(first_to_expire):
        raise AssertionError(f"the sweep deleted {len(deleted)} snapshots, not the {len(first_to_expire)} expired")
    if any(pool.has_snapshot(snap_id) for snap_id in first_to_expire):
        raise AssertionError("a swept snapshot is still in the pool")
    ops["sweep deleting one per volume"] = {
        "median_ms": ms,
        "best_ms": ms,
        "samples_ms": [ms],
        "rows": len(deleted),
        "per_snapshot_ms": ms / max(len(deleted), 1),
    }
    results["ops"] = ops
    results["peak_rss_measured_mb"] = round(peak_rss_mb(), 1)
    return results


def verdict(op: str, median_ms: float) -> str:
    for prefix, target in TARGETS_MS.items():
        if op.startswith(prefix):
            return f"< {target:.0f} ms: {'ok' if median_ms < target else 'MISS'}"
    return ""


def print_table(results: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\n{args.subjects:,} volumes x {len(PERIODS)} periods ({results['schedule_entries']:,} schedule entries), "
        f"{results['snapshots_in_catalog']:,} snapshots in the catalog, a {results['pool']} pool; "
        f"set-up {results['setup_catalog_s']} s (catalog) + {results['setup_pool_s']} s (pool)"
    )
    header = f"{'operation':<52} {'rows':>7} {'median ms':>10} {'best ms':>9}  target"
    print(header)
    print("-" * len(header))
    for op, r in results["ops"].items():
        print(f"{op:<52} {r['rows']:>7,} {r['median_ms']:>10.1f} {r['best_ms']:>9.1f}  {verdict(op, r['median_ms'])}")
    sweep = results["ops"]["sweep deleting one per volume"]
    print(f"  (the sweep that deletes: {sweep['per_snapshot_ms']:.2f} ms per snapshot, catalog and pool)")
    rss = results["peak_rss_measured_mb"]
    print(
        f"peak RSS while measuring: {rss:.0f} MB (< {TARGET_RSS_MB:.0f} MB: {'ok' if rss < TARGET_RSS_MB else 'MISS'});"
        " "
        f"during set-up (bulk inserts): {results['peak_rss_setup_mb']:.0f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="20 volumes, one round (CI)")
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image-size", default="8G")
    parser.add_argument(
        "--copy-pool",
        action="store_true",
        help="a copy-mode pool in a plain directory (snapshots are directory trees) instead of loop-mounted btrfs",
    )
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.subjects, args.rounds, args.image_size = 20, 1, "1G"
    mounted = None if args.copy_pool else mount_fs("btrfs", args.image_size)
    data_dir = make_traversable_tmp("snapkeep-bench-scheduler-")
    try:
        if mounted is None:
            pool = Pool.open(os.path.join(data_dir, "pool"), allow_slow_copy=True)
        else:
            pool = Pool.open(mounted.new_dir("pool"))
        clock = SimulatedClock(NOW)
        svc = build_services(data_dir, pool, clock)
        try:
            results = measure(svc, pool, clock, args)
        finally:
            svc.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if mounted is not None:
            unmount_fs(mounted)
    print_table(results, args)
    document = {
        "benchmark": "scheduler",
        "machine": machine_info(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "parameters": {
            "mode": "smoke" if args.smoke else "full",
            "subjects": args.subjects,
            "periods": [name for name, *_ in PERIODS],
            "snapshots_per_subject": sum(count for _, _, count, _ in PERIODS),
            "rounds": args.rounds,
            "batch": BATCH,
        },
        "targets": {"ms": TARGETS_MS, "peak_rss_mb": TARGET_RSS_MB},
        "results": results,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(document, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
