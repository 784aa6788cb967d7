"""Step timings, the hook for measuring where an operation's time goes (benchmarks, diagnostics).

Code marks a step with ``with step("seal: syncfs"):`` or the decorator ``@step("pool.capture")``. Nothing is
recorded unless the calling thread (or task) opened ``with recording() as steps:``, which then maps each step
name to the total milliseconds spent in it. A context variable keeps concurrent operations apart, so a
benchmark measures its own calls without patching anything, and an unobserved step costs one lookup.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_recording: ContextVar[dict[str, float] | None] = ContextVar("snapkeep_step_timings", default=None)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Add the time spent inside to ``name`` in the current recording, if there is one."""
    steps = _recording.get()
    if steps is None:
        yield
        return
    started = time.perf_counter_ns()
    try:
        yield
    finally:
        steps[name] = steps.get(name, 0.0) + (time.perf_counter_ns() - started) / 1e6


@contextmanager
def recording() -> Iterator[dict[str, float]]:
    """Record the steps run by this thread inside the ``with``: ``{step name: milliseconds}``."""
    steps: dict[str, float] = {}
    token = _recording.set(steps)
    try:
        yield steps
    finally:
        _recording.reset(token)
