"""The catalog and its pool belong together (services/pool_binding.py): the checks made before the pool is
opened, on markers as the pool writes them, and the binding made after a start settled. A refusal reads
only: the directory stays as it was.

The real cases (a pool's disk not mounted at the pool directory, another disk there, the order of the
service's start) are in tests/integration/test_pool_binding.py."""

from __future__ import annotations

import errno
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from snapkeep.catalog.db import Database
from snapkeep.errors import PoolError, PoolFull, WrongPool
from snapkeep.model.types import SnapshotStatus, VolumeRecord
from snapkeep.services.catalog_rebuild import UNFINISHED
from snapkeep.services.pool_binding import BOUND_TO, EPOCH, bind_to_pool, check_pool_binding, is_new_installation
from snapkeep.storage.pool import POOL_EPOCH, POOL_FILE, POOL_ID, Pool, read_marker
from tests.unit.test_catalog_pages import T0, snapshot


def a_pool(root: Path, pool_id: Any, datasets: tuple[str, ...] = (), epoch: int | None = None) -> str:
    """A pool directory with a marker as a pool writes it (``pool_id`` None: as before pools had ids)."""
    (root / "datasets").mkdir(parents=True)
    for dataset in datasets:
        (root / "datasets" / dataset).mkdir()
    marker: dict[str, Any] = {"format_version": 3, "driver": "btrfs"}
    marker |= ({POOL_ID: pool_id} if pool_id is not None else {}) | ({POOL_EPOCH: epoch} if epoch is not None else {})
    (root / POOL_FILE).write_text(json.dumps(marker))
    return str(root)


def empty_dir(tmp_path: Path) -> str:
    """A pool directory over which no disk is mounted (the catalog's file is in ``tmp_path`` itself)."""
    (tmp_path / "pool").mkdir(exist_ok=True)
    return str(tmp_path / "pool")


def meta(db: Database, **values: str) -> None:
    """The catalog as an earlier start left it (``BOUND_TO`` and ``EPOCH`` keys)."""
    with db.unit() as uow:
        for key, value in values.items():
            uow.meta.put(key, value)


def bound(db: Database, pool_id: str, epoch: int = 0) -> None:
    meta(db, **{BOUND_TO: pool_id, EPOCH: str(epoch)})


def with_volume(db: Database, dataset: str) -> Database:
    with db.unit() as uow:
        uow.volumes.insert(VolumeRecord(str(uuid.uuid4()), dataset, "", 1 << 20, None, dataset, {}, T0))
    return db


def read(db: Database, key: str) -> str | None:
    with db.unit() as uow:
        return uow.meta.get(key)


def test_a_new_catalog_takes_the_pool_it_is_given(db: Database, tmp_path: Path) -> None:
    assert is_new_installation(db)
    check_pool_binding(db, empty_dir(tmp_path))  # a new installation: no pool yet
    check_pool_binding(db, str(tmp_path / "not made yet"))
    check_pool_binding(db, a_pool(tmp_path / "lost-catalog", "p-1", epoch=7))  # a lost catalog, rebuilt from it
    bound(db, "p-1")
    assert not is_new_installation(db)


def test_the_binding_advances_the_epoch_in_the_marker_then_the_catalog(db: Database, tmp_path: Path) -> None:
    pool = Pool.open(str(tmp_path / "pool"), allow_slow_copy=True, size_limits=False)  # a real marker
    bind_to_pool(db, pool)
    bind_to_pool(db, pool)
    marker = read_marker(pool.root)
    assert marker is not None and marker[POOL_ID] == pool.identity == read(db, BOUND_TO)
    assert marker[POOL_EPOCH] == 2 == int(read(db, EPOCH) or 0)
    meta(db, **{EPOCH: "9"})  # the catalog ahead of what this Pool object read: the larger wins
    bind_to_pool(db, pool)
    assert read_marker(pool.root)[POOL_EPOCH] == 10 == int(read(db, EPOCH) or 0)  # type: ignore[index]
    check_pool_binding(db, pool.root)
    other = Pool.open(str(tmp_path / "other"), allow_slow_copy=True, size_limits=False)
    with pytest.raises(WrongPool, match=rf"the pool opened \({other.identity}\) is not the catalog's"):
        bind_to_pool(db, other)  # the pool changed since it was checked
    assert read(db, BOUND_TO) == pool.identity and read_marker(other.root)[POOL_EPOCH] == 0  # type: ignore[index]


