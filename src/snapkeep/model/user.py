"""Users of the web UI and their login sessions, as the catalog keeps them.

A user has a role and a scope exactly as an API token has (:mod:`snapkeep.model.principal`); logging in
gives a browser a session whose cookie holds a secret the catalog knows only by its SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from snapkeep.model.principal import Principal, Role


@dataclass(frozen=True)
class User:
    id: str
    name: str
    password_hash: str  # argon2id, in its PHC string form
    role: Role
    tenant_id: str | None
    created_at: datetime

    @property
    def principal(self) -> Principal:
        """Who the user acts as: their name, role and scope."""
        return Principal(name=self.name, role=self.role, tenant_id=self.tenant_id)


@dataclass(frozen=True)
class WebSession:
    id: str  # the SHA-256 of the cookie's secret
    user_id: str
    csrf: str  # the token every form and htmx request of this session must send back
    created_at: datetime
    seen_at: datetime
    expires_at: datetime
