"""The volume benchmark still runs (``--smoke``: one small volume, one round, both filesystems), so that it
cannot rot: every operation, snapkeep's and the bare one it is compared with, succeeds, and a take is split
into its parts by the code's own step timings (no patching of private names)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import require

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def run_smoke(module: str, out: Path) -> dict[str, Any]:
    """Run ``python -m <module> --smoke`` from the project root (it exits non-zero if any operation failed);
    its results document."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--out", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode == 0, f"{module} --smoke exited {done.returncode}\n{output}"
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def test_volume_benchmark_smoke(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "the benchmark mounts loop filesystems")
    document = run_smoke("bench.volume_snapshots", tmp_path / "volume.json")
    assert document["parameters"]["mode"] == "smoke" and document["parameters"]["complete"] is True
    results = document["results"]
    assert [fs["fstype"] for fs in results] == ["btrfs", "xfs"]
    for fs in results:
        ops = fs["volumes"][0]["ops"]
        assert all(op["samples_ms"] for op in ops.values()), ops
        assert {"take (service)", "take (HTTP API)", "cp -a --reflink=always"} <= set(ops)
        assert {"pool.capture", "pool.seal", "seal: syncfs"} <= set(ops["take (service)"]["side_ms"])
