"""A download out of a snapshot, sent as fast as its client takes it and ended when the client stops.

A download holds its snapshot open (its file; on XFS pools the snapshot's mount) until it ends, and a
streamed answer has no time limit of its own: a client that opens a download and then reads nothing would
hold it for as long as it keeps the connection open. So every message to the client has ``stall`` seconds
to go out. The server's send waits only while the connection's buffers are full, so that is the time the
client takes to read about one chunk (1 MiB): a client slower than 1 MiB per ``stall`` seconds is cut
off, its download closed (the snapshot let go, the caller's slot given back) and the connection closed;
the client sees a body shorter than its Content-Length (a folder's archive, which has none, cut short).

The download is closed in every case (read to its end, the client gone, stalled), once, in a worker
thread (unmounting blocks), shielded so that a cancelled request still closes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from snapkeep.services.files import Download

log = logging.getLogger(__name__)


class _Stalled(Exception):
    """The client took nothing for ``stall`` seconds (not a ``TimeoutError``: Starlette reads an
    ``OSError`` from a send as the client gone)."""


class Streamed(StreamingResponse):
    def __init__(
        self, download: Download, stall: float, headers: Mapping[str, str], media_type: str = "application/octet-stream"
    ) -> None:
        super().__init__(download.chunks(), media_type=media_type, headers=headers)
        self._download = download
        self._stall = stall

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def within_stall(message: Message) -> None:
            try:
                with anyio.fail_after(self._stall):
                    await send(message)
            except TimeoutError:
                raise _Stalled from None

        try:
            await super().__call__(scope, receive, within_stall)
        except _Stalled:  # the server then closes the connection: the answer is incomplete
            log.info(
                "closed a download of %r: its client took nothing for %s s", self._download.entry.name, self._stall
            )
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._download.close)
