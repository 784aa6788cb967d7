"""Who is calling: a role and a scope (the whole system, or one tenant and the tenants beneath it).

The catalog applies the scope inside its stores (:meth:`snapkeep.catalog.db.Database.unit`), so a lookup
cannot forget it; the role is checked by whoever decides what the caller may do.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from snapkeep.errors import Forbidden


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


_ORDER = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    tenant_id: str | None  # None: the system itself, which sees every tenant

    @property
    def is_system_admin(self) -> bool:
        """An admin of the whole system (not of one tenant): the only caller shown host paths."""
        return self.role is Role.ADMIN and self.tenant_id is None

    def may(self, role: Role | str) -> bool:
        """Whether this caller has ``role`` or a higher one (pages ask it to leave out what would be refused)."""
        return _ORDER.index(self.role) >= _ORDER.index(Role(role))

    def require(self, role: Role) -> None:
        if not self.may(role):
            raise Forbidden(f"token {self.name!r} has role {self.role}; this needs {role}")


# snapkeep itself, acting on its own: the scheduler, the reconciler, the expiry sweep.
SYSTEM = Principal("system", Role.ADMIN, None)
