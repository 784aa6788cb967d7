"""The catalog and its pool belong together (services/pool_binding.py): the checks made before the pool is
opened, on markers as the pool writes them. A refusal reads only: the directory stays as it was.

The real case (a pool's disk not mounted under a running service's pool directory, then another disk) is
in tests/integration/test_pool_binding.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from snapkeep.catalog.db import Database
from snapkeep.errors import PoolError, WrongPool
from snapkeep.services.pool_binding import BOUND_TO, bind_to_pool, check_pool_binding
from snapkeep.storage.pool import POOL_FILE, POOL_ID
from tests.unit.test_catalog_counts import _volume


def a_pool(root: Path, pool_id: str | None) -> str:
    """A pool directory with a marker as a pool writes it (``pool_id`` None: as before pools had ids)."""
    root.mkdir()
    marker = {"format_version": 3, "driver": "btrfs", **({POOL_ID: pool_id} if pool_id else {})}
    (root / POOL_FILE).write_text(json.dumps(marker))
    return str(root)


def with_objects(db: Database) -> Database:
    with db.unit() as uow:
        uow.volumes.insert(_volume(None))
    return db


def bound_to(db: Database) -> str | None:
    with db.unit() as uow:
        return uow.meta.get(BOUND_TO)


def test_a_new_catalog_takes_the_pool_it_is_given_and_is_bound_to_it(db: Database, tmp_path: Path) -> None:
    check_pool_binding(db, empty_dir(tmp_path))  # a new installation: no pool yet
    check_pool_binding(db, a_pool(tmp_path / "lost-catalog", "p-1"))  # a lost catalog, rebuilt from its pool
    bind_to_pool(db, "p-1")
    bind_to_pool(db, "p-2")  # once bound, it stays
    assert bound_to(db) == "p-1"
    check_pool_binding(db, str(tmp_path / "lost-catalog"))


def empty_dir(tmp_path: Path) -> str:
    """A pool directory over which no disk is mounted (the catalog's file is in ``tmp_path`` itself)."""
    (tmp_path / "pool").mkdir()
    return str(tmp_path / "pool")


def test_a_bound_catalog_refuses_a_directory_without_its_pool(db: Database, tmp_path: Path) -> None:
    bind_to_pool(db, "p-1")
    with pytest.raises(WrongPool, match=r"no snapkeep pool .* is the pool's disk mounted\?"):
        check_pool_binding(db, empty_dir(tmp_path))
    assert os.listdir(tmp_path / "pool") == []


@pytest.mark.parametrize("found", ["p-2", None])
def test_a_bound_catalog_refuses_another_pool(db: Database, tmp_path: Path, found: str | None) -> None:
    bind_to_pool(db, "p-1")
    root = a_pool(tmp_path / "pool", found)
    before = (Path(root) / POOL_FILE).read_text()
    with pytest.raises(WrongPool, match="another snapkeep pool") as refused:
        check_pool_binding(db, root)
    assert refused.value.details == {"pool": root, "expected": "p-1", "found": found}
    assert (Path(root) / POOL_FILE).read_text() == before and os.listdir(root) == [POOL_FILE]


def test_a_catalog_from_before_ids_refuses_no_pool_and_adopts_the_one_it_finds(db: Database, tmp_path: Path) -> None:
    with_objects(db)
    with pytest.raises(WrongPool, match="is the pool's disk mounted"):
        check_pool_binding(db, empty_dir(tmp_path))
    assert os.listdir(tmp_path / "pool") == []
    check_pool_binding(db, a_pool(tmp_path / "old-pool", None))  # the pool gets an id when opened
    assert bound_to(db) is None


def test_a_marker_that_is_not_one_is_a_pool_error(db: Database, tmp_path: Path) -> None:
    for text in ("{not json", "[]"):
        (tmp_path / POOL_FILE).write_text(text)
        with pytest.raises(PoolError, match="is not a snapkeep pool marker"):
            check_pool_binding(db, str(tmp_path))
