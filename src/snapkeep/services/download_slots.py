"""How many downloads each caller has open, so that one caller cannot hold the service's snapshots open
for everyone (a download keeps its file, and on XFS pools its snapshot's mount, until its client has read
it or gone).

Counted by the caller's name (a user's or a token's), in this process's memory: downloads do not outlive
the process. A slot is taken before anything is opened and given back exactly once, however the download
ends (read to its end, the client gone, the server closing a stalled one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from snapkeep.errors import TooManyDownloads

RETRY_AFTER = 5  # seconds: a hint in the refusal, no promise


class DownloadSlots:
    def __init__(self, per_caller: int) -> None:
        self.per_caller = per_caller
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def take(self, caller: str) -> Callable[[], None]:
        """A slot for one more download of ``caller``, or :class:`TooManyDownloads`; returns the function
        that gives it back (idempotent)."""
        with self._lock:
            held = self._open.get(caller, 0)
            if held >= self.per_caller:
                raise TooManyDownloads(
                    f"{caller!r} has {held} downloads open, as many as one caller may (downloads_per_caller); "
                    "finish or cancel one, then try again",
                    limit=self.per_caller,
                    retry_after=RETRY_AFTER,
                )
            self._open[caller] = held + 1
        given_back = threading.Event()

        def give_back() -> None:
            with self._lock:
                if given_back.is_set():
                    return
                given_back.set()
                left = self._open[caller] - 1
                if left:
                    self._open[caller] = left
                else:
                    del self._open[caller]

        return give_back