def test_a_bound_catalog_refuses_a_directory_without_its_pool(db: Database, tmp_path: Path) -> None:
    bound(db, "p-1")
    with pytest.raises(WrongPool, match=r"no snapkeep pool .* is the pool's disk mounted\?"):
        check_pool_binding(db, empty_dir(tmp_path))
    assert os.listdir(tmp_path / "pool") == []
    with pytest.raises(WrongPool, match="no snapkeep pool"):
        check_pool_binding(db, str(tmp_path / "disk" / "pool"))  # beneath a mount point: not even the folder
    assert not (tmp_path / "disk").exists()


@pytest.mark.parametrize("found", ["p-2", None])
def test_a_bound_catalog_refuses_another_pool(db: Database, tmp_path: Path, found: str | None) -> None:
    bound(db, "p-1")
    root = a_pool(tmp_path / "pool", found)
    before = (Path(root) / POOL_FILE).read_text()
    with pytest.raises(WrongPool, match="another snapkeep pool") as refused:
        check_pool_binding(db, root)
    assert refused.value.details == {"pool": root, "expected": "p-1", "found": found}
    assert (Path(root) / POOL_FILE).read_text() == before
    assert sorted(os.listdir(root)) == sorted([POOL_FILE, "datasets"])


def test_a_bound_catalog_refuses_an_older_copy_of_its_pool(db: Database, tmp_path: Path) -> None:
    """The pool was copied onto a disk mounted over its folder and served from there since: the copy left
    beneath, seen when the disk is missing, is behind. A pool ahead of the catalog (a catalog restored from
    a backup, a crash between the two writes) is served."""
    bound(db, "p-1", epoch=5)
    with pytest.raises(WrongPool, match=r"older copy of the catalog's pool \(epoch 4; the catalog last served epoch 5"):
        check_pool_binding(db, a_pool(tmp_path / "left-behind", "p-1", epoch=4))
    with pytest.raises(WrongPool, match="older copy"):
        check_pool_binding(db, a_pool(tmp_path / "before-epochs", "p-1"))
    check_pool_binding(db, a_pool(tmp_path / "served", "p-1", epoch=5))
    check_pool_binding(db, a_pool(tmp_path / "ahead", "p-1", epoch=8))


def test_a_catalog_from_before_ids_adopts_only_the_pool_that_holds_most_of_it(db: Database, tmp_path: Path) -> None:
    for dataset in ("volume-1", "volume-2", "volume-3", "volume-made-while-stray"):
        with_volume(db, dataset)
    with pytest.raises(WrongPool, match="is the pool's disk mounted"):
        check_pool_binding(db, empty_dir(tmp_path))
    assert os.listdir(tmp_path / "pool") == []
    stray = a_pool(tmp_path / "made-beneath", "p-stray", ("volume-made-while-stray", "volume-someone-elses"))
    with pytest.raises(WrongPool, match="only 1 of the catalog's 4 datasets and snapshots"):
        check_pool_binding(db, stray)
    half = a_pool(tmp_path / "half", "p-half", ("volume-1", "volume-2"))
    with pytest.raises(WrongPool, match="only 2 of the catalog's 4"):
        check_pool_binding(db, half)
    check_pool_binding(db, a_pool(tmp_path / "old-pool", None, ("volume-1", "volume-2", "volume-3")))
    assert read(db, BOUND_TO) is None  # the check reads only; the binding comes after the start settled
    with db.unit() as uow:  # failed takes keep their rows, not their folders: they are not looked for
        for _ in range(4):
            uow.snapshots.insert(snapshot(T0, status=SnapshotStatus.FAILED))
        kept = uow.snapshots.insert(snapshot(T0))
    with pytest.raises(WrongPool, match="only 2 of the catalog's 5"):
        check_pool_binding(db, half)
    (Path(half) / "snapshots").mkdir()
    (Path(half) / "snapshots" / kept.id).mkdir()
    check_pool_binding(db, half)  # 3 of 5


