"""The holds a capture can take (see engine/capture.py): one class per thing held still."""

from __future__ import annotations

import os
from collections.abc import Sequence

from snapkeep.writers.pause import Process, pause_writers, resume


class WritersPaused:
    """Quiesce of a volume: its writer processes stopped, recorded in an intent file first, so that the
    reconciler resumes them if snapkeep dies before it does."""

    label = "quiesce"
    quiesce = True

    def __init__(self, trees: Sequence[str], timeout: float, intent_file: str) -> None:
        self._trees = list(trees)
        self._timeout = timeout
        self._intent_file = intent_file
        self._paused: list[Process] = []

    def acquire(self) -> None:
        self._paused = pause_writers(self._trees, self._timeout, self._intent_file)

    def release(self) -> None:
        resume(self._paused)
        self._paused = []
        if os.path.exists(self._intent_file):
            os.unlink(self._intent_file)
