"""The catalog rebuilt from the pool alone, after it was lost (``snapkeep serve --rebuild-catalog``).

The rows come from the pool's manifests by the rules of :mod:`snapkeep.services.pool_records`; they are
written in one unit of work, so a rebuild that fails leaves the catalog empty, and only into a catalog that
holds no object and no snapshot (a rebuild never merges into one in use). Nothing in the pool is changed:
what the rebuild cannot place (datasets no manifest names, snapshots of objects that are gone, manifests it
cannot read) stays where it is and is reported.

The service refuses to start on an empty catalog over a pool that holds data (:func:`check_not_lost`): the
scheduler would otherwise take system snapshots of an empty system, and a rebuild after them would find an
empty newest system snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import CatalogInUse, CatalogLost, NotFound
from snapkeep.model.manifest import Manifest
from snapkeep.model.principal import SYSTEM
from snapkeep.services.audit import Audit
from snapkeep.services.pool_records import CatalogPlan, plan_catalog
from snapkeep.storage.pool import Pool


def catalog_is_empty(uow: Unit) -> bool:
    """No tenant, volume, VM, network or snapshot (users, tokens and profiles do not count)."""
    return not (
        uow.tenants.children(None)
        or uow.volumes.count()
        or uow.vms.count()
        or uow.networks.every()
        or uow.snapshots.count()
    )


def check_not_lost(db: Database, pool: Pool) -> None:
    """Refuse (:class:`CatalogLost`) to serve an empty catalog over a pool that holds datasets or
    snapshots, saying how to rebuild it."""
    with db.unit() as uow:
        empty = catalog_is_empty(uow)
    datasets, snapshots = len(pool.list_datasets()), len(pool.list_snapshots())
    if empty and (datasets or snapshots):
        raise CatalogLost(
            f"the catalog is empty but the pool at {pool.root} holds {datasets} datasets and {snapshots} "
            "snapshots: if the catalog was lost, start with --rebuild-catalog to rebuild it from the pool; if "
            "this is the wrong catalog, point SNAPKEEP_DATABASE_URL (or the data directory) at the right one",
            pool=pool.root,
        )


class CatalogRebuild:
    def __init__(self, db: Database, pool: Pool, audit: Audit, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._pool = pool
        self._audit = audit
        self._clock = clock

    def run(self) -> dict[str, Any]:
        """Fill the empty catalog from the pool; what it made and what it left, as a summary."""
        with self._db.unit() as uow:
            self._refuse_in_use(uow)
        manifests, unreadable = self._manifests()
        plan = plan_catalog(manifests, self._pool.list_datasets(), self._clock())
        summary = {**plan.summary(), "unreadable_snapshots": unreadable}
        with self._db.unit() as uow:
            self._refuse_in_use(uow)
            _write(uow, plan)
            self._audit.done(uow, SYSTEM.name, "catalog.rebuild", f"pool:{self._pool.root}", _detail(summary))
        return summary

    @staticmethod
    def _refuse_in_use(uow: Unit) -> None:
        if not catalog_is_empty(uow):
            raise CatalogInUse(
                "the catalog holds objects or snapshots: a rebuild only fills an empty catalog (it was lost); "
                "point SNAPKEEP_DATABASE_URL at an empty one, or move this one away"
            )

    def _manifests(self) -> tuple[dict[str, Manifest], list[str]]:
        """Every sealed snapshot's manifest by id, and the ids of those that cannot be read."""
        found: dict[str, Manifest] = {}
        unreadable: list[str] = []
        for snap_id in self._pool.list_snapshots():
            try:
                manifest = Manifest.model_validate_json(self._pool.read_manifest(snap_id))
            except (NotFound, ValueError, OSError):
                unreadable.append(snap_id)
                continue
            if manifest.snapshot.id != snap_id:
                unreadable.append(snap_id)  # a manifest copied by hand beside other data: not to be trusted
                continue
            found[snap_id] = manifest
        return found, unreadable


def _write(uow: Unit, plan: CatalogPlan) -> None:
    for tenant in plan.tenants:  # parents first
        uow.tenants.insert(tenant)
    for owner, document in plan.settings.items():
        uow.settings.replace(owner, document)
    for network in plan.networks:
        uow.networks.insert(network)
    for volume in plan.volumes:
        uow.volumes.insert(volume)
    for vm in plan.vms:
        uow.vms.insert(vm)
    for object_type, object_id, tag in plan.tags:
        uow.tags.add(object_type, object_id, tag)
    for snap in plan.snapshots:
        uow.snapshots.insert(snap)


def _detail(summary: dict[str, Any]) -> str:
    counts = ", ".join(f"{summary[k]} {k}" for k in ("tenants", "networks", "volumes", "vms", "snapshots"))
    left = len(summary["unknown_datasets"]) + len(summary["orphan_snapshots"]) + len(summary["unreadable_snapshots"])
    return f"{counts}; {left} things left in the pool (see the service log)"
