"""A catalog and the pool it describes belong together: the pool's id (in its marker) is recorded in the
catalog, and checked before anything is made in the pool directory.

Opening a pool makes its layout where there is none (and, on btrfs, turns quotas on). A pool directory
that is a mount point whose disk is not mounted (not attached at boot, a typo in fstab) looks like a new,
empty pool on the filesystem beneath: without this check the service made a pool there and served the
catalog's volumes, VMs and snapshots over a pool without their data.

- A catalog bound to a pool refuses a directory that holds no pool, another one, or an older copy of its
  own: each start advances an epoch in the marker, then in the catalog, so a copy left behind (the folder
  beneath a mount point after the pool was copied onto a disk mounted there) is behind the catalog.
- A catalog from before pool ids that holds objects refuses a directory without a pool, and a pool that
  holds no more than half of its datasets and snapshots (earlier versions made pools beneath unmounted
  mount points and served there, so such a pool can hold some); it adopts the pool that holds most of them.
  One with no volume, VM or snapshot adopts the pool it finds.
- An empty catalog takes the pool it is given: a new installation (nothing tells it from a disk not yet
  mounted: the README says how to make the service wait for the mount). A rebuild (``--rebuild-catalog``)
  needs a pool to rebuild from; the rebuild binds the catalog to it with its rows
  (:mod:`.catalog_rebuild`), whatever an empty catalog was bound to before.
A copy of the pool made while the service is stopped passes as the pool until the next start has
advanced the one served.
"""

from __future__ import annotations

import logging

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import PoolError, WrongPool
from snapkeep.model.types import SnapshotStatus
from snapkeep.services.catalog_rebuild import BOUND_TO, EPOCH, catalog_is_empty
from snapkeep.storage.pool import POOL_EPOCH, POOL_FILE, POOL_ID, Pool, contents_at, read_marker

__all__ = ["BOUND_TO", "EPOCH", "bind_to_pool", "check_pool_binding", "is_new_installation"]

_MOUNTED = "is the pool's disk mounted?"

log = logging.getLogger(__name__)


def is_new_installation(db: Database) -> bool:
    """An empty catalog bound to no pool: the one case in which a new pool may be made (a loop pool's image)."""
    with db.unit() as uow:
        return uow.meta.get(BOUND_TO) is None and catalog_is_empty(uow)


def check_pool_binding(db: Database, root: str, rebuild: bool = False) -> None:
    """Refuse (:class:`WrongPool`) ``root`` as this catalog's pool when it is not that pool; with
    ``rebuild``, an empty catalog takes the pool at ``root``, which must exist.
    Reads only, so that a refusal leaves the directory as it was (or absent)."""
    marker = read_marker(root)
    with db.unit() as uow:
        bound_to = uow.meta.get(BOUND_TO)
        epoch = int(uow.meta.get(EPOCH) or 0)
        empty = catalog_is_empty(uow)
        rebuilding = rebuild and empty  # a rebuild cut short is bound already (with its rows): checked as any
        ours = set() if empty or bound_to is not None else _datasets_and_snapshots(uow)
    if marker is None:
        if rebuilding:
            raise WrongPool(
                f"{root} holds no snapkeep pool (no {POOL_FILE}) to rebuild the catalog from: {_MOUNTED}", pool=root
            )
        if bound_to is not None or not empty:
            raise WrongPool(
                f"{root} holds no snapkeep pool (no {POOL_FILE}) but the catalog describes one: {_MOUNTED} "
                "Nothing was made there. If that pool is gone for good, start with a new catalog (another data "
                "directory, or SNAPKEEP_DATABASE_URL)",
                pool=root,
                expected=bound_to,
            )
        return
    found, found_epoch = marker.get(POOL_ID) or None, marker.get(POOL_EPOCH, 0)
    if rebuilding:
        return
    if bound_to is None:
        held = len(ours & contents_at(root))
        if ours and 2 * held <= len(ours):  # an empty catalog, or one of tenants and networks only: any pool
            raise WrongPool(
                f"{root} holds a snapkeep pool with only {held} of the catalog's {len(ours)} datasets and snapshots: "
                f"{_MOUNTED} (an earlier snapkeep made a pool beneath the mount point when it was not)",
                pool=root,
                found=found,
            )
        return
    if found != bound_to:
        raise WrongPool(
            f"{root} holds another snapkeep pool ({found or 'one without an id'}) than the catalog's "
            f"({bound_to}): {_MOUNTED} Is SNAPKEEP_POOL_DIR (or the data directory, or "
            "SNAPKEEP_DATABASE_URL) the right one? To serve this pool after its catalog was lost, start with an "
            "empty catalog and --rebuild-catalog",
            pool=root,
            expected=bound_to,
            found=found,
        )
    if found_epoch < epoch:
        raise WrongPool(
            f"{root} holds an older copy of the catalog's pool (epoch {found_epoch}; the catalog last "
            f"served epoch {epoch}), such as the folder left beneath a mount point when the pool was copied onto "
            f"a disk mounted there: {_MOUNTED} To serve this copy (the pool restored from a backup), start with an "
            "empty catalog and --rebuild-catalog",
            pool=root,
            expected=epoch,
            found=found_epoch,
        )


def bind_to_pool(db: Database, pool: Pool) -> None:
    """Record ``pool`` as the one this catalog describes, if none is recorded yet, and advance the epoch
    past both the pool's and the catalog's: in the marker first, then in the catalog, so that a crash
    between the two leaves the pool ahead (accepted), never behind. A catalog bound to another pool is
    refused: the pool changed since it was checked."""
    with db.unit() as uow:
        bound_to = uow.meta.get(BOUND_TO)
        if bound_to is not None and bound_to != pool.identity:
            raise WrongPool(
                f"the pool opened ({pool.identity}) is not the catalog's ({bound_to}): {_MOUNTED}",
                expected=bound_to,
                found=pool.identity,
            )
        uow.meta.put(BOUND_TO, pool.identity)
        try:
            pool.set_epoch(max(pool.epoch, int(uow.meta.get(EPOCH) or 0)) + 1)
        except PoolError as exc:  # a full pool still serves (so that space can be freed); it counts next time
            log.warning("the pool's epoch was not advanced at this start: %s", exc.message)
            return
        uow.meta.put(EPOCH, str(pool.epoch))


def _datasets_and_snapshots(uow: Unit) -> set[str]:
    """What the catalog's pool must hold: its datasets and the snapshots it keeps (a failed take's row stays
    after its folder went)."""
    datasets = {volume.dataset for volume in uow.volumes.list()} | {vm.dataset for vm in uow.vms.list()}
    kept = (SnapshotStatus.READY, SnapshotStatus.HELD)
    return datasets | {snap.id for snap in uow.snapshots.list() if snap.status in kept}
