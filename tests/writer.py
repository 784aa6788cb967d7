"""A writer process for quiesce tests: appends fixed-size self-checking records to a file, and logs
the monotonic time of each completed write to a log outside the volume.

    python -m tests.writer TARGET LOG

Each record is RECORD bytes: an 8-byte sequence number, then bytes derived from it, so a torn record
(part of one write without the rest) is detectable. RECORD spans several pages on purpose.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import time

RECORD = 3 * 4096 + 100


def record(seq: int) -> bytes:
    body = hashlib.sha256(str(seq).encode()).digest() * ((RECORD - 8) // 32 + 1)
    return struct.pack("<Q", seq) + body[: RECORD - 8]


def torn_records(path: str) -> list[int]:
    """Offsets of records that are not whole and correct, and a trailing partial record if any."""
    with open(path, "rb") as f:
        data = f.read()
    bad = [i for i in range(0, len(data) - len(data) % RECORD, RECORD) if data[i : i + RECORD] != record(i // RECORD)]
    if len(data) % RECORD:
        bad.append(len(data) - len(data) % RECORD)
    return bad


def main() -> None:
    target, log_path = sys.argv[1], sys.argv[2]
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with open(log_path, "w", buffering=1) as log:
        seq = 0
        while True:
            os.write(fd, record(seq))
            log.write(f"{time.monotonic_ns()}\n")
            seq += 1


if __name__ == "__main__":
    main()
