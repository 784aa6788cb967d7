"""The catalog's write count (``Database.generation``): what lets a take skip reading its subject a second
time once it holds its guards. It must move on every committed change, however the change was written (a
row added, a row changed in place, a bulk delete), and on nothing else: a read, or a change rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.model.principal import Role
from snapkeep.model.types import Tenant
from snapkeep.model.user import User, WebSession
from tests.unit.test_catalog_pages import T0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    yield Database(engine)
    engine.dispose()


def _session(session_id: str) -> WebSession:
    return WebSession(session_id, "u-1", "csrf", T0, T0, T0 + timedelta(hours=1))


def test_every_committed_change_moves_the_generation_and_nothing_else_does(db: Database) -> None:
    start = db.generation
    with db.unit() as uow:
        uow.tenants.visible()
        uow.web_sessions.find("none")
    assert db.generation == start, "a unit that only read"

    with db.unit() as uow:
        uow.tenants.insert(Tenant("t-a", "a", None, "", T0))
    assert db.generation == start + 1, "a row added"

    with db.unit() as uow:
        uow.users.insert(User("u-1", "ann", "hash", Role.ADMIN, None, T0))
        uow.web_sessions.insert(_session("s-1"))
    after_insert = db.generation
    with db.unit() as uow:
        uow.web_sessions.touch("s-1", T0 + timedelta(minutes=1), T0 + timedelta(hours=2))  # flushed by the commit
    assert db.generation == after_insert + 1, "a row changed in place"

    with db.unit() as uow:
        uow.web_sessions.end("s-1")  # a bulk DELETE, not the ORM's flush
    assert db.generation == after_insert + 2, "a bulk delete"


def test_a_change_rolled_back_leaves_the_generation(db: Database) -> None:
    start = db.generation
    with pytest.raises(RuntimeError), db.unit() as uow:
        uow.tenants.insert(Tenant("t-a", "a", None, "", T0))
        uow.web_sessions.end_of_user("u-1")
        raise RuntimeError("the caller fails after writing")
    assert db.generation == start
    with db.unit() as uow:
        assert uow.tenants.visible() == []
