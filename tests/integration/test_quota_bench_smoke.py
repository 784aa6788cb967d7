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
    # What a volume references includes its metadata, whose tree may gain or lose a node in a rewrite:
    # "charged what it references" is the data plus under a tenth, not the data twice.
    assert data <= full["referenced_of_volume"] < data * 1.1
    assert data <= full["referenced_after_snapshot_and_full_rewrite"] < data * 1.1
    assert data <= full["referenced_of_writable_snapshot"] < data * 1.1
    assert simple["referenced_after_snapshot_and_full_rewrite"] > 1.9 * data
    assert simple["referenced_of_writable_snapshot"] < data / 100
