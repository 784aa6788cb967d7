"""Capture a group of datasets at one instant, holding still what must hold still, never leaving it held.

The dangerous path is written once, here, in this order: prepare (early clones), capture the datasets at
rest and flush (outside any window) → acquire each hold
in turn (pause a volume's writers; freeze a guest's filesystems, then pause the guest) with its own time
limit, capturing right away what a hold alone keeps still (a frozen volume image) before the next one →
capture every other dataset → release every hold acquired, in reverse, in ``finally`` right after the
capture, even if acquiring a later hold raised → check that what was captured at rest stayed at rest →
report the consistency actually achieved and how long each hold lasted.

A hold marked ``quiesce`` is a consistency improvement: when it cannot be had, the caller's policy decides
between failing (``require``) and a crash-consistent capture that says why (``fallback``). Any other hold
(pausing a guest so that all its disks are captured at one instant) is required.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from snapkeep.errors import QuiesceFailed
from snapkeep.model.types import QuiescePolicy
from snapkeep.storage.linux import syncfs
from snapkeep.storage.pool import Pool
from snapkeep.timing import step

log = logging.getLogger(__name__)


class Hold(Protocol):
    """Something held still for the capture.

    ``acquire`` either holds or raises (:class:`QuiesceFailed` when it could not within its time limit),
    leaving nothing held; it returns ``time.monotonic()`` read right before the hold took effect, after its
    own bookkeeping (an intent file), so the window recorded is the time the subject was really held.
    ``release`` undoes a successful ``acquire``; it should not raise, and if it does the engine logs it and
    still releases the other holds.
    """

    label: str  # names the window recorded on the snapshot: "quiesce", "paused"
    quiesce: bool
    # datasets that nothing can change while this hold is held (a frozen volume's image): captured as soon
    # as it is acquired, so that a later hold (the guests' pause) does not wait for them
    still: Sequence[str]

    def acquire(self) -> float: ...
    def release(self) -> None: ...


@dataclass(frozen=True)
class Holding:
    """What a capture of one subject holds still, in acquisition order, and which of its datasets are at
    rest (the disks of a VM that is off: nothing writes them while the take holds its guards). Those are
    captured before anything is held, so that the window holds only the datasets that can change.
    ``running``: the VMs found running when the holds were chosen, which the snapshot records as running
    (read again after the capture, a guest that shut down meanwhile would be recorded as off).
    ``still_at_rest``: called once the holds are released; raises if a dataset captured at rest may have
    changed before the others were captured (a VM that was off was started meanwhile, by someone else)."""

    holds: Sequence[Hold] = ()
    at_rest: frozenset[str] = frozenset()
    running: frozenset[str] = frozenset()
    still_at_rest: Callable[[], None] | None = None


@dataclass(frozen=True)
class CaptureReport:
    quiesced: bool
    note: str | None
    windows_ms: dict[str, float] = field(default_factory=dict)


def capture(
    pool: Pool, snap_id: str, datasets: Sequence[str], holding: Holding, policy: QuiescePolicy
) -> CaptureReport:
    """Capture ``datasets`` into the pool's staging area for ``snap_id`` (seal it afterwards)."""
    holds = holding.holds
    pool.prepare_capture(snap_id, datasets)  # what costs time per extent happens before anything is held
    at_rest = [d for d in datasets if d in holding.at_rest] if holds else []
    if at_rest:
        with step("capture at rest"):
            pool.capture(snap_id, at_rest)
    captured = set(at_rest)
    # volumes with a filesystem of their own are flushed by their hold, and their freeze flushes their image
    # into the pool (through the loop device): a syncfs of the whole pool would only add to the take
    own_filesystems = all(pool.is_image_volume(d) for d in datasets)
    if holds and not own_filesystems:
        with step("syncfs before holds"):
            syncfs(pool.root)  # most dirty data goes out before anything is held: shorter windows
    held: list[tuple[Hold, float]] = []
    note: str | None = None
    windows: dict[str, float] = {}
    try:
        for index, hold in enumerate(holds):
            try:
                started = hold.acquire()
            except QuiesceFailed as exc:
                if not hold.quiesce or policy is QuiescePolicy.REQUIRE:
                    raise
                note = f"not quiesced: {exc.message}"
                continue
            held.append((hold, started))
            if hold.quiesce and not own_filesystems:
                with step("syncfs after quiesce"):
                    syncfs(pool.root)  # what quiescing flushed is committed before anything is paused
            still = [d for d in datasets if d in hold.still and d not in captured] if index < len(holds) - 1 else []
            if still:
                with step("capture held still"):
                    pool.capture(snap_id, still)
                captured.update(still)
        pool.capture(snap_id, [d for d in datasets if d not in captured])
    finally:
        for hold, started in reversed(held):
            try:
                hold.release()
            except Exception:
                log.exception("releasing %s after capturing %s failed", hold.label, snap_id)
            # two holds of one label (volumes frozen around guests paused): the innermost one's window counts
            windows.setdefault(hold.label, (time.monotonic() - started) * 1000)
    if holding.at_rest and holding.still_at_rest is not None:  # with nothing held too: captured in one go
        holding.still_at_rest()
    quiesced = any(h.quiesce for h in holds) and note is None
    return CaptureReport(quiesced=quiesced, note=note, windows_ms=windows)
