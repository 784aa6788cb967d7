"""The scheduler's loop: run every task whose time has come, each on its own interval.

One task failing (an exception) is logged and retried at its next turn; it never stops the others. A task
is due again ``every`` after it *started*, so a slow run does not push later runs back by its duration.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    name: str
    every: timedelta
    run: Callable[[], str | None]  # returns a line worth logging, or None when there was nothing to do
    first_after: timedelta = timedelta(0)  # the first run comes this long after the scheduler starts


class Scheduler:
    def __init__(self, tasks: Sequence[Task], clock: Callable[[], datetime]) -> None:
        names = [task.name for task in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique: {names}")
        self._tasks = list(tasks)
        self._clock = clock
        now = clock()
        self._due = {task.name: now + task.first_after for task in tasks}

    def next_due(self, name: str) -> datetime:
        return self._due[name]

    def run_due(self) -> list[str]:
        """Run, in their listed order, the tasks due now; the names of those that ran (failed ones too)."""
        ran = []
        for task in self._tasks:
            started = self._clock()
            if self._due[task.name] > started:
                continue
            self._due[task.name] = started + task.every
            ran.append(task.name)
            try:
                said = task.run()
            except Exception:
                log.exception("scheduled task %s failed; it runs again at %s", task.name, self._due[task.name])
                continue
            if said:
                log.info("%s: %s", task.name, said)
        return ran

    def tick_seconds(self) -> float:
        """How often the loop looks: often enough for the most frequent task."""
        return min((task.every.total_seconds() for task in self._tasks), default=60.0)

    def run_forever(self, stop: threading.Event) -> None:
        """Look for due tasks until ``stop`` is set (the service's shutdown)."""
        tick = self.tick_seconds()
        while not stop.wait(tick):
            self.run_due()

    def start(self) -> Callable[[], None]:
        """Run the loop in a daemon thread; returns the function that stops it (and waits for it)."""
        stop = threading.Event()
        thread = threading.Thread(target=self.run_forever, args=(stop,), name="snapkeep-scheduler", daemon=True)
        thread.start()

        def halt() -> None:
            stop.set()
            thread.join()

        return halt
