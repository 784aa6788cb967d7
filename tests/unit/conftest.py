"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from snapkeep.catalog.db import Database, make_engine, migrate


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """An empty catalog (SQLite, migrated) of the test's own; a module with rows to start from has its own."""
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    yield Database(engine)
    engine.dispose()
