"""The per-caller count of open downloads: refused past the limit, another caller unaffected, each slot
given back once however often its download is closed."""

from __future__ import annotations

import pytest

from snapkeep.errors import TooManyDownloads
from snapkeep.services.download_slots import DownloadSlots


def test_a_caller_past_its_limit_is_refused_and_a_slot_given_back_twice_counts_once() -> None:
    slots = DownloadSlots(per_caller=2)
    first, _second = slots.take("alice"), slots.take("alice")
    with pytest.raises(TooManyDownloads) as refused:
        slots.take("alice")
    assert refused.value.http_status == 429 and refused.value.details["retry_after"] > 0
    slots.take("bob")  # another caller is not held back
    first()
    first()  # a download closed twice (read to its end, then closed by the response) frees one slot
    slots.take("alice")
    with pytest.raises(TooManyDownloads):
        slots.take("alice")
