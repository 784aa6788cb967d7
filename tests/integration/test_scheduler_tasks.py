"""The service's standard tasks, on real services and a real pool: the expiry sweep comes due on the
services' clock and deletes what has expired, and nothing before its interval has passed."""

from __future__ import annotations

from datetime import timedelta

from snapkeep.model.principal import SYSTEM
from snapkeep.scheduler import Scheduler, standard_tasks
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from tests.conftest import TestClock


def test_the_expiry_sweep_runs_once_its_interval_has_passed(services: Services, clock: TestClock) -> None:
    services.volumes.create("docs", size_limit=64 << 20, who=SYSTEM)
    soon = services.snapshots.take(TakeRequest("docs", "soon", expires_at=clock() + timedelta(minutes=5)), who=SYSTEM)
    kept = services.snapshots.take(TakeRequest("docs", "kept"), who=SYSTEM)
    scheduler = Scheduler(standard_tasks(services), clock)
    interval = timedelta(seconds=services.settings.sweep_interval)

    clock.advance(timedelta(minutes=10))  # expired, but the sweep is not due yet
    assert "expiry sweep" not in scheduler.run_due()
    assert {s.id for s in services.snapshots.listing(who=SYSTEM)} == {soon.id, kept.id}

    clock.advance(interval)
    assert "expiry sweep" in scheduler.run_due()
    scheduler.settle()  # the sweep runs apart from the loop
    assert {s.id for s in services.snapshots.listing(who=SYSTEM)} == {kept.id}
    assert not services.pool.has_snapshot(soon.id)