def test_a_rebuild_needs_a_pool_and_takes_it_over_an_empty_catalogs_binding(db: Database, tmp_path: Path) -> None:
    with pytest.raises(WrongPool, match=r"no snapkeep pool .* to rebuild the catalog from"):
        check_pool_binding(db, empty_dir(tmp_path), rebuild=True)
    bound(db, "p-stray", epoch=3)  # an empty catalog bound to a pool made where the disk was not mounted
    real = a_pool(tmp_path / "real", "p-real")
    with pytest.raises(WrongPool, match="another snapkeep pool"):
        check_pool_binding(db, real)
    check_pool_binding(db, real, rebuild=True)
    with_volume(db, "volume-ours")  # a catalog that holds objects is not rebuilt: checked as any other
    with pytest.raises(WrongPool, match="another snapkeep pool"):
        check_pool_binding(db, real, rebuild=True)
    # a rebuild cut short: its rows were written with the binding to the pool it was rebuilt from (and that
    # pool's epoch, not the one the empty catalog had): the next start takes that pool, and only that pool
    meta(db, **{UNFINISHED: "yes", BOUND_TO: "p-real", EPOCH: "0"})
    check_pool_binding(db, real)
    check_pool_binding(db, real, rebuild=True)
    for other in (a_pool(tmp_path / "stray", "p-stray", epoch=3), a_pool(tmp_path / "old-copy", "p-real", epoch=0)):
        meta(db, **{EPOCH: "1"})
        with pytest.raises(WrongPool, match=r"another snapkeep pool|older copy"):
            check_pool_binding(db, other, rebuild=True)


def test_a_marker_that_is_not_one_is_a_pool_error(db: Database, tmp_path: Path) -> None:
    for marker in ("{not json", "[]", {POOL_ID: 7}, {POOL_EPOCH: "2"}, {POOL_EPOCH: True}):
        text = marker if isinstance(marker, str) else json.dumps({"format_version": 3, **marker})
        (tmp_path / POOL_FILE).write_text(text)
        with pytest.raises(PoolError, match="snapkeep pool marker"):
            check_pool_binding(db, str(tmp_path))
    (tmp_path / POOL_FILE).write_text(json.dumps({"format_version": 99, POOL_ID: "p-1"}))
    with pytest.raises(PoolError, match="format_version 99"):  # refused before anything is made in it
        check_pool_binding(db, str(tmp_path))
    (tmp_path / POOL_FILE).unlink()
    (tmp_path / POOL_FILE).mkdir()
    with pytest.raises(PoolError, match="cannot be read as a snapkeep pool marker"):
        check_pool_binding(db, str(tmp_path))


def test_a_full_pool_is_bound_and_served_without_advancing_its_epoch(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault switch: the disk refuses to flush the new marker (the pool is full). The start goes on, so that
    snapshots can be deleted to free space; the epoch stays where it was in the marker, in the catalog and in
    memory, no half-written marker is left, and the epoch advances at a later start."""
    pool = Pool.open(str(tmp_path / "pool"), allow_slow_copy=True, size_limits=False)
    bound(db, pool.identity, epoch=0)
    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", full)
        bind_to_pool(db, pool)
    assert read(db, BOUND_TO) == pool.identity and read(db, EPOCH) == "0" and pool.epoch == 0
    assert read_marker(pool.root)[POOL_EPOCH] == 0  # type: ignore[index]
    assert not [name for name in os.listdir(pool.root) if name.endswith(".tmp")]
    bind_to_pool(db, pool)
    assert read(db, EPOCH) == "1" == str(read_marker(pool.root)[POOL_EPOCH])  # type: ignore[index]


def test_a_pool_given_its_id_on_a_full_disk_is_a_clear_pool_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool from before ids gets its id at its first open: on a full disk that is ``pool_full`` (not a
    traceback), and the marker stays as it was (the catalog must not be bound to an id the disk lacks)."""
    root = a_pool(tmp_path / "old", None)
    before = (Path(root) / POOL_FILE).read_text()
    with monkeypatch.context() as patched, pytest.raises(PoolFull, match=r"snapkeep-pool\.json"):
        patched.setattr(os, "fsync", full)
        Pool.open(root, allow_slow_copy=True, size_limits=False)
    assert (Path(root) / POOL_FILE).read_text() == before


def test_the_epoch_keeps_a_newer_layouts_version(db: Database, tmp_path: Path) -> None:
    """A btrfs pool (format 3: copies in lanes) opened by another driver keeps version 3 in its marker when
    the epoch is written, so that a snapkeep reading only version 2 never misreads it."""
    root = a_pool(tmp_path / "lanes", "p-1", epoch=4)
    pool = Pool.open(root, allow_slow_copy=True, size_limits=False)  # the copy driver writes version 2
    bound(db, "p-1", epoch=4)
    bind_to_pool(db, pool)
    marker = read_marker(root)
    assert marker is not None and (marker["format_version"], marker[POOL_EPOCH]) == (3, 5)


def full(_fd: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")
