"""The VM benchmark still runs (``--smoke``: one running guest with one small disk on btrfs, one round), so
that it cannot rot; a take is split into its parts by the code's own step timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_bench_smoke import run_smoke


@pytest.mark.usefixtures("libvirtd")
def test_vm_benchmark_smoke(tmp_path: Path) -> None:
    document = run_smoke("bench.vm_snapshots", tmp_path / "vm.json")
    assert document["parameters"]["mode"] == "smoke" and document["parameters"]["complete"] is True
    (run,) = document["results"]
    (size,) = run["sizes"]
    ops = size["ops"]
    assert all(op["samples_ms"] for op in ops.values()), ops
    assert {"agent freeze", "pause", "pool.capture", "resume", "agent thaw"} <= set(ops["take, quiesced"]["side_ms"])
