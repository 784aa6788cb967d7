"""A job that never gets to run its function still ends: its row is not left ``queued`` or ``running`` for
the rest of the process, its waiters wake, and the guards its request handed it are given back (else every
later operation on its subject is ``busy`` until a restart)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.errors import ServiceUnavailable
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import JobStatus
from snapkeep.services.guards import Guards, exclusive
from snapkeep.services.jobs import JobRunner, Progress

T0 = datetime(2026, 12, 4, 8, 0, 0, tzinfo=UTC)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[JobRunner]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    jobs = JobRunner(Database(engine), lambda: T0, workers=1)
    try:
        yield jobs
    finally:
        jobs.shutdown()


def never(_progress: Progress) -> dict[str, object]:
    raise AssertionError("the job's function ran")


def test_a_job_its_lane_refuses_ends_failed_and_gives_its_guards_back(runner: JobRunner) -> None:
    guards = Guards(lambda: T0)
    runner.shutdown()  # a lane that no longer takes work, as while the service stops
    claim = guards.claim("snapshot.take", [exclusive("volume", "v1")])
    with pytest.raises(RuntimeError):
        runner.submit("snapshot.take", {}, never, claim=claim, once="take v1")
    [job] = runner.list(SYSTEM)
    assert job.status is JobStatus.FAILED, job  # before the fix: 'queued' until the next start
    assert job.message.startswith("not started"), job.message
    assert guards.held() == []
    assert runner.wait(job.id, 0.1, SYSTEM).status is JobStatus.FAILED


def test_a_job_whose_row_cannot_be_marked_running_gives_its_guards_back(
    runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    guards = Guards(lambda: T0)
    update = runner._update
    refused: list[str] = []

    def busy_when_starting(job_id: str, **values: Any) -> None:  # fault switch: the catalog is busy once
        if values.get("status") is JobStatus.RUNNING:
            refused.append(job_id)
            raise ServiceUnavailable("the catalog is not available: database is locked")
        update(job_id, **values)

    monkeypatch.setattr(runner, "_update", busy_when_starting)
    with guards.claim("snapshot.take", [exclusive("volume", "v1")]) as claim:
        job = runner.submit("snapshot.take", {}, never, claim=claim)
    done = runner.wait(job.id, 10, SYSTEM)
    assert refused == [job.id]
    assert done.status is JobStatus.FAILED, done  # the function never ran, and the job says so
    assert guards.held() == []  # before the fix: volume v1 held by the job for the life of the process
