"""Run one blocking call per item on threads, all at once, and wait for every one of them.

For system calls that let other threads run while they wait, where one after another would add up their
latencies inside a window that must stay short: btrfs snapshots made together join one transaction commit,
and libvirt pauses and resumes several guests at the same time.

Threads are kept between calls (:class:`Workers`): starting one costs about 0.3 ms on a quiet 2-core host
and more on a busy one, and a system snapshot's paused window would otherwise start a few dozen. A call
never waits for a thread another call is using: when none is idle, a new one is started, so two takes at
once each get their own.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")

THREADS = 32  # enough for every running guest of a system; btrfs gains little beyond this many snapshots


class _Batch(Generic[Item]):
    """The items of one call, taken one at a time by whichever thread is free; counts the calls under way
    so that the caller waits for those only (a helper that starts after the last item was taken finds
    nothing to do)."""

    def __init__(self, call: Callable[[Item], object], items: Sequence[Item]) -> None:
        self._call = call
        self._queue: Iterator[tuple[int, Item]] = iter(enumerate(items))
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

    def abandon(self) -> None:
        """The caller was interrupted (Ctrl-C): no item starts any more, and it returns only once those
        under way have finished, whatever else arrives meanwhile (a freeze still running when the caller
        thaws what it froze would stay frozen)."""
        with self._changed:
            self._queue = iter(())
        while True:
            try:
                self.wait()
                return
            except BaseException:  # the first interruption is raised once nothing runs any more
                continue


class _Parked:
    """An idle kept thread, waiting for the next batch to work on."""

    def __init__(self) -> None:
        self.next: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()


class Workers:
    """Threads for :meth:`each_at_once`: started as needed, at most ``keep`` of them kept idle afterwards
    for the next call (daemon threads: an idle one never holds the process up at exit)."""

    def __init__(self, keep: int = THREADS) -> None:
        self._keep = keep
        self._idle: list[_Parked] = []
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget_threads)

    def _forget_threads(self) -> None:
        """In a forked child: none of the parent's threads exist there (and the lock may be held by one)."""
        self._idle = []
        self._lock = threading.Lock()

    def each_at_once(self, call: Callable[[Item], object], items: Sequence[Item], *, limit: int = THREADS) -> None:
        """Call ``call(item)`` for every item, on up to ``limit`` threads (the caller's among them), and
        return once all have returned.

        Every item is called exactly once, even when no new thread can be started (a task limit, no
        memory): then the calling thread does the rest itself, so that resuming paused guests never
        depends on getting a thread. If any call raised, the first error (in the order of ``items``) is
        raised, the others logged, but only after every call has finished: nothing is still running when
        the caller cleans up, even when the caller is interrupted.
        """
        batch = _Batch(call, items)
        try:
            for _ in range(min(limit, len(items)) - 1):
                if not self._hand(batch.work):
                    break  # no thread to be had: those running and the caller share the rest
            batch.work()
            batch.wait()
        except BaseException:
            batch.abandon()
            raise
        raised = [error for error in batch.errors if error is not None]
        for error in raised[1:]:
            log.warning("also failed in the same batch: %r", error)
        if raised:
            raise raised[0]

    def _hand(self, work: Callable[[], None]) -> bool:
        """Give ``work`` to an idle kept thread, else to a new one; False if no thread can be started."""
        with self._lock:
            parked = self._idle.pop() if self._idle else None
        if parked is not None:
            parked.next.put(work)
            return True
        thread = threading.Thread(target=self._serve, args=(work,), name="snapkeep-at-once", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            return False
        return True

    def _serve(self, work: Callable[[], None]) -> None:
        parked = _Parked()
        while True:
            work()
            with self._lock:
                if len(self._idle) >= self._keep:
                    return
                self._idle.append(parked)
            work = parked.next.get()


_WORKERS = Workers()


def each_at_once(call: Callable[[Item], object], items: Sequence[Item], *, limit: int = THREADS) -> None:
    """:meth:`Workers.each_at_once` on the threads this process keeps for it."""
    _WORKERS.each_at_once(call, items, limit=limit)
