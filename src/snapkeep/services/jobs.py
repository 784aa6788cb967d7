"""Long operations run as jobs: a catalog row shows progress, result and error; a thread pool runs them.

A job's function gets a ``progress(fraction, message)`` callback and returns its result as a dict. A
:class:`SnapkeepError` becomes the job's error body; anything else is reported as an internal error. Jobs
left ``queued``/``running`` by a crash are failed by the reconciler at the next start.

Jobs run in one of two lanes, each its own thread pool, so that an operator's take or restore never waits
behind background work: the foreground lane (``job_workers`` threads) runs what a caller waits for; the
background lane (one thread at the lowest CPU priority) runs measurements nobody waits for, such as the
space of a snapshot. However many background jobs queue up, they hold no foreground worker. The scheduled
lane runs the snapshots of profiles, one job per subject, so that neither an operator nor the schedule
waits behind the other, and a slow subject holds one of its workers, not the schedule.

A job belongs to the owner of what it works on (``owner_tenant_id``, set by the service that submits it):
a tenant's caller sees its own subtree's jobs only, like every other object.

A job can be handed the guards its request claimed (:mod:`snapkeep.services.guards`): it holds them
while it runs and gives them back when its function returns or raises, before it is reported finished.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from datetime import datetime
from enum import StrEnum
from typing import Any

from snapkeep.catalog.db import Database
from snapkeep.errors import SnapkeepError
from snapkeep.model.paging import Page, Window
from snapkeep.model.principal import Principal
from snapkeep.model.types import Job, JobStatus
from snapkeep.services.guards import Claim

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
JobFunction = Callable[[Progress], dict[str, Any]]

_reporting: ContextVar[Progress | None] = ContextVar("snapkeep_job_progress", default=None)


def report_progress(fraction: float, message: str) -> None:
    """Progress of the job that runs in this thread, for work the job's function reaches through layers
    that pass no ``progress`` on (the kind a restore hands a whole-system rebuild to); outside a job,
    nothing."""
    progress = _reporting.get()
    if progress is not None:
        progress(fraction, message)


class Lane(StrEnum):
    FOREGROUND = "foreground"
    BACKGROUND = "background"
    SCHEDULED = "scheduled"


def _lowest_cpu_priority() -> None:
    """Run the calling thread at nice 19 (on Linux a thread's nice value is its own)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except OSError as exc:  # not fatal: the lane is still separate
        log.warning("could not lower the background lane's priority: %s", exc)


class _Launch:
    """Whether a job handed to its lane may run. A lane can queue the work and still raise (no thread could
    be started for it), and an idle worker may then pick it up: the job waits until its submission is
    decided, and one its caller was told was refused never runs."""

    def __init__(self) -> None:
        self._decided = threading.Event()
        self._refused = False

    def decide(self, refused: bool) -> None:
        self._refused = refused
        self._decided.set()

    def may_run(self) -> bool:
        self._decided.wait()
        return not self._refused


class JobRunner:
    def __init__(self, db: Database, clock: Callable[[], datetime], workers: int, scheduled_workers: int = 4) -> None:
        self._db = db
        self._clock = clock
        self._lanes = {
            Lane.FOREGROUND: ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snapkeep-job"),
            Lane.BACKGROUND: ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="snapkeep-background", initializer=_lowest_cpu_priority
            ),
            Lane.SCHEDULED: ThreadPoolExecutor(max_workers=scheduled_workers, thread_name_prefix="snapkeep-scheduled"),
        }
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._once: dict[str, str] = {}  # ``once`` key -> id of its job, while queued or running
        self._submitting_once = threading.Lock()

    def submit(
        self,
        kind: str,
        params: dict[str, Any],
        fn: JobFunction,
        lane: Lane = Lane.FOREGROUND,
        once: str | None = None,
        claim: Claim | None = None,
        owner_tenant_id: str | None = None,
    ) -> Job:
        """Record the job ``queued`` and run ``fn`` in ``lane`` (see the module docstring).

        With ``once``, a job submitted with the same key that is still queued or running is returned
        instead of a new one: asking twice to measure the same snapshot queues one measurement. With
        ``claim``, the job takes over the guards its caller claimed. ``owner_tenant_id`` is the owner of
        what the job works on (None: the system).
        """
        if once is None:
            return self._submit(kind, params, fn, lane, None, claim, owner_tenant_id)
        with self._submitting_once:
            with self._lock:
                existing = self._once.get(once)
            if existing is not None:
                return self._get(existing)
            return self._submit(kind, params, fn, lane, once, claim, owner_tenant_id)

    def _submit(
        self,
        kind: str,
        params: dict[str, Any],
        fn: JobFunction,
        lane: Lane,
        once: str | None,
        claim: Claim | None,
        owner_tenant_id: str | None,
    ) -> Job:
        job_id = str(uuid.uuid4())
        with self._db.unit() as uow:
            job = uow.jobs.insert(
                Job(
                    id=job_id,
                    kind=kind,
                    status=JobStatus.QUEUED,
                    progress=0.0,
                    message="queued",
                    params=params,
                    result=None,
                    error=None,
                    created_at=self._clock(),
                    finished_at=None,
                    owner_tenant_id=owner_tenant_id,
                )
            )
        with self._lock:
            self._done[job_id] = threading.Event()
            if once is not None:
                self._once[once] = job_id
        held: AbstractContextManager[None] = nullcontext()
        if claim is not None:
            claim.hand_over(job_id)
            held = claim.held_by_job()
        launch = _Launch()
        try:
            self._lanes[lane].submit(self._run, job_id, fn, held, launch)
        except BaseException as exc:  # the lane refused it (shutting down): the row must not stay 'queued'
            launch.decide(refused=True)
            if claim is not None:
                claim.release()
            self._not_started(job_id, exc)
            raise
        launch.decide(refused=False)
        return job

    def _not_started(self, job_id: str, exc: BaseException) -> None:
        """A job its lane refused ends failed at once; if the catalog cannot say so now, the reconciler fails
        the ``queued`` row at the next start, as it does for a crash."""
        try:
            self._finish(job_id, JobStatus.FAILED, message=f"not started: {exc!r}")
        except Exception:
            log.exception("job %s was not started and could not be marked failed", job_id)

    def _run(self, job_id: str, fn: JobFunction, held: AbstractContextManager[None], launch: _Launch) -> None:
        if not launch.may_run():
            return

        def progress(fraction: float, message: str) -> None:
            self._update(job_id, progress=fraction, message=message)

        token = _reporting.set(progress)
        try:
            with held:  # entered first: guards handed over are given back even if the row cannot be updated
                self._update(job_id, status=JobStatus.RUNNING, message="running")
                result = fn(progress)
        except SnapkeepError as exc:
            self._finish(job_id, JobStatus.FAILED, error=exc.to_body()["error"], message=exc.message)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._finish(job_id, JobStatus.FAILED, error=SnapkeepError(str(exc)).to_body()["error"], message=str(exc))
        else:
            self._finish(job_id, JobStatus.SUCCEEDED, result=result, message="done")
        finally:
            _reporting.reset(token)

    def _update(self, job_id: str, **values: Any) -> None:
        with self._db.unit() as uow:
            uow.jobs.update(job_id, **values)

    def _finish(self, job_id: str, status: JobStatus, message: str, **values: Any) -> None:
        progress = 1.0 if status is JobStatus.SUCCEEDED else None
        extra = {"progress": progress} if progress is not None else {}
        try:
            self._update(job_id, status=status, message=message, finished_at=self._clock(), **extra, **values)
        finally:  # a row the catalog could not update now is failed by the reconciler at the next start
            self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        """The job is over: wake its waiters, and a ``once`` key starts a new job again."""
        with self._lock:
            event = self._done.pop(job_id, None)
            self._once = {key: job for key, job in self._once.items() if job != job_id}
        if event is not None:
            event.set()

    def get(self, job_id: str, who: Principal) -> Job:
        """Any role; a job outside the caller's scope is :class:`NotFound`, as a missing one."""
        with self._db.unit(who) as uow:
            return uow.jobs.get(job_id)

    def _get(self, job_id: str) -> Job:
        with self._db.unit() as uow:
            return uow.jobs.get(job_id)

    def list(self, who: Principal, limit: int = 100) -> list[Job]:
        """The newest jobs the caller's scope sees."""
        return self.page(who, Window(limit)).items

    def page(self, who: Principal, window: Window) -> Page[Job]:
        """The jobs the caller's scope sees, a page at a time, newest first."""
        with self._db.unit(who) as uow:
            return uow.jobs.page(window)

    def wait(self, job_id: str, timeout: float, who: Principal) -> Job:
        """The job once finished, or as it is after ``timeout`` seconds (seen by ``who``, as :meth:`get`)."""
        self.get(job_id, who)  # one outside the scope is not waited for either
        with self._lock:
            event = self._done.get(job_id)
        if event is not None:
            event.wait(timeout)
        return self.get(job_id, who)

    def shutdown(self) -> None:
        for executor in self._lanes.values():
            executor.shutdown(wait=True, cancel_futures=True)
