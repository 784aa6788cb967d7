"""Capture a group of datasets at one instant, quiesced when asked, never leaving a writer stopped.

The dangerous path is written once, here, in this order: flush (outside the window) → record the
intent → pause writers with a time limit → capture every dataset → resume in ``finally`` right after
the capture, even if pausing itself raised → report the consistency actually achieved.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from snapkeep.errors import QuiesceFailed
from snapkeep.model.types import QuiescePolicy
from snapkeep.storage.linux import syncfs
from snapkeep.storage.pool import Pool
from snapkeep.writers.pause import Process, pause_writers, resume


@dataclass(frozen=True)
class CaptureReport:
    quiesced: bool
    note: str | None
    window_ms: float | None


def capture_trees(
    pool: Pool,
    snap_id: str,
    datasets: Sequence[str],
    *,
    quiesce: bool,
    policy: QuiescePolicy,
    timeout: float,
    intent_dir: str,
) -> CaptureReport:
    """Capture ``datasets`` into the pool's staging area for ``snap_id`` (seal it afterwards)."""
    if not quiesce:
        pool.capture(snap_id, datasets)
        return CaptureReport(quiesced=False, note=None, window_ms=None)

    syncfs(pool.root)  # most dirty data goes out before anyone is stopped: a shorter window
    intent = os.path.join(intent_dir, f"quiesce-{snap_id}.json")
    paused: list[Process] = []
    note: str | None = None
    started = time.monotonic()
    try:
        try:
            paused = pause_writers([pool.dataset_path(d) for d in datasets], timeout, intent)
        except QuiesceFailed as exc:
            if policy is QuiescePolicy.REQUIRE:
                raise
            note = f"not quiesced: {exc.message}"
        pool.capture(snap_id, datasets)
    finally:
        resume(paused)
        window_ms = (time.monotonic() - started) * 1000
        if os.path.exists(intent):
            os.unlink(intent)
    if note is not None:
        return CaptureReport(quiesced=False, note=note, window_ms=None)
    return CaptureReport(quiesced=True, note=None, window_ms=window_ms)
