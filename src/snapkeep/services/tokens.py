"""API tokens: role (admin, operator, viewer) and scope (the system, or one tenant)."""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime

from snapkeep.catalog.db import Database
from snapkeep.errors import Unauthorized
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import Token


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._clock = clock

    def create(self, name: str, role: Role, tenant_id: str | None = None) -> str:
        """Create a token and return its secret (shown once; only its hash is stored)."""
        secret = "sk_" + secrets.token_urlsafe(32)
        with self._db.unit() as uow:
            uow.tokens.insert(
                Token(
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
            with open(path) as f, self._db.unit() as uow:
                if uow.tokens.find_by_hash(_hash(f.read().strip())) is not None:
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
        with self._db.unit() as uow:
            token = uow.tokens.find_by_hash(_hash(secret))
        if token is None:
            raise Unauthorized("unknown API token")
        return Principal(name=token.name, role=token.role, tenant_id=token.tenant_id)
