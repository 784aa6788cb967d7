"""The catalog and its pool belong together (services/pool_binding.py): the checks made before the pool is
opened, on markers as the pool writes them. A refusal reads only: the directory stays as it was.

The real cases (a pool's disk not mounted at the pool directory, another disk there, the order of the
service's start) are in tests/integration/test_pool_binding.py."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from snapkeep.catalog.db import Database
from snapkeep.errors import PoolError, WrongPool
from snapkeep.model.types import VolumeRecord
from snapkeep.services.pool_binding import BOUND_TO, bind_to_pool, check_pool_binding, is_new_installation
from snapkeep.storage.pool import POOL_FILE, POOL_ID
from tests.unit.test_catalog_pages import T0


def a_pool(root: Path, pool_id: Any, datasets: tuple[str, ...] = ()) -> str:
    """A pool directory with a marker as a pool writes it (``pool_id`` None: as before pools had ids)."""
    (root / "datasets").mkdir(parents=True)
    for dataset in datasets:
        (root / "datasets" / dataset).mkdir()
    marker = {"format_version": 3, "driver": "btrfs", **({POOL_ID: pool_id} if pool_id is not None else {})}
    (root / POOL_FILE).write_text(json.dumps(marker))
    return str(root)


def empty_dir(tmp_path: Path) -> str:
    """A pool directory over which no disk is mounted (the catalog's file is in ``tmp_path`` itself)."""
    (tmp_path / "pool").mkdir()
    return str(tmp_path / "pool")


def with_volume(db: Database, dataset: str) -> Database:
    with db.unit() as uow:
        uow.volumes.insert(VolumeRecord(str(uuid.uuid4()), dataset, "", 1 << 20, None, dataset, {}, T0))
    return db


def bound_to(db: Database) -> str | None:
    with db.unit() as uow:
        return uow.meta.get(BOUND_TO)


def test_a_new_catalog_takes_the_pool_it_is_given_and_is_bound_to_it(db: Database, tmp_path: Path) -> None:
    assert is_new_installation(db)
    check_pool_binding(db, empty_dir(tmp_path))  # a new installation: no pool yet
    check_pool_binding(db, str(tmp_path / "not made yet"))
    check_pool_binding(db, a_pool(tmp_path / "lost-catalog", "p-1"))  # a lost catalog, rebuilt from its pool
    bind_to_pool(db, "p-1")
    bind_to_pool(db, "p-1")
    assert bound_to(db) == "p-1" and not is_new_installation(db)
    check_pool_binding(db, str(tmp_path / "lost-catalog"))


def test_a_bound_catalog_refuses_a_directory_without_its_pool(db: Database, tmp_path: Path) -> None:
    bind_to_pool(db, "p-1")
    with pytest.raises(WrongPool, match=r"no snapkeep pool .* is the pool's disk mounted\?"):
        check_pool_binding(db, empty_dir(tmp_path))
    assert os.listdir(tmp_path / "pool") == []
    with pytest.raises(WrongPool, match="no snapkeep pool"):
        check_pool_binding(db, str(tmp_path / "disk" / "pool"))  # beneath a mount point: not even the folder
    assert not (tmp_path / "disk").exists()


@pytest.mark.parametrize("found", ["p-2", None])
def test_a_bound_catalog_refuses_another_pool(db: Database, tmp_path: Path, found: str | None) -> None:
    bind_to_pool(db, "p-1")
    root = a_pool(tmp_path / "pool", found)
    before = (Path(root) / POOL_FILE).read_text()
    with pytest.raises(WrongPool, match="another snapkeep pool") as refused:
        check_pool_binding(db, root)
    assert refused.value.details == {"pool": root, "expected": "p-1", "found": found}
    assert (Path(root) / POOL_FILE).read_text() == before
    assert sorted(os.listdir(root)) == sorted([POOL_FILE, "datasets"])


def test_a_catalog_from_before_ids_adopts_only_the_pool_that_holds_its_data(db: Database, tmp_path: Path) -> None:
    with_volume(db, "volume-ours")
    with pytest.raises(WrongPool, match="is the pool's disk mounted"):
        check_pool_binding(db, empty_dir(tmp_path))
    assert os.listdir(tmp_path / "pool") == []
    stray = a_pool(tmp_path / "made-beneath", "p-stray", ("volume-someone-elses",))  # by an older snapkeep
    with pytest.raises(WrongPool, match="none of the catalog's 1 volumes and VMs"):
        check_pool_binding(db, stray)
    check_pool_binding(db, a_pool(tmp_path / "old-pool", None, ("volume-ours",)))  # gets an id when opened
    assert not is_new_installation(db)


def test_a_rebuild_needs_a_pool_and_takes_it_over_an_empty_catalogs_binding(db: Database, tmp_path: Path) -> None:
    with pytest.raises(WrongPool, match=r"no snapkeep pool .* to rebuild the catalog from"):
        check_pool_binding(db, empty_dir(tmp_path), rebuild=True)
    bind_to_pool(db, "p-stray")  # an empty catalog bound to a pool made where the disk was not mounted
    real = a_pool(tmp_path / "real", "p-real")
    with pytest.raises(WrongPool, match="another snapkeep pool"):
        check_pool_binding(db, real)
    check_pool_binding(db, real, rebuild=True)
    bind_to_pool(db, "p-real", rebuilt=True)
    assert bound_to(db) == "p-real"
    with_volume(db, "volume-ours")  # a catalog that holds objects is not rebuilt: checked as any other
    with pytest.raises(WrongPool, match="another snapkeep pool"):
        check_pool_binding(db, a_pool(tmp_path / "other", "p-other"), rebuild=True)


def test_a_pool_that_changed_since_the_check_is_not_bound(db: Database) -> None:
    bind_to_pool(db, "p-1")
    with pytest.raises(WrongPool, match=r"the pool opened \(p-2\) is not the catalog's \(p-1\)"):
        bind_to_pool(db, "p-2")
    assert bound_to(db) == "p-1"


def test_a_marker_that_is_not_one_is_a_pool_error(db: Database, tmp_path: Path) -> None:
    for text in ("{not json", "[]", json.dumps({"format_version": 3, POOL_ID: 7})):
        (tmp_path / POOL_FILE).write_text(text)
        with pytest.raises(PoolError, match="snapkeep pool marker"):
            check_pool_binding(db, str(tmp_path))
    (tmp_path / POOL_FILE).unlink()
    (tmp_path / POOL_FILE).mkdir()
    with pytest.raises(PoolError, match="cannot be read as a snapkeep pool marker"):
        check_pool_binding(db, str(tmp_path))
