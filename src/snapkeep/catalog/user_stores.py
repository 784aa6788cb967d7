"""Users of the web UI and their login sessions (see :mod:`snapkeep.model.user`).

Users are scoped as API tokens are: a scope sees and places users of its own subtree only, while a login
finds any user by name (authentication comes before any scope). Sessions belong to no scope: they are found
by the hash of the cookie's secret, and end with their user (the table's ``ON DELETE CASCADE``).
"""

from __future__ import annotations

import builtins
from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from snapkeep.catalog.store_base import CredentialStore, as_utc
from snapkeep.catalog.tables import UserRow, WebSessionRow
from snapkeep.model.user import User, WebSession


class UserStore(CredentialStore[User]):
    row = UserRow
    record = User
    noun = "user"

    def any_of_the_system(self) -> bool:
        """Whether a user of the system's own scope exists (one who can log in to manage everything)."""
        return self._s.scalar(select(UserRow.id).where(UserRow.tenant_id.is_(None)).limit(1)) is not None

    def in_tenants(self, tenant_ids: frozenset[str | None]) -> builtins.list[User]:
        """The users of these tenants, None for the system's own (a tenant being deleted takes its users
        along; a snapshot of the whole system records the system's too)."""
        owned: ColumnElement[bool] = UserRow.tenant_id.in_([i for i in tenant_ids if i is not None])
        if None in tenant_ids:
            owned = or_(owned, UserRow.tenant_id.is_(None))
        return [self._to(row) for row in self._s.scalars(select(UserRow).where(owned))]


class WebSessionStore:
    def __init__(self, session: Session) -> None:
        self._s = session

    def insert(self, web_session: WebSession) -> None:
        self._s.add(WebSessionRow(**web_session.__dict__))
        self._s.flush()

    def find(self, session_id: str) -> WebSession | None:
        row = self._s.get(WebSessionRow, session_id)
        if row is None:
            return None
        return WebSession(
            id=row.id,
            user_id=row.user_id,
            csrf=row.csrf,
            created_at=as_utc(row.created_at),
            seen_at=as_utc(row.seen_at),
            expires_at=as_utc(row.expires_at),
        )

    def touch(self, session_id: str, seen_at: datetime, expires_at: datetime) -> None:
        row = self._s.get(WebSessionRow, session_id)
        if row is not None:
            row.seen_at, row.expires_at = seen_at, expires_at

    def end(self, session_id: str) -> None:
        self._s.execute(delete(WebSessionRow).where(WebSessionRow.id == session_id))

    def end_of_user(self, user_id: str) -> None:
        """Every session of a user (a changed password or role logs them out everywhere)."""
        self._s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))

    def end_expired(self, now: datetime) -> int:
        result = self._s.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
        return int(result.rowcount)  # type: ignore[attr-defined]
