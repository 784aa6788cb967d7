"""``snapkeep serve`` raises its soft limit on open descriptors: four folder downloads nested MAX_DEPTH deep
hold two descriptors per level, far past the usual 1024, after which every other request would fail."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from snapkeep.api.server import more_descriptors
from snapkeep.storage import tarstream


@pytest.fixture
def usual_soft_limit() -> Iterator[int]:
    """The soft limit at the usual 1024 for the test, as it was afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_serve_allows_the_descriptors_deep_folder_downloads_hold(usual_soft_limit: int) -> None:
    hard = usual_soft_limit
    wanted = 4 * 2 * tarstream.MAX_DEPTH + 1024
    allowed = more_descriptors()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == allowed
    assert allowed >= min(wanted, hard)
    assert more_descriptors(wanted=1024) == allowed  # never lowered
