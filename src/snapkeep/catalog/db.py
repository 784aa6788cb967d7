"""Database engine, sessions and migrations: the only place that opens a database connection."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from snapkeep.catalog.stores import Unit
from snapkeep.errors import Conflict, DataDirFull, ServiceUnavailable
from snapkeep.model.principal import Principal

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode, foreign keys and a busy timeout on every connection."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


class Database:
    """Hands out units of work; the service layer owns the transaction (``with db.unit() as uow``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        event.listen(self._sessions, "after_flush", _wrote_rows)
        event.listen(self._sessions, "do_orm_execute", _wrote_if_not_select)
        self._generation = 0
        self._generation_lock = threading.Lock()

    @property
    def generation(self) -> int:
        """How many units have committed a change since this catalog was opened.

        Read before a unit's first query and compared after, an unchanged count says the catalog is still
        as that unit found it, so what it read need not be read again (a take reads its subject before it
        claims its guards and, if nothing changed meanwhile, not again after). This process is the
        catalog's only writer; a unit that wrote commits and counts under one lock, under which the count
        is read, so a change is never missed: a read of the count comes either before a commit (and the
        count moves) or after the commit was counted (and its change is seen). Writes are seen as the
        session flushes rows or runs any statement but a SELECT; one sent through a raw connection would
        not be.
        """
        with self._generation_lock:
            return self._generation

    @contextmanager
    def unit(self, scope: Principal | None = None) -> Iterator[Unit]:
        """One unit of work (:mod:`snapkeep.catalog.stores`) seen through ``scope`` (None: the system);
        commits on success, rolls back on any error; translates driver errors."""
        session = self._sessions()
        try:
            yield Unit(session, scope.tenant_id if scope is not None else None)
            session.flush()  # whether the unit wrote is known once its changes are sent
            if session.info.get(_WROTE):
                with self._generation_lock:
                    session.commit()
                    self._generation += 1
            else:
                session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict(f"the catalog refused the change: {exc.orig}") from exc
        except OperationalError as exc:
            session.rollback()
            if getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL:  # extended codes too
                raise DataDirFull(f"the catalog could not be written: its disk is full ({exc.orig})") from exc
            raise ServiceUnavailable(f"the catalog is not available: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


_WROTE = "snapkeep_wrote"  # set in a session's info by the first change it sends to the database


def _wrote_rows(session: Session, _flush_context: object) -> None:
    session.info[_WROTE] = True


def _wrote_if_not_select(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[_WROTE] = True
