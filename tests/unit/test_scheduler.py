"""The scheduler's loop on a clock the test moves: tasks run when due, not before, and one failing task
never keeps the others from running."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from snapkeep.scheduler import Scheduler, Task


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def counter(runs: list[str], name: str) -> Task:
    def run() -> str:
        runs.append(name)
        return f"{name} ran"

    return Task(name, timedelta(seconds=10), run)


def test_tasks_run_when_due_and_not_before() -> None:
    clock, runs = Clock(), []
    late = Task("late", timedelta(minutes=1), lambda: runs.append("late") and None, first_after=timedelta(minutes=1))
    scheduler = Scheduler([counter(runs, "often"), late], clock)
    assert scheduler.run_due() == ["often"]
    clock.advance(seconds=9)
    assert scheduler.run_due() == []
    clock.advance(seconds=1)
    assert scheduler.run_due() == ["often"]
    clock.advance(seconds=50)
    assert scheduler.run_due() == ["often", "late"]
    assert runs == ["often", "often", "often", "late"]
    assert scheduler.next_due("late") == clock.now + timedelta(minutes=1)


def test_a_failing_task_is_retried_at_its_next_turn_and_does_not_stop_the_others() -> None:
    clock, runs = Clock(), []

    def broken() -> str | None:
        runs.append("broken")
        raise RuntimeError("the agent did not answer")

    scheduler = Scheduler([Task("broken", timedelta(seconds=10), broken), counter(runs, "after")], clock)
    assert scheduler.run_due() == ["broken", "after"]
    clock.advance(seconds=10)
    assert scheduler.run_due() == ["broken", "after"]
    assert runs == ["broken", "after", "broken", "after"]


def test_a_slow_run_does_not_push_the_next_one_back() -> None:
    clock = Clock()

    def slow() -> None:
        clock.advance(seconds=7)

    scheduler = Scheduler([Task("slow", timedelta(seconds=10), slow)], clock)
    start = clock.now
    scheduler.run_due()
    assert scheduler.next_due("slow") == start + timedelta(seconds=10)


def test_task_names_are_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Scheduler([counter([], "a"), counter([], "a")], Clock())


def test_the_loop_looks_as_often_as_its_most_frequent_task() -> None:
    tasks = [counter([], "ten"), Task("two", timedelta(seconds=2), lambda: None)]
    assert Scheduler(tasks, Clock()).tick_seconds() == 2.0


def test_a_task_running_apart_does_not_hold_the_others_and_is_not_started_twice() -> None:
    clock, runs = Clock(), []
    release = threading.Event()

    def long_sweep() -> str | None:
        runs.append("sweep")
        release.wait(10)
        return None

    sweep = Task("sweep", timedelta(seconds=10), long_sweep, apart=True)
    scheduler = Scheduler([sweep, counter(runs, "takes")], clock)
    assert scheduler.run_due() == ["sweep", "takes"]
    clock.advance(seconds=10)
    assert scheduler.run_due() == ["takes"]  # the sweep still runs: not started again, the others go on
    release.set()
    scheduler.settle()
    clock.advance(seconds=10)
    assert scheduler.run_due() == ["sweep", "takes"]
    scheduler.settle()
    assert runs == ["sweep", "takes", "takes", "sweep", "takes"]


def test_a_clock_set_back_does_not_stop_the_tasks() -> None:
    """An NTP step or an operator sets the clock back six hours: every task still runs at its interval from
    the new time (the thaw retry must not wait six hours)."""
    clock, runs = Clock(), []
    sweep = Task("sweep", timedelta(hours=1), lambda: runs.append("sweep") and None, first_after=timedelta(hours=1))
    scheduler = Scheduler([counter(runs, "often"), sweep], clock)
    assert scheduler.run_due() == ["often"]
    clock.advance(hours=-6)
    assert scheduler.run_due() == ["often", "sweep"]
    assert scheduler.next_due("often") == clock.now + timedelta(seconds=10)
    clock.advance(seconds=9)
    assert scheduler.run_due() == []
    clock.advance(seconds=1)
    assert scheduler.run_due() == ["often"]
    assert runs == ["often", "often", "sweep", "often"]
