"""Start-up reconciler: settles what a crash left half-done, before the service takes requests.

- writers a quiesce left stopped are resumed (their intent files name them), volumes a capture left
  frozen are thawed, and guests it left frozen or paused are thawed and resumed;
- a snapshot still ``creating`` becomes ``ready`` if its manifest was sealed into the pool, else ``failed``;
- a snapshot left ``deleting`` is deleted;
- whatever is in the pool's staging area (half-built snapshots, half-done restores) is removed: a restore
  swaps its new data in with one atomic exchange, so a volume is whole either way;
- the private folders that interrupted single-file extracts left inside volumes are removed (their intent
  files say where; the destination holds the old or the new, swapped in atomically);
- data that restores replaced and queued in ``trash/`` is reported; the caller hands it to the background
  freeing (:mod:`snapkeep.services.freeing`), so a large queue does not delay the start;
- datasets no catalog row names (a create that crashed in between, or a catalog that is not this pool's)
  are reported and left alone: deleting data is never the reconciler's guess;
- every volume's size limit is set again from the catalog (one ioctl each): a crash between a restore's
  swap and its limit, or quotas an operator turned off and on, would otherwise leave a volume unlimited;
- jobs left ``queued``/``running`` are failed with the reason;
- (then, in :meth:`Services.reconcile`) whole-subtree restores a crash interrupted are rolled forward from
  their intent files (:meth:`snapkeep.services.subjects.rebuild.Rebuild.resume`): the subtree ends as
  restored, its VMs that ran at snapshot time running; and tenants that copies out of a snapshot left
  half-made are deleted (:meth:`snapkeep.services.subjects.tenant_copy.TenantCopy.undo_interrupted`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from snapkeep.catalog.db import Database
from snapkeep.engine.intents import Intents
from snapkeep.engine.recovery import release_recorded
from snapkeep.errors import Interrupted, SnapkeepError
from snapkeep.hypervisor import Hypervisor
from snapkeep.model.types import JobStatus, SnapshotStatus
from snapkeep.services.files import clear_interrupted_extracts
from snapkeep.storage.pool import Pool

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    resumed_processes: int = 0
    volumes_thawed: int = 0
    guests_released: int = 0
    snapshots_completed: list[str] = field(default_factory=list)
    snapshots_failed: list[str] = field(default_factory=list)
    snapshots_deleted: list[str] = field(default_factory=list)
    staging_removed: list[str] = field(default_factory=list)
    extracts_cleared: list[str] = field(default_factory=list)
    retired_to_free: list[str] = field(default_factory=list)
    unknown_datasets: list[str] = field(default_factory=list)
    jobs_failed: list[str] = field(default_factory=list)
    limits_set: int = 0
    rebuilds_completed: list[str] = field(default_factory=list)  # set by Services.reconcile (needs services)
    copies_undone: list[str] = field(default_factory=list)  # likewise: tenants a copy left half-made, deleted


def reconcile(
    db: Database, pool: Pool, host: Hypervisor, intents: Intents, clock: Callable[[], datetime]
) -> ReconcileReport:
    report = ReconcileReport()
    released = release_recorded(intents, pool, host)
    report.resumed_processes = released.processes_resumed
    report.volumes_thawed = released.volumes_thawed
    report.guests_released = released.guests_released

    with db.unit() as uow:
        for snap in uow.snapshots.in_status(SnapshotStatus.CREATING):
            if pool.has_snapshot(snap.id):
                uow.snapshots.update(
                    snap.id,
                    status=SnapshotStatus.READY,
                    quiesced=False,
                    quiesce_note="service restarted during capture; quiesce not confirmed",
                )
                report.snapshots_completed.append(snap.id)
            else:
                uow.snapshots.update(
                    snap.id,
                    status=SnapshotStatus.FAILED,
                    status_reason="interrupted: the service stopped while taking this snapshot",
                )
                report.snapshots_failed.append(snap.id)
        for snap in uow.snapshots.in_status(SnapshotStatus.DELETING):
            pool.delete_snapshot(snap.id)
            uow.snapshots.delete(snap.id)
            report.snapshots_deleted.append(snap.id)

    for op in pool.list_staging():
        pool.discard(op)
        report.staging_removed.append(op)
    report.extracts_cleared = clear_interrupted_extracts(pool, intents)
    report.retired_to_free = pool.list_retired()

    with db.unit() as uow:
        known = {volume.dataset for volume in uow.volumes.list()} | {vm.dataset for vm in uow.vms.list()}
    for dataset in pool.list_datasets():
        if dataset not in known:
            log.warning("dataset %s has no catalog entry; left in place (never deleted automatically)", dataset)
            report.unknown_datasets.append(dataset)

    report.limits_set = _set_size_limits(db, pool)

    with db.unit() as uow:
        for job in uow.jobs.in_status(JobStatus.QUEUED, JobStatus.RUNNING):
            message = "interrupted: the service stopped while this job ran"
            error = Interrupted(message).to_body()["error"]
            uow.jobs.update(job.id, status=JobStatus.FAILED, message=message, error=error, finished_at=clock())
            report.jobs_failed.append(job.id)
    return report


def _set_size_limits(db: Database, pool: Pool) -> int:
    if not pool.limits_enforced:
        return 0
    with db.unit() as uow:
        limits = [(volume.name, volume.dataset, volume.size_limit) for volume in uow.volumes.list()]
    done = 0
    for name, dataset, limit in limits:
        try:
            pool.set_size_limit(dataset, limit)
            done += 1
        except SnapkeepError as exc:
            log.warning("could not set the size limit of volume %s: %s", name, exc.message)
    return done
