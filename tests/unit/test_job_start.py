"""A job that never gets to run its function still ends: its row is not left ``queued`` or ``running`` for
the rest of the process, its waiters wake, and the guards its request handed it are given back (else every
later operation on its subject is ``busy`` until a restart)."""

from __future__ import annotations

import threading
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
from snapkeep.services.jobs import JobRunner, Lane, Progress

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


def test_a_job_whose_lane_queued_it_but_raised_never_runs(runner: JobRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane queues the work, then cannot start a thread for it and raises; an idle worker is there to
    pick the work up. The caller is told the job was refused, so it must not run (its guards are free)."""
    guards = Guards(lambda: T0)
    warm = runner.submit("warm", {}, lambda _p: {})  # a worker exists and is idle after this
    runner.wait(warm.id, 10, SYSTEM)
    lane = runner._lanes[Lane.FOREGROUND]

    def no_thread() -> None:  # fault switch: as ThreadPoolExecutor when the host cannot start a thread
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(lane, "_adjust_thread_count", no_thread)
    ran = threading.Event()

    def work(_progress: Progress) -> dict[str, object]:
        ran.set()
        return {}

    claim = guards.claim("snapshot.take", [exclusive("volume", "v1")])
    with pytest.raises(RuntimeError):
        runner.submit("snapshot.take", {}, work, claim=claim)
    assert not ran.wait(1.0), "the job its caller was told was refused ran"  # before the fix: it ran
    [job] = [j for j in runner.list(SYSTEM) if j.kind == "snapshot.take"]
    assert job.status is JobStatus.FAILED and guards.held() == []
