"""All at once (snapkeep/parallel.py) and the guests' pause that uses it (engine/holds.py GuestsPaused), with a
fake hypervisor that fails on demand; the real pauses run in tests/integration/test_system_snapshots.py."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from snapkeep.engine.holds import GuestsPaused
from snapkeep.engine.intents import Intents
from snapkeep.errors import HypervisorError, VMNotFound
from snapkeep.hypervisor.base import Guest, GuestByName
from snapkeep.parallel import Workers, each_at_once


def test_every_call_runs_at_the_same_time() -> None:
    """A barrier that every call must reach before any returns: one after another, it would break."""
    barrier = threading.Barrier(8, timeout=5)
    each_at_once(lambda _item: barrier.wait(), range(8))


def test_the_first_error_comes_after_every_call_has_finished() -> None:
    finished: list[int] = []

    def call(item: int) -> None:
        if item in (1, 3):
            raise ValueError(f"item {item} broke")
        time.sleep(0.05)
        finished.append(item)

    with pytest.raises(ValueError, match="item 1 broke"):
        each_at_once(call, [0, 1, 2, 3, 4])
    assert sorted(finished) == [0, 2, 4]


def test_every_item_is_called_once_even_when_no_thread_can_be_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """A task limit or no memory for a stack: the caller does the rest itself (resuming guests must not
    depend on getting a thread)."""
    started: list[str] = []

    def refuse(self: threading.Thread) -> None:
        if started:
            raise RuntimeError("can't start new thread")
        started.append(self.name)
        original(self)

    original = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", refuse)
    called: list[int] = []
    lock = threading.Lock()

    def call(item: int) -> None:
        with lock:
            called.append(item)

    Workers().each_at_once(call, list(range(20)))  # threads of its own: none kept from other tests
    assert sorted(called) == list(range(20)) and len(started) == 1


def test_threads_are_kept_for_the_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a paused window no thread is started: the second call runs on the first call's threads."""
    workers = Workers(keep=4)
    first = threading.Barrier(4, timeout=5)
    workers.each_at_once(lambda _item: first.wait(), range(4))
    deadline = time.monotonic() + 5
    while len(workers._idle) < 3 and time.monotonic() < deadline:  # the helpers park after the call returns
        time.sleep(0.01)
    started: list[threading.Thread] = []
    original = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda self: (started.append(self), original(self)))
    second = threading.Barrier(4, timeout=5)
    workers.each_at_once(lambda _item: second.wait(), range(4))
    assert started == []


def test_a_call_never_waits_for_threads_another_call_is_using() -> None:
    """Two takes at once: the second one's pauses still run together while the first one's threads are
    all busy (a shared, bounded set of threads would run them one after another)."""
    workers = Workers(keep=2)
    release = threading.Event()
    first = threading.Thread(target=workers.each_at_once, args=(lambda _item: release.wait(5), range(3)))
    first.start()
    try:
        together = threading.Barrier(4, timeout=2)
        workers.each_at_once(lambda _item: together.wait(), range(4))  # breaks unless all 4 run at once
    finally:
        release.set()
        first.join()


def test_an_interrupted_caller_returns_only_once_nothing_runs() -> None:
    """Ctrl-C while the caller waits: the calls under way finish before the interruption goes up, so the
    caller's clean-up (thawing what was frozen) sees every one of them."""

    class Interrupted(Exception):
        pass

    def interrupt(_signum: int, _frame: object) -> None:
        raise Interrupted

    helpers_in = threading.Event()
    entered: list[int] = []
    finished: list[int] = []

    def call(item: int) -> None:
        if threading.current_thread() is threading.main_thread():
            helpers_in.wait(5)
            return
        entered.append(item)
        if len(entered) == 3:
            helpers_in.set()
        time.sleep(0.4)
        finished.append(item)

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.15)  # the caller is waiting for the three helpers by then
        with pytest.raises(Interrupted):
            Workers().each_at_once(call, range(4))
        assert len(finished) == 3
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class FakeHost:
    """Pauses meet at a barrier (so they overlap); ``broken`` cannot be paused."""

    def __init__(self, domains: int, broken: str | None = None) -> None:
        self.barrier = threading.Barrier(domains, timeout=5)
        self.broken = broken
        self.paused: set[str] = set()
        self.lock = threading.Lock()

    def pause(self, name: str) -> None:
        self.barrier.wait()
        if name == self.broken:
            raise HypervisorError(f"{name} cannot be paused")
        with self.lock:
            self.paused.add(name)

    def resume(self, name: str) -> None:
        with self.lock:
            self.paused.discard(name)

    def guests(self, names: Sequence[str]) -> list[Guest]:
        return [GuestByName(self, name) for name in names]  # type: ignore[arg-type]


def test_guests_are_paused_together_and_all_resumed(tmp_path: Path) -> None:
    host = FakeHost(5)
    intents = Intents(str(tmp_path))
    hold = GuestsPaused(host, [f"g{i}" for i in range(5)], intents, "op")  # type: ignore[arg-type]
    hold.acquire()
    assert host.paused == {f"g{i}" for i in range(5)}
    hold.release()
    assert host.paused == set() and intents.listing() == []


class LookedUpFirst(FakeHost):
    """Records when the guests were looked up and when each was paused; ``missing`` is not found."""

    def __init__(self, domains: int, missing: str | None = None) -> None:
        super().__init__(domains)
        self.missing = missing
        self.looked_up_at: float | None = None
        self.paused_at: list[float] = []

    def guests(self, names: Sequence[str]) -> list[Guest]:
        if self.missing in names:
            raise VMNotFound(f"no domain {self.missing}")
        self.looked_up_at = time.monotonic()
        return super().guests(names)

    def pause(self, name: str) -> None:
        self.paused_at.append(time.monotonic())
        super().pause(name)


def test_guests_are_looked_up_before_the_window_starts(tmp_path: Path) -> None:
    host = LookedUpFirst(3)
    hold = GuestsPaused(host, ["g0", "g1", "g2"], Intents(str(tmp_path)), "op")  # type: ignore[arg-type]
    started = hold.acquire()
    hold.release()
    assert host.looked_up_at is not None and host.looked_up_at <= started <= min(host.paused_at)


def test_a_guest_that_is_not_found_pauses_none(tmp_path: Path) -> None:
    host = LookedUpFirst(3, missing="g1")
    intents = Intents(str(tmp_path))
    hold = GuestsPaused(host, ["g0", "g1", "g2"], intents, "op")  # type: ignore[arg-type]
    with pytest.raises(VMNotFound):
        hold.acquire()
    assert host.paused_at == [] and intents.listing() == []


def test_one_guest_that_cannot_be_paused_leaves_every_guest_running(tmp_path: Path) -> None:
    host = FakeHost(5, broken="g2")
    intents = Intents(str(tmp_path))
    hold = GuestsPaused(host, [f"g{i}" for i in range(5)], intents, "op")  # type: ignore[arg-type]
    with pytest.raises(HypervisorError, match="g2 cannot be paused"):
        hold.acquire()
    assert host.paused == set() and intents.listing() == []
