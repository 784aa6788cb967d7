"""The XFS image benchmark still runs (``--smoke``) and still compares a take with the operator's own
freeze-clone-thaw of the same image."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import require
from tests.integration.test_bench_smoke import run_smoke


def test_xfs_image_benchmark_smoke(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "the benchmark mounts loop filesystems")
    results = run_smoke("bench.xfs_images", tmp_path / "xfs_images.json")["results"]
    assert results["take ms, 100 files"] > 0 and results["bare take ms, 100 files"] > 0
    assert results["take / bare, 100 files"] > 0
    assert results["fragmented image extents"] > 1
