"""A catalog and the pool it describes belong together: the pool's id (in its marker) is recorded in the
catalog, and checked before the pool is opened.

Opening a pool makes its layout where there is none (and, on btrfs, turns quotas on). A pool directory
that is a mount point whose disk is not mounted (not attached at boot, a typo in fstab) looks like a new,
empty pool on the filesystem beneath: without this check the service made a pool there and served the
catalog's volumes, VMs and snapshots over a pool without their data. A catalog bound to a pool refuses a
directory that holds no pool or another one; a catalog from before ids that holds objects refuses a
directory without a pool, and adopts the pool it finds. An empty catalog takes the pool it is given (a new
installation, or a lost catalog rebuilt from its pool) and is bound to it once the service has settled it.
"""

from __future__ import annotations

from snapkeep.catalog.db import Database
from snapkeep.errors import WrongPool
from snapkeep.services.catalog_rebuild import catalog_is_empty
from snapkeep.storage.pool import POOL_FILE, POOL_ID, read_marker

BOUND_TO = "pool_id"  # catalog_meta: the id of the pool this catalog describes

_MOUNTED = "is the pool's disk mounted?"


def check_pool_binding(db: Database, root: str) -> None:
    """Refuse (:class:`WrongPool`) ``root`` as this catalog's pool when it is not that pool; reads only, so
    that a refusal leaves the directory as it was."""
    marker = read_marker(root)
    with db.unit() as uow:
        bound_to = uow.meta.get(BOUND_TO)
        empty = catalog_is_empty(uow)
    if marker is None and (bound_to is not None or not empty):
        raise WrongPool(
            f"{root} holds no snapkeep pool (no {POOL_FILE}) but the catalog describes one: {_MOUNTED} "
            "Nothing was made there. If that pool is gone for good, start with a new catalog (another data "
            "directory, or SNAPKEEP_DATABASE_URL)",
            pool=root,
            expected=bound_to,
        )
    found = None if marker is None else marker.get(POOL_ID)
    if bound_to is not None and found != bound_to:
        raise WrongPool(
            f"{root} holds another snapkeep pool ({found or 'one without an id'}) than the catalog's "
            f"({bound_to}): {_MOUNTED} Is SNAPKEEP_POOL_DIR (or the data directory, or "
            "SNAPKEEP_DATABASE_URL) the right one? To serve this pool after its catalog was lost, start with an "
            "empty catalog and --rebuild-catalog",
            pool=root,
            expected=bound_to,
            found=found,
        )


def bind_to_pool(db: Database, pool_id: str) -> None:
    """Record the pool ``pool_id`` (:attr:`Pool.identity`) as the one this catalog describes, if none is
    recorded yet."""
    with db.unit() as uow:
        if uow.meta.get(BOUND_TO) is None:
            uow.meta.put(BOUND_TO, pool_id)
