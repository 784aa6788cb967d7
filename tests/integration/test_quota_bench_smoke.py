"""The btrfs quota benchmark still runs (``--smoke``), and still shows what chose full quota groups over
simple quotas: full qgroups charge a volume exactly what it references, after a rewrite its snapshot holds
and in a writable snapshot of it (a restore); simple quotas charge the first twice and the second nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_quota_benchmark_smoke(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "the benchmark mounts loop filesystems")
    out = tmp_path / "quotas.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.btrfs_quotas", "--smoke", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = {r["mode"]: r for r in json.loads(out.read_text())["results"]}
    assert set(results) == {"none", "full", "simple"}
    data = results["full"]["volume_data_bytes"]
    full, simple = results["full"], results["simple"]
    assert data <= full["referenced_of_volume"] < data * 1.1
    assert full["referenced_after_snapshot_and_full_rewrite"] == full["referenced_of_volume"]
    assert full["referenced_of_writable_snapshot"] == full["referenced_of_volume"]
    assert simple["referenced_after_snapshot_and_full_rewrite"] > 1.9 * data
    assert simple["referenced_of_writable_snapshot"] < data / 100
