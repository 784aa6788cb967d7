"""The catalog rebuilt from the pool alone, after it was lost (``snapkeep serve --rebuild-catalog``).

The rows come from the pool's manifests by the rules of :mod:`snapkeep.services.pool_records`; they are
written in one unit of work, so a rebuild that fails leaves the catalog empty, and only into a catalog that
holds no object and no snapshot (a rebuild never merges into one in use). Nothing in the pool is changed:
what the rebuild cannot place (datasets no manifest names, snapshots of objects that are gone, manifests it
cannot read) stays where it is and is reported.

The service refuses to start on an empty catalog over a pool that holds snapshots, unless that catalog
was rebuilt (:func:`check_not_lost`): the scheduler would otherwise take system snapshots of an empty system,
and a rebuild after them would find an empty newest system snapshot.

VMs keep their libvirt domains: each is found on the host by its UUID (a VM made by an early version has a
domain named after it), and one the host does not have (the pool moved to a new host) is defined again.
Those definitions and the profile assignments follow the rows' unit; a crash between them is finished at
the next start (``catalog_rebuild_unfinished`` in catalog_meta until they are done).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.errors import CatalogInUse, CatalogLost, SnapkeepError
from snapkeep.model.manifest import Manifest
from snapkeep.model.principal import SYSTEM
from snapkeep.model.profile import SubjectOfProfile
from snapkeep.model.vmspec import VMSpec
from snapkeep.services.audit import Audit
from snapkeep.services.pool_records import CatalogPlan, plan_catalog
from snapkeep.services.profiles import mark_installed
from snapkeep.services.subjects import tenant_own
from snapkeep.services.subjects.base import WHOLE_SYSTEM
from snapkeep.services.subjects.profile_back import PutBack
from snapkeep.services.vms import VMs
from snapkeep.storage.pool import Pool

REBUILT_AT = "catalog_rebuilt_at"  # catalog_meta: when the catalog was last rebuilt from the pool
UNFINISHED = "catalog_rebuild_unfinished"  # catalog_meta: rows written, domains and profiles not all done yet
BOUND_TO = "pool_id"  # catalog_meta: the id of the pool the catalog describes (services/pool_binding.py)
EPOCH = "pool_epoch"  # catalog_meta: the pool's epoch at the catalog's last start (services/pool_binding.py)


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
    """Refuse (:class:`CatalogLost`) to serve an empty catalog over a pool that holds snapshots, saying how to
    rebuild it; once rebuilt, the catalog is served even if the rebuild found nothing to place. (Datasets
    alone do not count: a crash in the first create of a new installation leaves one, and nothing could
    be rebuilt from it.)"""
    with db.unit() as uow:
        settled = not catalog_is_empty(uow) or uow.meta.get(REBUILT_AT) is not None
    snapshots = len(pool.list_snapshots())
    if not settled and snapshots:
        raise CatalogLost(
            f"the catalog is empty but the pool at {pool.root} holds {snapshots} snapshots: if the catalog was "
            "lost, start with --rebuild-catalog to rebuild it from the pool; if this is the wrong catalog, point "
            "SNAPKEEP_DATABASE_URL (or the data directory) at the right one",
            pool=pool.root,
        )


class CatalogRebuild:
    def __init__(
        self, db: Database, pool: Pool, audit: Audit, clock: Callable[[], datetime], vms: VMs, put_back: PutBack
    ) -> None:
        self._db = db
        self._pool = pool
        self._audit = audit
        self._clock = clock
        self._vms = vms
        self._put_back = put_back  # the profile service's: each object's recorded profile, assigned again

    def run(self) -> dict[str, Any]:
        """Fill the empty catalog from the pool, and define again the VMs libvirt no longer has (the pool
        was moved to a new host); what it made and what it left, as a summary. A rebuild cut short after its
        rows were written is finished instead (:meth:`finish`)."""
        unfinished = self.finish()
        if unfinished is not None:
            return unfinished
        with self._db.unit() as uow:
            self._refuse_in_use(uow)
        plan, summary, domains, host_problem = self._plan()
        with self._db.unit() as uow:
            self._refuse_in_use(uow)
            summary["users_left_out"] = _write(uow, plan)
            if any(obj.owner_tenant_id is None for obj in plan.own):  # the system's own users and profiles
                mark_installed(uow, self._clock())
            uow.meta.put(REBUILT_AT, self._clock().isoformat())
            uow.meta.put(UNFINISHED, "yes")
            uow.meta.put(BOUND_TO, self._pool.identity)  # with the rows: a rebuild cut short is of this pool
            uow.meta.put(EPOCH, str(self._pool.epoch))  # not an earlier pool's (an empty catalog's binding)
            target = f"pool:{self._pool.root}"
            self._audit.done(uow, SYSTEM, "catalog.rebuild", target, _detail(summary), owner=None)
        left_out = [f"user {name!r} was left out: the name is another user's" for name in summary["users_left_out"]]
        return self._after_rows(plan, summary, domains, host_problem, left_out)

    def finish(self) -> dict[str, Any] | None:
        """Finish a rebuild that a crash cut short after its rows were written, before every VM had its domain
        and every object its profile: those steps again, which do only what is missing (at start, before
        requests); its summary, or None if no rebuild was cut short. Left unfinished while libvirt cannot say
        which domains it has."""
        with self._db.unit() as uow:
            if not uow.meta.get(UNFINISHED):
                return None
        plan, summary, domains, host_problem = self._plan()
        return self._after_rows(plan, {**summary, "users_left_out": []}, domains, host_problem, [])

    def _plan(self) -> tuple[CatalogPlan, dict[str, Any], dict[str, VMSpec], str | None]:
        manifests, unreadable = self._manifests()
        domains, host_problem = self._domains()
        uuids = {uuid: spec.name for uuid, spec in domains.items()}
        plan = plan_catalog(manifests, self._pool.list_datasets(), self._clock(), uuids)
        return plan, {**plan.summary(), "unreadable_snapshots": unreadable}, domains, host_problem

    def _after_rows(
        self,
        plan: CatalogPlan,
        summary: dict[str, Any],
        domains: dict[str, VMSpec],
        host_problem: str | None,
        problems: list[str],
    ) -> dict[str, Any]:
        """What follows the rows: each object's profile assigned again, the VMs the host lacks defined."""
        problems = [*plan.problems, *problems, *([host_problem] if host_problem else []), *self._assign_again(plan)]
        summary["defined_again"] = [] if host_problem else self._define_missing(plan, domains, problems)
        summary["problems"] = problems
        if host_problem is None:
            with self._db.unit() as uow:
                uow.meta.put(UNFINISHED, "")
        return summary

    def _assign_again(self, plan: CatalogPlan) -> list[str]:
        """Assign each rebuilt object its recorded profile (after the rows are in: the profile service checks
        and schedules as for any assignment); why not, for those it could not."""
        names = {t.id: t.name for t in plan.tenants}
        names |= {v.id: v.name for v in plan.volumes} | {v.id: v.name for v in plan.vms} | {WHOLE_SYSTEM: "system"}
        problems = []
        for subject_type, subject_id, profile_id in plan.assignments:
            try:
                why_not = self._put_back(SubjectOfProfile(subject_type), subject_id, profile_id, SYSTEM)
            except SnapkeepError as exc:  # the rows are in: anything refused is reported, never fatal
                why_not = exc.message
            if why_not is not None:
                problems.append(f"{subject_type} {names[subject_id]!r} was not assigned its profile again: {why_not}")
        return problems

    def _domains(self) -> tuple[dict[str, VMSpec], str | None]:
        """The host's libvirt domains by UUID, or why libvirt could not say. A domain that cannot be read
        is left out: not one snapkeep could have made (a qcow2 or block disk, a bridge), or gone meanwhile."""
        host = self._vms.host
        try:
            names = host.list_domains()
        except SnapkeepError as exc:
            return {}, (
                f"libvirt could not be asked for its domains ({exc.message}): each VM's domain is taken to be "
                "sk-vm-<its id>, and none was defined again"
            )
        found = {}
        for name in names:
            try:
                spec = host.spec(name)
            except SnapkeepError:
                continue
            found[spec.uuid] = spec
        return found, None

    def _define_missing(self, plan: CatalogPlan, domains: dict[str, VMSpec], problems: list[str]) -> list[str]:
        """Define from its record every rebuilt VM whose domain the host does not have; their names. Not
        one whose disks another domain uses (defined by hand, say: two guests on one disk corrupt it), nor
        one whose domain name is taken."""
        defined = []
        for record in plan.vms:
            if record.domain_uuid in domains:
                continue
            folder = self._pool.dataset_path(record.dataset).rstrip("/") + "/"
            users = sorted(d.name for d in domains.values() if any(k.file.startswith(folder) for k in d.disks))
            taken = any(d.name == record.domain_name for d in domains.values())
            if users or taken:
                why = f"domain {', '.join(users)} uses its disks" if users else f"{record.domain_name} is taken"
                problems.append(f"vm {record.name!r} was not defined again: {why}")
                continue
            try:
                self._vms.host.define(self._vms.spec(record))
            except SnapkeepError as exc:
                problems.append(f"vm {record.name!r} has no libvirt domain and could not be defined: {exc.message}")
                continue
            defined.append(record.name)
        return defined

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
                manifest.object_of(manifest.snapshot.subject_type, manifest.snapshot.subject_id)
            except (SnapkeepError, ValueError, OSError):  # none, torn, of an unknown format, or without subject
                unreadable.append(snap_id)
                continue
            if manifest.snapshot.id != snap_id:
                unreadable.append(snap_id)  # a manifest copied by hand beside other data: not to be trusted
                continue
            found[snap_id] = manifest
        return found, unreadable


def _write(uow: Unit, plan: CatalogPlan) -> list[str]:
    """Every row of the plan; the names of the users left out (the name is taken)."""
    for tenant in plan.tenants:  # parents first
        uow.tenants.insert(tenant)
    left_out = [name for name, why_not in tenant_own.bring_back(uow, plan.own) if why_not]
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
    return left_out


def _detail(summary: dict[str, Any]) -> str:
    counts = ", ".join(f"{summary[k]} {k}" for k in ("tenants", "networks", "volumes", "vms", "snapshots"))
    left = len(summary["unknown_datasets"]) + len(summary["orphan_snapshots"]) + len(summary["unreadable_snapshots"])
    return f"{counts}; {left} left in the pool (see the service log)"
