"""The scheduler benchmark still runs (``--smoke``: 20 volumes, 2,000 snapshots, one round), so that it cannot
rot: every measured path answers as the benchmark expects (nothing due between slots, one batch due at the
hour, an empty sweep deleting nothing, pages of the right size, a sweep deleting exactly the expired
snapshot of every volume from the catalog and the pool, which the benchmark checks itself)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import require
from tests.integration.test_bench_smoke import run_smoke


def test_scheduler_benchmark_smoke(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "the benchmark mounts a loop filesystem")
    document = run_smoke("bench.scheduler", tmp_path / "scheduler.json")
    assert document["parameters"]["mode"] == "smoke"
    results = document["results"]
    assert results["snapshots_in_catalog"] == 20 * 100 and results["schedule_entries"] == 20 * 4
    rows = {op: r["rows"] for op, r in results["ops"].items()}
    assert rows["due set, nothing due"] == 0 and rows["due set, every hourly due"] == 20
    assert rows["empty sweep"] == 0 and rows["sweep deleting one per volume"] == 20
    assert rows["page, one volume"] == 100 and rows["page, one volume, after a cursor"] == 50
    assert all(r["samples_ms"] for r in results["ops"].values())
