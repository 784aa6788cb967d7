"""The audit log: what was done or refused, by whom, to what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.model.types import AuditEntry


class Audit:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    def done(self, uow: Unit, actor: str, action: str, target: str, detail: str = "") -> None:
        """Record a change inside the unit of work that makes it: both land or neither."""
        uow.audit.append(self._clock(), actor, action, target, "done", detail)

    def refused(self, actor: str, action: str, target: str, detail: str) -> None:
        """Record a refusal in its own unit of work: the refused one is rolled back."""
        with self._db.unit() as uow:
            uow.audit.append(self._clock(), actor, action, target, "refused", detail)

    def entries(self, limit: int = 200) -> list[AuditEntry]:
        with self._db.unit() as uow:
            return uow.audit.list(limit)
