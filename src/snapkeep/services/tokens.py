"""API tokens: role (admin, operator, viewer) and scope (the system, or one tenant).

The secret is shown once, when the token is made; the catalog keeps only its SHA-256. A caller makes
tokens for its own scope or a tenant beneath it, with at most its own role (a token never gets more than
its creator has), and sees and revokes only the tokens of its own subtree, of at most its own role.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime

from snapkeep.catalog.db import Database
from snapkeep.errors import Forbidden, NameClash, Unauthorized
from snapkeep.model.names import check_name
from snapkeep.model.paging import Page, Window
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

    def _within(self, who: Principal, role: Role, what: str) -> None:
        try:
            who.require(role)
        except Forbidden:
            raise Forbidden(
                f"token {who.name!r} has role {who.role}: it cannot {what} a token of role {role}"
            ) from None

    def issue(self, who: Principal, name: str, role: Role, tenant: str | None = None) -> tuple[Token, str]:
        """A new token for ``tenant`` (else the caller's own scope) and its secret, shown this once."""
        who.require(Role.OPERATOR)
        self._within(who, role, "make")
        check_name(name, "token name")
        with self._db.unit(who) as uow:
            tenant_id = uow.tenants.owner(tenant)
            if uow.tokens.find_by_name(name) is not None:
                raise NameClash(f"a token named {name!r} already exists", name=name)
        secret = self.create(name, role, tenant_id)
        with self._db.unit(who) as uow:
            token = uow.tokens.find_by_hash(_hash(secret))
            assert token is not None
            uow.audit.append(self._clock(), who, "token.create", f"token:{name}", "done", f"role:{role}", tenant_id)
            return token, secret

    def listing(self, who: Principal) -> list[Token]:
        with self._db.unit(who) as uow:
            return uow.tokens.list()

    def page(self, who: Principal, window: Window) -> Page[Token]:
        """The tokens of the caller's subtree, by name."""
        with self._db.unit(who) as uow:
            return uow.tokens.page(window)

    def show(self, who: Principal, ref: str) -> Token:
        """A token of the caller's subtree, by id or name (never its secret: only the hash is kept)."""
        with self._db.unit(who) as uow:
            return uow.tokens.resolve(ref)

    def revoke(self, who: Principal, ref: str) -> None:
        """Delete a token of the caller's subtree, of at most the caller's role; its secret stops working."""
        who.require(Role.OPERATOR)
        with self._db.unit(who) as uow:
            token = uow.tokens.resolve(ref)
            self._within(who, token.role, "revoke")
            uow.tokens.delete(token.id)
            uow.audit.append(self._clock(), who, "token.revoke", f"token:{token.name}", "done", "", token.tenant_id)

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
