"""Ordering and error paths of the dangerous path (engine/capture.py), with fakes that fail on demand.

The same behaviours run for real in tests/integration/test_quiesce.py; these pin down the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from snapkeep.engine import capture as capture_module
from snapkeep.engine.capture import capture_trees
from snapkeep.errors import PoolFull, QuiesceFailed
from snapkeep.model.types import QuiescePolicy
from snapkeep.writers.pause import Process


class FakePool:
    def __init__(self, root: str, fail_capture: bool = False) -> None:
        self.root = root
        self.fail_capture = fail_capture
        self.events: list[str] = []

    def dataset_path(self, dataset: str) -> str:
        return f"{self.root}/{dataset}"

    def capture(self, snap_id: str, datasets: Sequence[str]) -> None:
        self.events.append("capture")
        if self.fail_capture:
            raise PoolFull("capturing: the pool is full")


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    log: list[str] = []
    monkeypatch.setattr(capture_module, "syncfs", lambda path: log.append("syncfs"))
    return log


def fake_pause(log: list[str], fail: bool) -> object:
    def pause(trees: Sequence[str], timeout: float, intent_file: str) -> list[Process]:
        log.append("pause")
        if fail:
            raise QuiesceFailed("process 42 did not pause within 10 s")
        Path(intent_file).write_text("[[42, 1]]")
        return [Process(42, 1)]

    return pause


def run(pool: FakePool, tmp_path: Path, policy: QuiescePolicy) -> capture_module.CaptureReport:
    return capture_trees(
        pool,
        "snap",
        ["ds"],
        quiesce=True,
        policy=policy,
        timeout=10,
        intent_dir=str(tmp_path),  # type: ignore[arg-type]
    )


def test_order_is_flush_pause_capture_resume(
    events: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = FakePool(str(tmp_path))
    pool.events = events
    monkeypatch.setattr(capture_module, "pause_writers", fake_pause(events, fail=False))
    monkeypatch.setattr(capture_module, "resume", lambda procs: events.append(f"resume {len(procs)}"))
    report = run(pool, tmp_path, QuiescePolicy.REQUIRE)
    assert events == ["syncfs", "pause", "capture", "resume 1"]
    assert report.quiesced and report.window_ms is not None
    assert list(tmp_path.iterdir()) == []


def test_capture_failure_still_resumes_and_reraises(
    events: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = FakePool(str(tmp_path), fail_capture=True)
    pool.events = events
    monkeypatch.setattr(capture_module, "pause_writers", fake_pause(events, fail=False))
    monkeypatch.setattr(capture_module, "resume", lambda procs: events.append(f"resume {len(procs)}"))
    with pytest.raises(PoolFull):
        run(pool, tmp_path, QuiescePolicy.FALLBACK)
    assert events == ["syncfs", "pause", "capture", "resume 1"]
    assert list(tmp_path.iterdir()) == [], "the intent file must go once writers are resumed"


def test_require_fails_without_capturing(
    events: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = FakePool(str(tmp_path))
    pool.events = events
    monkeypatch.setattr(capture_module, "pause_writers", fake_pause(events, fail=True))
    monkeypatch.setattr(capture_module, "resume", lambda procs: events.append(f"resume {len(procs)}"))
    with pytest.raises(QuiesceFailed):
        run(pool, tmp_path, QuiescePolicy.REQUIRE)
    assert "capture" not in events


def test_fallback_captures_and_says_why_not_quiesced(
    events: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = FakePool(str(tmp_path))
    pool.events = events
    monkeypatch.setattr(capture_module, "pause_writers", fake_pause(events, fail=True))
    monkeypatch.setattr(capture_module, "resume", lambda procs: events.append(f"resume {len(procs)}"))
    report = run(pool, tmp_path, QuiescePolicy.FALLBACK)
    assert events == ["syncfs", "pause", "capture", "resume 0"]
    assert not report.quiesced and report.note and "did not pause" in report.note and report.window_ms is None
