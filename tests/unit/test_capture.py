"""Ordering and error paths of the dangerous path (engine/capture.py), with fakes that fail on demand.

The same behaviours run for real in tests/integration/test_quiesce.py; these pin down the order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest

from snapkeep.engine import capture as capture_module
from snapkeep.engine.capture import Holding, capture
from snapkeep.errors import PoolFull, QuiesceFailed, VMStateConflict
from snapkeep.model.types import QuiescePolicy


class FakePool:
    root = "/nowhere"

    def __init__(self, events: list[str], fail: bool = False, images: bool = False) -> None:
        self.events = events
        self.fail = fail
        self.images = images

    def is_image_volume(self, dataset: str) -> bool:
        return self.images

    def prepare_capture(self, snap_id: str, datasets: Sequence[str]) -> None:
        """Early clones: nothing to order against the holds."""

    def capture(self, snap_id: str, datasets: Sequence[str]) -> None:
        self.events.append("capture" if list(datasets) == ["ds"] else f"capture {' '.join(datasets)}")
        if self.fail:
            raise PoolFull("capturing: the pool is full")


class FakeHold:
    def __init__(
        self,
        events: list[str],
        label: str,
        quiesce: bool,
        fail: bool = False,
        release_fails: bool = False,
        still: Sequence[str] = (),
    ):
        self.events, self.label, self.quiesce = events, label, quiesce
        self.fail, self.release_fails, self.still = fail, release_fails, still

    def acquire(self) -> float:
        self.events.append(f"acquire {self.label}")
        if self.fail:
            raise QuiesceFailed(f"{self.label} did not happen within 10 s")
        return time.monotonic()

    def release(self) -> None:
        self.events.append(f"release {self.label}")
        if self.release_fails:
            raise RuntimeError("release broke")


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    log: list[str] = []
    monkeypatch.setattr(capture_module, "syncfs", lambda path: log.append("syncfs"))
    return log


def run(events: list[str], holds: list[FakeHold], policy: QuiescePolicy, fail: bool = False) -> object:
    return capture(FakePool(events, fail), "snap", ["ds"], Holding(holds), policy)  # type: ignore[arg-type]


def test_order_is_flush_freeze_pause_capture_then_release_in_reverse(events: list[str]) -> None:
    holds = [FakeHold(events, "quiesce", True), FakeHold(events, "paused", False)]
    report = run(events, holds, QuiescePolicy.REQUIRE)
    assert events == [
        "syncfs",
        "acquire quiesce",
        "syncfs",  # what the freeze flushed is committed before the pause
        "acquire paused",
        "capture",
        "release paused",
        "release quiesce",
    ]
    assert report.quiesced and set(report.windows_ms) == {"quiesce", "paused"}  # type: ignore[attr-defined]


def test_volumes_with_their_own_filesystem_are_not_flushed_pool_wide(events: list[str]) -> None:
    """Their hold freezes them, which flushes them into the pool: a pool-wide syncfs only adds time."""
    holding = Holding([FakeHold(events, "quiesce", True)])  # type: ignore[list-item]
    capture(FakePool(events, images=True), "snap", ["ds"], holding, QuiescePolicy.REQUIRE)  # type: ignore[arg-type]
    assert events == ["acquire quiesce", "capture", "release quiesce"]


def test_capture_failure_still_releases_everything_and_reraises(events: list[str]) -> None:
    holds = [FakeHold(events, "quiesce", True), FakeHold(events, "paused", False)]
    with pytest.raises(PoolFull):
        run(events, holds, QuiescePolicy.FALLBACK, fail=True)
    assert events[-2:] == ["release paused", "release quiesce"]


def test_a_release_that_fails_does_not_skip_the_others(events: list[str]) -> None:
    holds = [FakeHold(events, "quiesce", True), FakeHold(events, "paused", False, release_fails=True)]
    run(events, holds, QuiescePolicy.REQUIRE)
    assert events[-2:] == ["release paused", "release quiesce"]


def test_required_hold_failing_releases_what_was_held(events: list[str]) -> None:
    holds = [FakeHold(events, "quiesce", True), FakeHold(events, "paused", False, fail=True)]
    with pytest.raises(QuiesceFailed):
        run(events, holds, QuiescePolicy.FALLBACK)
    assert "capture" not in events and events[-1] == "release quiesce"


def test_require_fails_without_capturing(events: list[str]) -> None:
    with pytest.raises(QuiesceFailed):
        run(events, [FakeHold(events, "quiesce", True, fail=True)], QuiescePolicy.REQUIRE)
    assert "capture" not in events


def test_fallback_captures_and_says_why_not_quiesced(events: list[str]) -> None:
    holds = [FakeHold(events, "quiesce", True, fail=True), FakeHold(events, "paused", False)]
    report = run(events, holds, QuiescePolicy.FALLBACK)
    assert events == ["syncfs", "acquire quiesce", "acquire paused", "capture", "release paused"]
    assert not report.quiesced and "did not happen" in report.note  # type: ignore[attr-defined]
    assert "quiesce" not in report.windows_ms  # type: ignore[attr-defined]


def test_datasets_at_rest_are_captured_before_anything_is_held(events: list[str]) -> None:
    """The disks of a VM that is off: outside the window, which holds only what can change."""
    holding = Holding([FakeHold(events, "paused", False)], frozenset({"off-vm", "off-vm-2"}))  # type: ignore[list-item]
    datasets = ["off-vm", "running-vm", "off-vm-2", "volume"]
    capture(FakePool(events), "snap", datasets, holding, QuiescePolicy.FALLBACK)  # type: ignore[arg-type]
    assert events == [
        "capture off-vm off-vm-2",
        "syncfs",
        "acquire paused",
        "capture running-vm volume",
        "release paused",
    ]


def started_meanwhile(events: list[str]) -> Callable[[], None]:
    """The check of a system take whose VM that was off has been started meanwhile."""

    def check() -> None:
        events.append("check at rest")
        raise VMStateConflict("VM 'late' started while the snapshot was being taken")

    return check


def test_what_was_captured_at_rest_is_checked_once_every_hold_is_released(events: list[str]) -> None:
    """A VM that was off and was started meanwhile fails the take: checked after the window, not inside."""
    check = started_meanwhile(events)
    holding = Holding([FakeHold(events, "paused", False)], frozenset({"off-vm"}), still_at_rest=check)  # type: ignore[list-item]
    with pytest.raises(VMStateConflict):
        capture(FakePool(events), "snap", ["off-vm", "running-vm"], holding, QuiescePolicy.FALLBACK)  # type: ignore[arg-type]
    assert events == [
        "capture off-vm",
        "syncfs",
        "acquire paused",
        "capture running-vm",
        "release paused",
        "check at rest",
    ]


def test_what_was_off_is_checked_even_when_nothing_is_held(events: list[str]) -> None:
    """No guest running and no image volume: the VM that was off, captured with the rest, is still checked."""
    holding = Holding([], frozenset({"off-vm"}), still_at_rest=started_meanwhile(events))
    with pytest.raises(VMStateConflict):
        capture(FakePool(events), "snap", ["off-vm", "volume"], holding, QuiescePolicy.FALLBACK)  # type: ignore[arg-type]
    assert events == ["capture off-vm volume", "check at rest"]


def test_with_nothing_to_hold_every_dataset_is_captured_in_one_go(events: list[str]) -> None:
    capture(FakePool(events), "snap", ["off-vm", "volume"], Holding([], frozenset({"off-vm"})), QuiescePolicy.FALLBACK)  # type: ignore[arg-type]
    assert events == ["capture off-vm volume"]


def test_what_a_hold_keeps_still_is_captured_before_the_next_hold(events: list[str]) -> None:
    """Frozen volume images are captured before the guests are paused, so the pause does not wait for them;
    what the last hold keeps still is captured with everything else inside it."""
    holding = Holding(
        [
            FakeHold(events, "paused", False, still=["image-1", "image-2"]),  # volumes frozen
            FakeHold(events, "paused", False, still=["vm-disk"]),  # guests paused (the last hold)
        ]
    )
    datasets = ["image-1", "vm-disk", "image-2", "dir-volume"]
    capture(FakePool(events), "snap", datasets, holding, QuiescePolicy.FALLBACK)  # type: ignore[arg-type]
    assert events == [
        "syncfs",
        "acquire paused",
        "capture image-1 image-2",
        "acquire paused",
        "capture vm-disk dir-volume",
        "release paused",
        "release paused",
    ]


def test_a_hold_that_fails_after_an_early_capture_still_releases_everything(events: list[str]) -> None:
    frozen, pause = FakeHold(events, "paused", False, still=["image"]), FakeHold(events, "paused", False, fail=True)
    holding = Holding([frozen, pause])
    with pytest.raises(QuiesceFailed):
        capture(FakePool(events), "snap", ["image", "vm-disk"], holding, QuiescePolicy.FALLBACK)  # type: ignore[arg-type]
    assert events == ["syncfs", "acquire paused", "capture image", "acquire paused", "release paused"]
