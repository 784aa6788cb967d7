"""Run one blocking call per item on threads, all at once, and wait for every one of them.

For system calls that let other threads run while they wait, where one after another would add up their
latencies inside a window that must stay short: btrfs snapshots made together join one transaction commit,
and libvirt pauses and resumes several guests at the same time.

The threads are kept between calls (:class:`Workers`): starting one costs about 0.3 ms on a quiet 2-core
host and more on a busy one, and a system snapshot's paused window would otherwise start a few dozen.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")

THREADS = 32  # enough for every running guest of a system; btrfs gains little beyond this many snapshots


class _Batch(Generic[Item]):
    """The items of one call, taken one at a time by whichever thread is free; counts the calls under way
    so that the caller waits for those only (a helper thread that starts after the last item was taken
    finds nothing to do)."""

    def __init__(self, call: Callable[[Item], object], items: Sequence[Item]) -> None:
        self._call = call
        self._queue = iter(enumerate(items))
        self.errors: list[BaseException | None] = [None] * len(items)
        self._changed = threading.Condition()
        self._under_way = 0

    def work(self) -> None:
        while True:
            with self._changed:
                following = next(self._queue, None)
                if following is None:
                    return
                self._under_way += 1
            index, item = following
            try:
                self._call(item)
            except BaseException as exc:  # raised in the caller's thread once every call is done
                self.errors[index] = exc
            finally:
                with self._changed:
                    self._under_way -= 1
                    self._changed.notify_all()

    def wait(self) -> None:
        """Until every item taken has been called (the caller took the rest itself before waiting)."""
        with self._changed:
            self._changed.wait_for(lambda: self._under_way == 0)


class Workers:
    """Threads kept for :meth:`each_at_once`, started as they are first needed, at most ``threads - 1``
    (the caller is the last one)."""

    def __init__(self, threads: int = THREADS) -> None:
        self._threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="snapkeep-at-once")

    def each_at_once(self, call: Callable[[Item], object], items: Sequence[Item], *, limit: int = THREADS) -> None:
        """Call ``call(item)`` for every item, on up to ``limit`` threads (the caller's among them), and
        return once all have returned.

        Every item is called exactly once, even when no thread can be had (a task limit, no memory, every
        kept thread busy with another caller's items): then the calling thread does the rest itself, so
        that resuming paused guests never depends on getting a thread. If any call raised, the first error
        (in the order of ``items``) is raised, the others logged, but only after every call has finished:
        nothing is still running when the caller cleans up.
        """
        batch = _Batch(call, items)
        for _ in range(min(limit, self._threads, len(items)) - 1):
            try:
                self._pool.submit(batch.work)
            except RuntimeError:  # no thread to be had: those running and the caller share the rest
                break
        batch.work()
        batch.wait()
        raised = [error for error in batch.errors if error is not None]
        for error in raised[1:]:
            log.warning("also failed in the same batch: %r", error)
        if raised:
            raise raised[0]


_WORKERS = Workers()


def each_at_once(call: Callable[[Item], object], items: Sequence[Item], *, limit: int = THREADS) -> None:
    """:meth:`Workers.each_at_once` on the threads this process keeps for it."""
    _WORKERS.each_at_once(call, items, limit=limit)
