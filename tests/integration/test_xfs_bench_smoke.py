"""The XFS image benchmark still runs (``--smoke``) and still compares a take with the operator's own
freeze-clone-thaw of the same image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import require

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_xfs_image_benchmark_smoke(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "the benchmark mounts loop filesystems")
    out = tmp_path / "xfs_images.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.xfs_images", "--smoke", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = json.loads(out.read_text())["results"]
    assert results["take ms, 100 files"] > 0 and results["bare take ms, 100 files"] > 0
    assert results["take / bare, 100 files"] > 0
    assert results["fragmented image extents"] > 1
