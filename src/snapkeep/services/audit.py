"""The audit log: what was done or refused, by whom, to what.

Entries name the caller (``Principal.name``) and belong to the tenant whose subtree they concern (``owner``:
the owner of the target, None for the system's): a tenant's callers read the entries of their subtree, done
by anyone (the scheduler, a parent's admin), and nothing of other tenants or of the system. An actor whose
scope (recorded with the entry) is above the tenant's subtree is shown as ``parent``; the scheduler and the
service itself act as ``system``. Refused API requests belong to the system: their targets are whatever the
caller asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import replace
from datetime import datetime

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import InvalidInput
from snapkeep.model.filters import AuditFilter
from snapkeep.model.paging import Page, Window
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.types import AuditEntry, Snapshot

ABOVE = "parent"  # how a tenant's caller sees an actor from above its subtree


class Audit:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    def done(self, uow: Unit, by: Principal, action: str, target: str, detail: str = "", *, owner: str | None) -> None:
        """Record a change (by ``by``, to a target of ``owner``'s subtree) inside the unit of work that makes
        it: both land or neither."""
        uow.audit.append(self._clock(), by, action, target, "done", detail, owner)

    def failed(self, uow: Unit, by: Principal, action: str, target: str, detail: str, *, owner: str | None) -> None:
        """Record an operation that failed and left nothing behind, in the unit that cleans up after it."""
        uow.audit.append(self._clock(), by, action, target, "failed", detail, owner)

    def refused(self, by: Principal | str, action: str, target: str, detail: str, *, owner: str | None) -> None:
        """Record a refusal in its own unit of work: the refused one is rolled back. ``by`` a name alone:
        someone not identified (a failed login's name, an unknown token)."""
        with self._db.unit() as uow:
            uow.audit.append(self._clock(), by, action, target, "refused", detail, owner)

    def entries(self, who: Principal, limit: int = 200) -> list[AuditEntry]:
        """The newest entries of the caller's subtree; any role."""
        return self.page(who, Window(limit)).items

    def page(self, who: Principal, window: Window, where: AuditFilter | None = None) -> Page[AuditEntry]:
        """The entries ``where`` matches among those of the caller's subtree, a page at a time, newest first;
        any role."""
        who.require(Role.VIEWER)
        if where is not None and where.since is not None and where.until is not None and where.since >= where.until:
            raise InvalidInput("since must be earlier than until", since=where.since.isoformat())
        with self._db.unit(who) as uow:
            page = uow.audit.page(window, where)
            if who.tenant_id is None:
                return page
            ours = uow.tenants.subtree_ids(who.tenant_id)
        return Page([_as_seen(e, ours) for e in page.items], page.next)


def from_snapshot(snap: Snapshot, owner: str | None) -> str:
    """How an entry of ``owner``'s subtree names the snapshot something came from: by name when it is that
    scope's own, else without a name (a parent's snapshot, perhaps private: its job keeps the name)."""
    return f"from {snap.name}" if snap.owner_tenant_id == owner else "from a snapshot of its parent"


def _as_seen(entry: AuditEntry, ours: AbstractSet[str]) -> AuditEntry:
    """The entry as a tenant's caller reads it: an actor from above its subtree is ``parent`` (the service
    itself stays ``system``)."""
    if entry.actor_tenant_id in ours or (entry.actor == SYSTEM.name and entry.actor_tenant_id is None):
        return entry
    return replace(entry, actor=ABOVE)
