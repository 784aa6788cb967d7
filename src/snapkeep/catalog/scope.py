"""What a unit of work may see: everything (the system), or one tenant's subtree.

A tenant sees the objects owned by itself and by every tenant beneath it (``tenants.parent_id``), never
its parent's, its siblings' or the system's own. The subtree is read once per unit, on first use.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from snapkeep.catalog.tables import TenantRow


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

    def tenants(self) -> frozenset[str] | None:
        """The tenants whose objects are visible; ``None`` means every object (the system's scope)."""
        if self.tenant_id is None:
            return None
        if self._tenants is None:
            self._tenants = subtree(self._session, self.tenant_id)
        return self._tenants

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
