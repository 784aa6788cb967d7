"""The tasks every ``snapkeep serve`` runs, built from its services."""

from __future__ import annotations

from datetime import timedelta

from snapkeep.scheduler.loop import Task
from snapkeep.services.container import Services

# A guest must not stay frozen for a minute because its agent was briefly slow.
GUEST_RETRY = timedelta(seconds=2)


def standard_tasks(services: Services) -> list[Task]:
    sweep_every = timedelta(seconds=services.settings.sweep_interval)

    def release_guests() -> str | None:
        released = services.release_pending_guests()
        return f"thawed or resumed {released} guest(s) whose agent had not answered in time" if released else None

    def refresh_limits() -> str | None:
        services.pool.refresh_limits()
        return None

    def sweep() -> str | None:
        deleted = services.snapshots.sweep_expired()
        return f"deleted {len(deleted)} expired snapshot(s)" if deleted else None

    return [
        Task("release pending guests", GUEST_RETRY, release_guests),
        Task("refresh size limits", sweep_every, refresh_limits, first_after=sweep_every),
        Task("expiry sweep", sweep_every, sweep, first_after=sweep_every),
    ]
