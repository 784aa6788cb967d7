"""Logins against a real SQLite catalog, with what an attacker controls: the user name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.errors import TooManyAttempts, Unauthorized
from snapkeep.model.names import MAX_NAME_LENGTH
from snapkeep.model.principal import SYSTEM, Role
from snapkeep.services import logins as logins_module
from snapkeep.services.audit import Audit
from snapkeep.services.logins import Logins
from snapkeep.services.users import Users

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _logins(tmp_path: Path) -> Logins:
    return _logins_and_users(tmp_path)[0]


def _logins_and_users(tmp_path: Path) -> tuple[Logins, Users]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    db = Database(engine)
    audit = Audit(db, lambda: T0)
    logins = Logins(db, audit, lambda: T0, idle=timedelta(minutes=30), lifetime=timedelta(hours=12))
    return logins, Users(db, audit, lambda: T0)


def test_names_longer_than_any_user_count_as_one_name(tmp_path: Path) -> None:
    """The limits remember each name tried for a while: a megabyte-long name must not be kept whole (a
    thousand of them would be a gigabyte). No user has a name that long, so they all count as one."""
    logins = _logins(tmp_path)
    long = "x" * (MAX_NAME_LENGTH + 1)
    for i in range(5):  # per user: 5; the addresses differ, so only the name's limit can refuse
        with pytest.raises(Unauthorized):
            logins.login(f"{long}{i}" * 1000, "wrong password", f"192.0.2.{i}")
    with pytest.raises(TooManyAttempts):
        logins.login(f"{long}-another", "wrong password", "192.0.2.99")


@pytest.mark.parametrize("change", ["password", "delete"])
def test_an_old_password_opens_no_session_once_changed_during_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """A check takes most of a second; an admin who changes the password (or removes the user) in that time
    has ended every session of the user, and the login being checked must not open a new one."""
    logins, users = _logins_and_users(tmp_path)
    users.create(SYSTEM, "alice", "old password", Role.VIEWER)
    real_verify = logins_module.verify_password

    def verify_while_the_admin_acts(password_hash: str | None, password: str) -> bool:
        if change == "password":
            users.update(SYSTEM, "alice", password="new password")
        else:
            users.delete(SYSTEM, "alice")
        return real_verify(password_hash, password)

    monkeypatch.setattr(logins_module, "verify_password", verify_while_the_admin_acts)
    with pytest.raises(Unauthorized):
        logins.login("alice", "old password", "192.0.2.1")
