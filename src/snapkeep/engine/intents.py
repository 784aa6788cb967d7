"""Intent files: a durable note, written before snapkeep holds something still or half-builds something,
removed once it is released. After a crash, the next start reads them to release what the dead process
held (thaw a volume or a guest, resume writers, remove an extract's private folder).

One home for the protocol — make, update, list, mark pending, release — so that every hold and every
recovery names its files the same way: ``<data dir>/run/<kind>-<op id>.json``. An intent whose release
failed while the service runs (a guest agent that did not answer) is marked *pending*
(``pending-<kind>-<op id>.json``): the scheduler retries those, never the intents of captures in progress.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from snapkeep.durable import write_durably, write_for_this_boot
from snapkeep.errors import DataDirFull, StateUnwritable

PENDING = "pending-"
SUFFIX = ".json"


class IntentKind(StrEnum):
    WRITERS_PAUSED = "quiesce"  # processes stopped by a quiesce: [[pid, start time], ...]
    VOLUME_FROZEN = "volume-freeze"  # image volumes frozen: {"datasets": [...]}
    GUEST_FROZEN = "guest-freeze"  # a guest frozen by its agent: {"domain": name}
    GUEST_PAUSED = "guest-pause"  # a guest's vCPUs paused: {"domain": name}
    EXTRACT = "extract"  # an extract's private folder: {"op", "dataset", "parent_b64"}
    REBUILD = "rebuild"  # a subtree being rebuilt in place from a snapshot: {"snapshot", "root", "step"}
    TENANT_COPY = "tenant-copy"  # a tenant being made as a copy out of a snapshot: {"tenant", "name"}


@dataclass(frozen=True)
class Intent:
    kind: IntentKind
    op_id: str
    path: str
    pending: bool = False

    def read(self) -> Any:
        """The record; ``ValueError`` if the file is not JSON (a crash cannot cause that: it is written
        atomically), ``FileNotFoundError`` if it was released meanwhile."""
        with open(self.path) as f:
            return json.load(f)


class Intents:
    """The intent files of one service, in its run directory (root only)."""

    def __init__(self, run_dir: str) -> None:
        self._dir = run_dir
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        self._adopt_old_pending_names()

    def make(self, kind: IntentKind, op_id: str, record: Any, *, flushed: bool = True) -> Intent:
        """Write the intent; call before holding anything. Not ``flushed``: for a hold that ends with the
        machine's uptime (a frozen filesystem), where surviving the process is enough (two flushes saved);
        after a power cut such an intent may be missing or unreadable, and nothing it named is held."""
        intent = Intent(kind, op_id, os.path.join(self._dir, f"{kind}-{op_id}{SUFFIX}"))
        if flushed:
            self.update(intent, record)
        else:
            with _writing(intent.path):
                write_for_this_boot(intent.path, json.dumps(record))
        return intent

    def update(self, intent: Intent, record: Any) -> None:
        """Replace the record atomically (a hold that grows, such as writers paused one by one)."""
        with _writing(intent.path):
            write_durably(intent.path, json.dumps(record))

    def release(self, intent: Intent) -> None:
        """Forget the intent: what it names is released. One already gone is fine."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(intent.path)

    def mark_pending(self, intent: Intent) -> Intent:
        """Leave the intent for the scheduler to retry (its release failed while the service runs)."""
        if intent.pending:
            return intent
        path = os.path.join(self._dir, PENDING + os.path.basename(intent.path))
        pending = Intent(intent.kind, intent.op_id, path, pending=True)
        os.replace(intent.path, pending.path)
        return pending

    def listing(self, *kinds: IntentKind, pending_only: bool = False) -> list[Intent]:
        """The intents of ``kinds`` (pending ones included unless ``pending_only``), sorted by file name."""
        found = []
        for name in sorted(os.listdir(self._dir)):
            intent = self._parse(name)
            if intent is not None and intent.kind in kinds and (intent.pending or not pending_only):
                found.append(intent)
        return found

    def _parse(self, name: str) -> Intent | None:
        if not name.endswith(SUFFIX):
            return None  # a temporary file of write_durably, or something not ours
        pending = name.startswith(PENDING)
        stem = name.removeprefix(PENDING).removesuffix(SUFFIX)
        for kind in IntentKind:
            if stem.startswith(f"{kind}-"):
                return Intent(kind, stem.removeprefix(f"{kind}-"), os.path.join(self._dir, name), pending)
        return None

    def _adopt_old_pending_names(self) -> None:
        """Builds of 0.1.0 named pending guest intents ``guest-pending-<freeze|pause>-<op>.json``."""
        for name in os.listdir(self._dir):
            if name.startswith("guest-pending-") and name.endswith(SUFFIX):
                new = PENDING + "guest-" + name.removeprefix("guest-pending-")
                os.replace(os.path.join(self._dir, name), os.path.join(self._dir, new))


@contextlib.contextmanager
def _writing(path: str) -> Iterator[None]:
    """An intent that cannot be written is the service's own disk failing, not the pool's: said as such, so
    that an operator frees space in the data directory (the callers hold nothing yet for that intent)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataDirFull(
                f"cannot write {path}: the service's data directory is full ({exc.strerror}); free space there",
                path=path,
            ) from exc
        raise StateUnwritable(f"cannot write {path}: {exc.strerror or exc}", path=path) from exc
