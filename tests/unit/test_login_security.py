"""Logins against a real SQLite catalog, with what an attacker controls: the user name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.errors import TooManyAttempts, Unauthorized
from snapkeep.model.names import MAX_NAME_LENGTH
from snapkeep.services.audit import Audit
from snapkeep.services.logins import Logins

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _logins(tmp_path: Path) -> Logins:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    db = Database(engine)
    return Logins(db, Audit(db, lambda: T0), lambda: T0, idle=timedelta(minutes=30), lifetime=timedelta(hours=12))


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
