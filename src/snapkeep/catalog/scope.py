"""What a unit of work may see: everything (the system), or one tenant's subtree.

A tenant sees the objects owned by itself and by every tenant beneath it (``tenants.parent_id``), never
its parent's, its siblings' or the system's own. The subtree is read once per unit, on first use.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from snapkeep.catalog.tables import SettingRow, TenantRow
from snapkeep.model.settings import TENANT_DEFAULTS

_UNREAD = object()


def subtree(session: Session, root: str) -> frozenset[str]:
    """``root`` and every tenant beneath it (the tenant table is small: read whole, walked here)."""
    children: dict[str | None, list[str]] = defaultdict(list)
    for tenant_id, parent_id in session.execute(select(TenantRow.id, TenantRow.parent_id)):
        children[parent_id].append(tenant_id)
    found, todo = {root}, [root]
    while todo:
        for child in children[todo.pop()]:
            if child not in found:
                found.add(child)
                todo.append(child)
    return frozenset(found)


class Scope:
    def __init__(self, session: Session, tenant_id: str | None) -> None:
        self._session = session
        self.tenant_id = tenant_id  # None: the system
        self._tenants: frozenset[str] | None = None
        self._exposer: object = _UNREAD

    def tenants(self) -> frozenset[str] | None:
        """The tenants whose objects are visible; ``None`` means every object (the system's scope)."""
        if self.tenant_id is None:
            return None
        if self._tenants is None:
            self._tenants = subtree(self._session, self.tenant_id)
        return self._tenants

    def exposed_from(self) -> tuple[bool, str | None]:
        """(whether, by whom): the scope's tenant sees the non-private system snapshots of its parent (None:
        the system) when that parent exposes them to it (the tenant's ``expose_snapshots``, set from
        above). The system's scope has no parent: (False, None)."""
        if self.tenant_id is None:
            return (False, None)
        if self._exposer is _UNREAD:
            parent = self._session.scalar(select(TenantRow.parent_id).where(TenantRow.id == self.tenant_id))
            row = self._session.scalar(
                select(SettingRow.value).where(
                    SettingRow.owner_tenant_id == self.tenant_id, SettingRow.key == "expose_snapshots"
                )
            )
            exposed = TENANT_DEFAULTS["expose_snapshots"] if row is None else row
            self._exposer = (bool(exposed), parent)
        return self._exposer  # type: ignore[return-value]

    def refresh(self) -> None:
        """Read the subtree again on next use (a tenant was added beneath it in this unit)."""
        self._tenants = None

    def allows(self, owner_tenant_id: str | None) -> bool:
        visible = self.tenants()
        return visible is None or owner_tenant_id in visible

    def where(self, query: Any, owner_column: Any) -> Any:
        """``query`` restricted to rows whose ``owner_column`` is visible."""
        visible = self.tenants()
        return query if visible is None else query.where(owner_column.in_(visible))
