"""Users of the web UI: made, changed and removed by admins, within their own scope.

The rules are the API tokens' (:mod:`snapkeep.services.tokens`): an admin manages the users of its own
scope and of the tenants beneath it, never giving a role above its own; every other role may only read its
own scope's users. A changed password or role, and a removed user, end that user's sessions at once.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import Forbidden, NameClash
from snapkeep.model.names import check_name, first_free
from snapkeep.model.paging import Page, Window
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.user import User
from snapkeep.services.audit import Audit
from snapkeep.services.passwords import hash_password


class Users:
    def __init__(self, db: Database, audit: Audit, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock

    def create(self, who: Principal, name: str, password: str, role: Role, tenant: str | None = None) -> User:
        """A new user of ``tenant`` (else the caller's own scope), of at most the caller's role."""
        who.require(Role.ADMIN)
        check_name(name, "user name")
        with self._db.unit(who) as uow:  # refusals first: a hash costs 64 MiB and most of a second
            tenant_id = uow.tenants.owner(tenant)
            self._check_free(uow, name)
        password_hash = hash_password(password)
        with self._db.unit(who) as uow:
            self._check_free(uow, name)  # again: someone may have taken it meanwhile
            user = uow.users.insert(
                User(
                    id=str(uuid.uuid4()),
                    name=name,
                    password_hash=password_hash,
                    role=role,
                    tenant_id=tenant_id,
                    created_at=self._clock(),
                )
            )
            self._audit.done(uow, who, "user.create", f"user:{name}", f"role:{role}", owner=tenant_id)
            return user

    @staticmethod
    def _check_free(uow: Unit, name: str) -> None:
        if uow.users.find_by_name(name) is not None:
            raise NameClash(f"a user named {name!r} already exists", name=name)

    def page(self, who: Principal, window: Window) -> Page[User]:
        """The users of the caller's subtree, by name."""
        with self._db.unit(who) as uow:
            return uow.users.page(window)

    def show(self, who: Principal, ref: str) -> User:
        with self._db.unit(who) as uow:
            return uow.users.resolve(ref)

    def update(self, who: Principal, ref: str, password: str | None = None, role: Role | None = None) -> User:
        """A new password and/or role; either logs the user out everywhere."""
        who.require(Role.ADMIN)
        changes: dict[str, object] = {}
        if password is not None:
            changes["password_hash"] = hash_password(password)
        if role is not None:
            changes["role"] = role
        with self._db.unit(who) as uow:
            user = uow.users.resolve(ref)
            if not changes:
                return user
            if user.name == who.name and role is not None and role is not user.role:
                raise Forbidden("a user cannot change their own role (another admin can)")
            changed = uow.users.update(user.id, **changes)
            uow.web_sessions.end_of_user(user.id)
            what = ", ".join(sorted("password" if key == "password_hash" else f"role:{role}" for key in changes))
            self._audit.done(uow, who, "user.update", f"user:{user.name}", what, owner=user.tenant_id)
            return changed

    def delete(self, who: Principal, ref: str) -> None:
        who.require(Role.ADMIN)
        with self._db.unit(who) as uow:
            user = uow.users.resolve(ref)
            if user.name == who.name:
                raise Forbidden("a user cannot delete themselves (another admin can)")
            uow.web_sessions.end_of_user(user.id)
            uow.users.delete(user.id)
            self._audit.done(uow, who, "user.delete", f"user:{user.name}", owner=user.tenant_id)

    def ensure_first_admin(self, path: str) -> str | None:
        """With no user of the system's own scope, make ``admin`` (a system admin; ``admin_2``… if a tenant's
        user has that name) with a random password written to ``path`` (mode 0600), so that a new
        installation, or one whose catalog was rebuilt with its tenants' users only (from whole-system
        snapshots older than the system's own users in them), can be logged in to; the name, if it made one."""
        with self._db.unit() as uow:
            if uow.users.any_of_the_system():
                return None
            name = first_free("admin", lambda n: uow.users.find_by_name(n) is not None)
        password = secrets.token_urlsafe(12)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        self.create(SYSTEM, name, password, Role.ADMIN)
        os.replace(path + ".tmp", path)
        return name
