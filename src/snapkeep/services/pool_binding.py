"""A catalog and the pool it describes belong together: the pool's id (in its marker) is recorded in the
catalog, and checked before the pool is opened.

Opening a pool makes its layout where there is none (and, on btrfs, turns quotas on). A pool directory
that is a mount point whose disk is not mounted (not attached at boot, a typo in fstab) looks like a new,
empty pool on the filesystem beneath: without this check the service made a pool there and served the
catalog's volumes, VMs and snapshots over a pool without their data.

- A catalog bound to a pool refuses a directory that holds no pool or another one.
- A catalog from before pool ids that holds objects refuses a directory without a pool, and one whose pool
  holds none of its volumes' and VMs' datasets (earlier versions made such pools beneath mount points);
  it adopts the pool that holds them.
- An empty catalog takes the pool it is given: a new installation (nothing tells it from a disk not yet
  mounted at a first start: the README says how to make the service wait for the mount). A rebuild
  (``--rebuild-catalog``) needs a pool to rebuild from, and binds the rebuilt catalog to it, whatever an
  empty catalog was bound to before.
The id names a pool and its copies: a copy of the pool (a disk image, an older disk) passes as the pool.
"""

from __future__ import annotations

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import WrongPool
from snapkeep.services.catalog_rebuild import catalog_is_empty
from snapkeep.storage.pool import POOL_FILE, POOL_ID, datasets_at, read_marker

BOUND_TO = "pool_id"  # catalog_meta: the id of the pool this catalog describes

_MOUNTED = "is the pool's disk mounted?"


def is_new_installation(db: Database) -> bool:
    """An empty catalog bound to no pool: the one case in which a new pool may be made (a loop pool's image)."""
    with db.unit() as uow:
        return uow.meta.get(BOUND_TO) is None and catalog_is_empty(uow)


def check_pool_binding(db: Database, root: str, rebuild: bool = False) -> None:
    """Refuse (:class:`WrongPool`) ``root`` as this catalog's pool when it is not that pool; with
    ``rebuild``, an empty catalog takes the pool at ``root``, which must exist. Reads only, so that a
    refusal leaves the directory as it was (or absent)."""
    marker = read_marker(root)
    with db.unit() as uow:
        bound_to = uow.meta.get(BOUND_TO)
        empty = catalog_is_empty(uow)
        ours = set() if empty or bound_to is not None else _datasets(uow)
    if marker is None:
        if rebuild:
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
    found = marker.get(POOL_ID) or None
    if empty and rebuild:
        return
    if bound_to is None:
        if ours and not ours & datasets_at(root):
            raise WrongPool(
                f"{root} holds a snapkeep pool but none of the catalog's {len(ours)} volumes and VMs: {_MOUNTED} "
                "(an earlier snapkeep made an empty pool beneath the mount point when it was not)",
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


def bind_to_pool(db: Database, pool_id: str, rebuilt: bool = False) -> None:
    """Record the pool ``pool_id`` (:attr:`Pool.identity`) as the one this catalog describes, if none is
    recorded yet, or, ``rebuilt``, as the pool the catalog was rebuilt from. A catalog bound to another
    pool is refused: the pool changed between the check and the open."""
    with db.unit() as uow:
        bound_to = uow.meta.get(BOUND_TO)
        if bound_to is None or rebuilt:
            uow.meta.put(BOUND_TO, pool_id)
        elif bound_to != pool_id:
            raise WrongPool(
                f"the pool opened ({pool_id}) is not the catalog's ({bound_to}): {_MOUNTED}",
                expected=bound_to,
                found=pool_id,
            )


def _datasets(uow: Unit) -> set[str]:
    return {volume.dataset for volume in uow.volumes.list()} | {vm.dataset for vm in uow.vms.list()}
