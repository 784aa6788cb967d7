"""The catalog's write count (``Database.generation``): what lets a take skip reading its subject a second
time once it holds its guards. It must move on every committed change, however the change was written (a
row added, a row changed in place, a bulk delete), and on nothing else: a read, or a change rolled back."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from snapkeep.catalog.db import Database
from snapkeep.model.principal import Role
from snapkeep.model.types import Tenant
from snapkeep.model.user import User, WebSession
from tests.unit.test_catalog_pages import T0


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


def test_a_raw_statement_that_is_not_a_select_counts(db: Database) -> None:
    start = db.generation
    with db.unit() as uow:
        uow.web_sessions.find("none")
        db_session = uow.web_sessions._s  # as a careless store might
        db_session.execute(text("DELETE FROM web_sessions WHERE id = 'none'"))
    assert db.generation == start + 1


def test_a_count_read_once_a_change_is_committed_includes_it(db: Database) -> None:
    """A commit and its count are one step for readers of the count: one read right after the change became
    visible (while its unit is still finishing) already counts it, or a take could compare an unchanged
    count and keep a subject read before that change."""
    committed, counted, writers = threading.Event(), [], set()

    def slow_after_commit(_session: object) -> None:
        if threading.get_ident() in writers:
            committed.set()
            time.sleep(0.3)  # the writer's unit has not returned yet

    event.listen(db._sessions, "after_commit", slow_after_commit)  # the fault switch
    start = db.generation

    def writer() -> None:
        writers.add(threading.get_ident())
        with db.unit() as uow:
            uow.tenants.insert(Tenant("t-a", "a", None, "", T0))

    thread = threading.Thread(target=writer)
    thread.start()
    assert committed.wait(10)
    with db.unit() as uow:
        assert [t.id for t in uow.tenants.visible()] == ["t-a"]  # the change is visible
    counted.append(db.generation)
    thread.join()
    assert counted == [start + 1]
