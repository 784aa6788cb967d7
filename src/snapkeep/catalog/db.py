"""Database engine, sessions and migrations: the only place that opens a database connection."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Delete, Engine, Table, create_engine, event
from sqlalchemy import inspect as inspect_row
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from snapkeep.catalog.generations import ANY_TABLE, WRITTEN, Generations
from snapkeep.catalog.stores import Unit
from snapkeep.catalog.tables import Base
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
        self._tables: Counter[str] = Counter()  # per table: how many committed units changed it (ANY_TABLE too)
        self._tables_lock = threading.Lock()  # held only to copy or add to those counts, never across a commit
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

    def _tables_now(self) -> Counter[str]:
        """The per-table counts as of now: under the lock a commit and its counting share, so that a change
        already visible is already counted (as for :attr:`generation`)."""
        with self._generation_lock, self._tables_lock:
            return self._tables.copy()

    @contextmanager
    def unit(self, scope: Principal | None = None) -> Iterator[Unit]:
        """One unit of work (:mod:`snapkeep.catalog.stores`) seen through ``scope`` (None: the system);
        commits on success, rolls back on any error; translates driver errors."""
        session = self._sessions()
        with self._tables_lock:
            seen = Generations(self._tables.copy(), self._tables_now)  # before the first query
        try:
            yield Unit(session, scope.tenant_id if scope is not None else None, seen)
            session.flush()  # whether the unit wrote is known once its changes are sent
            written = session.info.get(WRITTEN)
            if written:
                with self._generation_lock:
                    session.commit()
                    self._generation += 1
                    with self._tables_lock:
                        self._tables.update(written)
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


def _note_written(session: Session, tables: Iterable[str]) -> None:
    session.info.setdefault(WRITTEN, set()).update(tables)


def _tables_of(rows: Iterable[object]) -> set[str]:
    return {table.name for row in rows for table in inspect_row(row).mapper.tables if isinstance(table, Table)}


def _wrote_rows(session: Session, _flush_context: object) -> None:
    tables = _tables_of((*session.new, *session.dirty)) | _with_dependents(_tables_of(session.deleted))
    _note_written(session, tables or {ANY_TABLE})


def _wrote_if_not_select(state: ORMExecuteState) -> None:
    if state.is_select:
        return
    statement = state.statement
    table = getattr(statement, "table", None)
    if not isinstance(table, Table):
        _note_written(state.session, {ANY_TABLE})
    else:
        _note_written(state.session, _with_dependents([table.name]) if isinstance(statement, Delete) else {table.name})


def _referring(tables: Iterable[Table]) -> dict[str, frozenset[str]]:
    """For each table, the tables whose rows a delete of its rows may change too (through foreign keys: a
    delete that cascades), transitively. Keys never change, so an update changes its own table only."""
    direct: dict[str, set[str]] = {}
    for table in tables:
        for key in table.foreign_keys:
            direct.setdefault(key.column.table.name, set()).add(table.name)
    closure: dict[str, frozenset[str]] = {}
    for name in direct:
        found: set[str] = set()
        todo = [name]
        while todo:
            for other in direct.get(todo.pop(), ()):
                if other not in found:
                    found.add(other)
                    todo.append(other)
        closure[name] = frozenset(found)
    return closure


_REFERRING = _referring(Base.metadata.tables.values())


def _with_dependents(tables: Iterable[str]) -> set[str]:
    return {related for name in tables for related in (name, *_REFERRING.get(name, ()))}
