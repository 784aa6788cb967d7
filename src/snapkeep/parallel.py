"""Run one blocking call per item on threads, all at once, and wait for every one of them.

For system calls that let other threads run while they wait, where one after another would add up their
latencies inside a window that must stay short: btrfs snapshots made together join one transaction commit,
and libvirt pauses and resumes several guests at the same time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")

THREADS = 32  # enough for every running guest of a system; btrfs gains little beyond this many snapshots


def each_at_once(call: Callable[[Item], object], items: Sequence[Item], *, limit: int = THREADS) -> None:
    """Call ``call(item)`` for every item, on up to ``limit`` threads, and return once all have returned.

    If any raised, the first error (in the order of ``items``) is raised, but only after every call has
    finished: nothing is still running when the caller cleans up after the failure.
    """
    if len(items) <= 1:
        for item in items:
            call(item)
        return
    with ThreadPoolExecutor(max_workers=min(limit, len(items)), thread_name_prefix="snapkeep-at-once") as threads:
        futures = [threads.submit(call, item) for item in items]
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
