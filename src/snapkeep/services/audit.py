"""The audit log: what was done or refused, by whom, to what."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from snapkeep.catalog import repo
from snapkeep.catalog.db import Database
from snapkeep.model.types import AuditEntry


class Audit:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    def done(self, s: Session, actor: str, action: str, target: str, detail: str = "") -> None:
        """Record a change inside the transaction that makes it: both land or neither."""
        repo.add_audit(s, self._clock(), actor, action, target, "done", detail)

    def refused(self, actor: str, action: str, target: str, detail: str) -> None:
        """Record a refusal in its own transaction: the refused one is rolled back."""
        with self._db.transaction() as s:
            repo.add_audit(s, self._clock(), actor, action, target, "refused", detail)

    def entries(self, limit: int = 200) -> list[AuditEntry]:
        with self._db.transaction() as s:
            return repo.list_audit(s, limit)
