"""Database engine, sessions and migrations: the only place that opens a database connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import sessionmaker

from snapkeep.catalog.stores import Unit
from snapkeep.errors import Conflict, ServiceUnavailable
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

    @contextmanager
    def unit(self, scope: Principal | None = None) -> Iterator[Unit]:
        """One unit of work (:mod:`snapkeep.catalog.stores`) seen through ``scope`` (None: the system);
        commits on success, rolls back on any error; translates driver errors."""
        session = self._sessions()
        try:
            yield Unit(session, scope.tenant_id if scope is not None else None)
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict(f"the catalog refused the change: {exc.orig}") from exc
        except OperationalError as exc:
            session.rollback()
            raise ServiceUnavailable(f"the catalog is not available: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
