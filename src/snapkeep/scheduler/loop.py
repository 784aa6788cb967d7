"""The scheduler's loop: run every task whose time has come, each on its own interval.

One task failing (an exception) is logged and retried at its next turn; it never stops the others. A task
is due again ``every`` after it *started*, so a slow run does not push later runs back by its duration.
A task that can take long (the expiry sweep deleting thousands of snapshots) runs ``apart``, in a thread of
its own, so that the loop goes on starting the others on time; it is not started again while it runs.

The wall clock can be set back (an NTP step, an operator, a host resumed with a wrong clock). A due time
then lies further ahead than a task ever waits; such a task is due at once and counts from the new time,
rather than every task (the thaw retry among them) stopping until the clock catches up.
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
    apart: bool = False  # run in a thread of its own (see the module docstring)


class Scheduler:
    def __init__(self, tasks: Sequence[Task], clock: Callable[[], datetime]) -> None:
        names = [task.name for task in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique: {names}")
        self._tasks = list(tasks)
        self._clock = clock
        now = clock()
        self._due = {task.name: now + task.first_after for task in tasks}
        self._apart: dict[str, threading.Thread] = {}

    def next_due(self, name: str) -> datetime:
        return self._due[name]

    def run_due(self) -> list[str]:
        """Run, in their listed order, the tasks due now (start those that run apart); the names of those
        that ran or started (failed ones too)."""
        ran = []
        for task in self._tasks:
            started = self._clock()
            if started < self._due[task.name] <= started + max(task.every, task.first_after):
                continue
            self._due[task.name] = started + task.every
            if task.apart:
                running = self._apart.get(task.name)
                if running is not None and running.is_alive():
                    continue  # the last run goes on; this turn is skipped
                thread = threading.Thread(target=self._run, args=(task,), name=f"snapkeep-{task.name}", daemon=True)
                self._apart[task.name] = thread
                thread.start()
            else:
                self._run(task)
            ran.append(task.name)
        return ran

    def _run(self, task: Task) -> None:
        try:
            said = task.run()
        except Exception:
            log.exception("scheduled task %s failed; it runs again at %s", task.name, self._due[task.name])
            return
        if said:
            log.info("%s: %s", task.name, said)

    def settle(self, timeout: float | None = None) -> None:
        """Wait for the tasks running apart to finish (tests; the service's shutdown)."""
        for thread in list(self._apart.values()):
            thread.join(timeout)

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
            self.settle()

        return halt
