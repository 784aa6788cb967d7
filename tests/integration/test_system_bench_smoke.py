"""The system-snapshot benchmark still runs (``--smoke``: one running guest and two volumes on btrfs, one
round), so that it cannot rot: a system take, the operator's bare pause + per-dataset snapshots + resume and
the operator's whole-system restore by hand are measured and the take's paused window is recorded; the
restores are measured, or marked not measured while their code has not landed, never failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_bench_smoke import run_smoke


@pytest.mark.usefixtures("libvirtd")
def test_system_benchmark_smoke(tmp_path: Path) -> None:
    document = run_smoke("bench.system_snapshots", tmp_path / "system.json")
    assert document["parameters"]["mode"] == "smoke" and document["parameters"]["complete"] is True
    (run,) = document["results"]
    (level,) = run["levels"]
    assert (level["vms"], level["running"], level["volumes"], level["datasets"]) == (1, 1, 2, 3)
    ops = level["ops"]
    measured = {"system take", "system take again, nothing changed"}
    measured |= {"operator: pause all, snapshot each dataset, resume all"}
    measured |= {"pause + resume all running guests", "snapshot each dataset"}
    measured.add("operator: power off running guests, put each dataset back from its snapshot, start them")
    assert measured <= set(ops), ops
    assert all(op["samples_ms"] and not op["notes"] for op in ops.values()), ops
    assert ops["system take"]["side_ms"]["paused_window_ms"]["samples_ms"][0] > 0
    assert {"pause", "pool.capture", "resume"} <= set(ops["system take"]["side_ms"])
    restores = {"restore entire system", "restore one VM as new"}
    assert restores <= set(ops) | set(level["not_measured"])
