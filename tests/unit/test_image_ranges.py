"""The interval arithmetic of an image's catch-up: what an early clone held that the live image no longer does."""

from __future__ import annotations

from snapkeep.storage.images import minus


def test_parts_not_covered_are_returned_in_order() -> None:
    early = [(0, 100), (200, 300), (400, 500)]
    now = [(0, 40), (60, 100), (250, 450)]
    assert minus(early, now) == [(40, 60), (200, 250), (450, 500)]


def test_nothing_freed_and_everything_freed() -> None:
    assert minus([(0, 10), (20, 30)], [(0, 30)]) == []
    assert minus([(0, 10), (20, 30)], []) == [(0, 10), (20, 30)]
    assert minus([], [(0, 10)]) == []


def test_a_live_range_spanning_several_early_ones() -> None:
    assert minus([(0, 10), (12, 20), (30, 40)], [(5, 35)]) == [(0, 5), (35, 40)]
