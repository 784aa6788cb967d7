"""What the dashboard shows: counts, the scheduler's last and next runs, the last day's failures and space.

Everything is read through the caller's scope, with counting and grouped queries rather than listings. The
snapshot tally reads covering indexes, not rows: measured at 1,000,000 snapshots (SQLite), 0.14 s for the
system's (one pass over an index; 0.47 s over the rows before) and 7 ms for a tenant's. The pool's size and
free space are the system's only (the host's disk, which no tenant owns): a tenant's caller gets None. The
audit log's failures are read as the audit log shows them to the caller (a tenant's subtree's, actors above
it masked: :mod:`snapkeep.services.audit`).

The space snapshots hold is the sum of their exclusive bytes where those were measured
(``snapshot space``, on demand: measuring every snapshot would read all their extents), with how many
were measured, so the page can say what the number covers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from snapkeep.catalog.db import Database
from snapkeep.model.filters import AuditFilter
from snapkeep.model.paging import Window
from snapkeep.model.principal import Principal
from snapkeep.model.types import AuditEntry, Job, SnapshotStatus
from snapkeep.services.audit import Audit
from snapkeep.services.profiles import Upcoming, upcoming
from snapkeep.storage.pool import Pool

FAILURES_SHOWN = 20
RUNS_SHOWN = 5
RUNS_READ = 1000  # the scheduled (subject, period) pairs the last runs are picked from
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Space:
    pool_size: int
    pool_free: int


@dataclass(frozen=True)
class Overview:
    volumes: int
    vms: int
    networks: int
    tenants: int
    snapshots: dict[SnapshotStatus, int]  # every status, 0 where none
    measured: int  # snapshots whose exclusive bytes are known
    exclusive_bytes: int  # theirs, summed
    next_runs: list[Upcoming]
    last_runs: list[Upcoming]
    failed_jobs: list[Job]  # of the last day, newest first
    failed_audit: list[AuditEntry]  # of the last day, newest first
    space: Space | None  # None: not the caller's to read
    since: datetime

    @property
    def snapshot_total(self) -> int:
        return sum(self.snapshots.values())


def overview(db: Database, pool: Pool, clock: Callable[[], datetime], audit: Audit, who: Principal) -> Overview:
    """Any role; what the caller's scope holds."""
    since = clock() - DAY
    system = who.tenant_id is None
    with db.unit(who) as uow:
        tally = uow.snapshots.tally()
        counts = (uow.volumes.count(), uow.vms.count(), uow.networks.count(), len(uow.tenants.visible()))
        failed_jobs = uow.jobs.failed_since(since, FAILURES_SHOWN)
    failed_audit = audit.page(who, Window(FAILURES_SHOWN), AuditFilter(outcome="failed", since=since)).items
    scheduled = upcoming(db, who, Window(RUNS_READ)).items
    ran = sorted(
        (item for item in scheduled if item.entry.last_run is not None), key=lambda i: i.entry.last_run or since
    )[::-1]
    return Overview(
        volumes=counts[0],
        vms=counts[1],
        networks=counts[2],
        tenants=counts[3],
        snapshots={status: tally.get(status, (0, 0, 0))[0] for status in SnapshotStatus},
        measured=sum(measured for _n, measured, _size in tally.values()),
        exclusive_bytes=sum(size for _n, _measured, size in tally.values()),
        next_runs=[item for item in scheduled if item.entry.next_due is not None][:RUNS_SHOWN],
        last_runs=ran[:RUNS_SHOWN],
        failed_jobs=failed_jobs,
        failed_audit=failed_audit,
        space=Space(pool.size_bytes(), pool.free_bytes()) if system else None,
        since=since,
    )
