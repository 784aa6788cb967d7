"""The tasks every ``snapkeep serve`` runs, built from its services."""

from __future__ import annotations

from datetime import timedelta

from snapkeep.model.principal import SYSTEM
from snapkeep.scheduler.loop import Task
from snapkeep.services.container import Services

# A guest or volume must not stay frozen for a minute because its agent or a thaw was briefly slow.
RELEASE_RETRY = timedelta(seconds=2)


def standard_tasks(services: Services) -> list[Task]:
    sweep_every = timedelta(seconds=services.settings.sweep_interval)

    def release_pending() -> str | None:
        done = services.release_pending()
        if not done.volumes_thawed and not done.guests_released:
            return None
        return f"thawed {done.volumes_thawed} volume(s), thawed or resumed {done.guests_released} guest(s)"

    def refresh_limits() -> str | None:
        services.pool.refresh_limits()
        return None

    def scheduled() -> str | None:
        started = services.scheduled.run_due()
        return f"started scheduled snapshots of {len(started)} subject(s)" if started else None

    def sweep() -> str | None:
        deleted = services.snapshots.sweep_expired(SYSTEM)
        return f"deleted {len(deleted)} expired snapshot(s)" if deleted else None

    return [
        Task("release pending holds", RELEASE_RETRY, release_pending),
        Task("scheduled snapshots", timedelta(seconds=services.settings.schedule_tick), scheduled),
        Task("refresh size limits", sweep_every, refresh_limits, first_after=sweep_every, apart=True),
        Task("expiry sweep", sweep_every, sweep, first_after=sweep_every, apart=True),
    ]
