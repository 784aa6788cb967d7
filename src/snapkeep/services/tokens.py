"""API tokens: role (admin, operator, viewer) and scope (the system, or one tenant)."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from snapkeep.catalog import repo
from snapkeep.catalog.db import Database
from snapkeep.catalog.tables import TokenRow
from snapkeep.errors import Forbidden, Unauthorized


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    tenant_id: str | None

    @property
    def is_system_admin(self) -> bool:
        """An admin of the whole system (not of one tenant): the only caller shown host paths."""
        return self.role is Role.ADMIN and self.tenant_id is None

    def require(self, role: Role) -> None:
        order = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
        if order.index(self.role) < order.index(role):
            raise Forbidden(f"token {self.name!r} has role {self.role}; this needs {role}")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    def create(self, name: str, role: Role, tenant_id: str | None = None) -> str:
        """Create a token and return its secret (shown once; only its hash is stored)."""
        secret = "sk_" + secrets.token_urlsafe(32)
        with self._db.transaction() as s:
            s.add(
                TokenRow(
                    id=str(uuid.uuid4()),
                    name=name,
                    token_hash=_hash(secret),
                    role=role,
                    tenant_id=tenant_id,
                    created_at=self._clock(),
                )
            )
        return secret

    def ensure_admin_file(self, path: str) -> None:
        """At first start write an admin token to ``path`` (mode 0600); later starts keep it, unless the
        catalog does not know it (a new catalog): then a new one replaces it, so the admin is never locked out."""
        if os.path.exists(path):
            with open(path) as f, self._db.transaction() as s:
                if repo.find_token_row(s, _hash(f.read().strip())) is not None:
                    return
        secret = self.create(f"admin-{uuid.uuid4().hex[:8]}", Role.ADMIN)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        os.replace(tmp, path)

    def authenticate(self, secret: str | None) -> Principal:
        if not secret:
            raise Unauthorized("missing API token (Authorization: Bearer <token>)")
        with self._db.transaction() as s:
            row = repo.find_token_row(s, _hash(secret))
            if row is None:
                raise Unauthorized("unknown API token")
            return Principal(name=row.name, role=Role(row.role), tenant_id=row.tenant_id)
