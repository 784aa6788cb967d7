"""The audit log: what was done or refused, by whom, to what.

Entries name the caller (``Principal.name``); the log has no owner, so only callers of the system's scope
read it (a tenant's caller would otherwise see every other tenant's activity).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import Forbidden, InvalidInput
from snapkeep.model.filters import AuditFilter
from snapkeep.model.paging import Page, Window
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import AuditEntry


class Audit:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    def done(self, uow: Unit, by: str, action: str, target: str, detail: str = "") -> None:
        """Record a change (by the caller named ``by``) inside the unit of work that makes it: both land or
        neither."""
        uow.audit.append(self._clock(), by, action, target, "done", detail)

    def failed(self, uow: Unit, by: str, action: str, target: str, detail: str) -> None:
        """Record an operation that failed and left nothing behind, in the unit that cleans up after it."""
        uow.audit.append(self._clock(), by, action, target, "failed", detail)

    def refused(self, by: str, action: str, target: str, detail: str) -> None:
        """Record a refusal in its own unit of work: the refused one is rolled back."""
        with self._db.unit() as uow:
            uow.audit.append(self._clock(), by, action, target, "refused", detail)

    def entries(self, who: Principal, limit: int = 200) -> list[AuditEntry]:
        """The newest entries; any role of the system's scope (see the module docstring)."""
        return self.page(who, Window(limit)).items

    def page(self, who: Principal, window: Window, where: AuditFilter | None = None) -> Page[AuditEntry]:
        """The entries ``where`` matches, a page at a time, newest first; as :meth:`entries`."""
        who.require(Role.VIEWER)
        if who.tenant_id is not None:
            raise Forbidden(f"token {who.name!r} is scoped to a tenant; the audit log is the system's")
        if where is not None and where.since is not None and where.until is not None and where.since >= where.until:
            raise InvalidInput("since must be earlier than until", since=where.since.isoformat())
        with self._db.unit() as uow:
            return uow.audit.page(window, where)
