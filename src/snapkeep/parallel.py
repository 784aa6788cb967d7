"""Run one blocking call per item on threads, all at once, and wait for every one of them.

For system calls that let other threads run while they wait, where one after another would add up their
latencies inside a window that must stay short: btrfs snapshots made together join one transaction commit,
and libvirt pauses and resumes several guests at the same time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")

THREADS = 32  # enough for every running guest of a system; btrfs gains little beyond this many snapshots


def each_at_once(call: Callable[[Item], object], items: Sequence[Item], *, limit: int = THREADS) -> None:
    """Call ``call(item)`` for every item, on up to ``limit`` threads (the caller's among them), and return
    once all have returned.

    Every item is called exactly once, even when no new thread can be started (a task limit, no memory):
    then the calling thread does the rest itself, so that resuming paused guests never depends on getting a
    thread. If any call raised, the first error (in the order of ``items``) is raised, the others logged,
    but only after every call has finished: nothing is still running when the caller cleans up.
    """
    errors: list[BaseException | None] = [None] * len(items)
    queue = iter(enumerate(items))
    taking = threading.Lock()

    def work() -> None:
        while True:
            with taking:
                following = next(queue, None)
            if following is None:
                return
            index, item = following
            try:
                call(item)
            except BaseException as exc:  # raised in the caller's thread once every call is done
                errors[index] = exc

    helpers: list[threading.Thread] = []
    for _ in range(min(limit, len(items)) - 1):
        thread = threading.Thread(target=work, name="snapkeep-at-once", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: those started and the caller share the rest
            break
        helpers.append(thread)
    work()
    for thread in helpers:
        thread.join()
    raised = [error for error in errors if error is not None]
    for error in raised[1:]:
        log.warning("also failed in the same batch: %r", error)
    if raised:
        raise raised[0]
