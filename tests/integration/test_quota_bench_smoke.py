"""The btrfs quota benchmark still runs (``--smoke``), and still shows what chose full quota groups over
simple quotas: full qgroups charge a volume exactly what it references, after a rewrite its snapshot holds
and in a writable snapshot of it (a restore); simple quotas charge the first twice and the second nothing."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import require
from tests.integration.test_bench_smoke import run_smoke


def test_quota_benchmark_smoke(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "the benchmark mounts loop filesystems")
    results = {r["mode"]: r for r in run_smoke("bench.btrfs_quotas", tmp_path / "quotas.json")["results"]}
    assert set(results) == {"none", "full", "simple"}
    data = results["full"]["volume_data_bytes"]
    full, simple = results["full"], results["simple"]
    assert data <= full["referenced_of_volume"] < data * 1.1
    assert full["referenced_after_snapshot_and_full_rewrite"] == full["referenced_of_volume"]
    assert full["referenced_of_writable_snapshot"] == full["referenced_of_volume"]
    assert simple["referenced_after_snapshot_and_full_rewrite"] > 1.9 * data
    assert simple["referenced_of_writable_snapshot"] < data / 100
