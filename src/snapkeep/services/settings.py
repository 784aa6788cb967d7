"""System and tenant settings: one key/value document per owner, changed by JSON merge patches.

A change is checked like a volume's settings (``model.settings``: JSON values only, bounded depth and
size) and the keys snapkeep reads itself must have their type (``expose_snapshots`` a boolean). A tenant's
document reads with the defaults of those keys filled in, so ``expose_snapshots`` is always there. Whether
a parent's snapshots show to a tenant is the parent's choice: a tenant's own tokens cannot change it.
The system's document is the system's own: a tenant caller cannot see it (``NotFound``).
"""

from __future__ import annotations

from typing import Any

from snapkeep.catalog.db import Database
from snapkeep.errors import Forbidden
from snapkeep.model.principal import Principal, Role
from snapkeep.model.settings import PARENT_DECIDES, TENANT_DEFAULTS, apply_settings, check_known
from snapkeep.services.audit import Audit


class SettingDocs:
    def __init__(self, db: Database, audit: Audit) -> None:
        self._db = db
        self._audit = audit

    @staticmethod
    def _shown(owner: str | None, stored: dict[str, Any]) -> dict[str, Any]:
        return stored if owner is None else TENANT_DEFAULTS | stored

    def get(self, who: Principal, tenant: str | None = None) -> dict[str, Any]:
        """The system's document (``tenant`` None) or the tenant's, with the tenant defaults filled in."""
        with self._db.unit(who) as uow:
            owner = uow.tenants.id_of(tenant)
            return self._shown(owner, uow.settings.document(owner))

    def patch(self, who: Principal, patch: dict[str, Any], tenant: str | None = None) -> dict[str, Any]:
        """Apply a merge patch (``None`` removes a key); checked before anything is written. Changing the
        system's settings needs an admin of the system; a tenant's, an operator that sees it."""
        who.require(Role.ADMIN if tenant is None else Role.OPERATOR)
        with self._db.unit(who) as uow:
            owner = uow.tenants.id_of(tenant)
            decided_above = sorted(set(patch) & PARENT_DECIDES)
            if owner is not None and owner == who.tenant_id and decided_above:
                raise Forbidden(f"{', '.join(decided_above)} of a tenant is decided above it, not by its own tokens")
            document = apply_settings(uow.settings.document(owner), patch)
            check_known(document)
            uow.settings.replace(owner, document)
            target = "system" if owner is None else f"tenant:{owner}"
            self._audit.done(uow, who, "settings.update", target, ",".join(sorted(patch)), owner=owner)
            return self._shown(owner, document)

    def tenant_value(self, tenant_id: str, key: str) -> Any:
        """A setting snapkeep reads for a tenant (its default if unset), e.g. ``expose_snapshots``."""
        with self._db.unit() as uow:
            return self._shown(tenant_id, uow.settings.document(tenant_id)).get(key)
