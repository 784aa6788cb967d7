"""Long operations run as jobs: a catalog row shows progress, result and error; a thread pool runs them.

A job's function gets a ``progress(fraction, message)`` callback and returns its result as a dict. A
:class:`SnapkeepError` becomes the job's error body; anything else is reported as an internal error. Jobs
left ``queued``/``running`` by a crash are failed by the reconciler at the next start. A job can be handed
the guards its request claimed (:mod:`snapkeep.services.guards`): it holds them while it runs and gives
them back when its function returns or raises, before it is reported finished.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from snapkeep.catalog import repo
from snapkeep.catalog.db import Database
from snapkeep.catalog.tables import JobRow
from snapkeep.errors import SnapkeepError
from snapkeep.model.types import Job, JobStatus
from snapkeep.services.guards import Claim

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
JobFunction = Callable[[Progress], dict[str, Any]]


class JobRunner:
    def __init__(self, db: Database, clock: Callable[[], datetime], workers: int) -> None:
        self._db = db
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="snapkeep-job")
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def submit(self, kind: str, params: dict[str, Any], fn: JobFunction, claim: Claim | None = None) -> Job:
        """Queue ``fn``; with ``claim``, the job takes over the guards its caller claimed."""
        job_id = str(uuid.uuid4())
        with self._db.transaction() as s:
            row = JobRow(
                id=job_id,
                kind=kind,
                status=JobStatus.QUEUED,
                progress=0.0,
                message="queued",
                params=params,
                created_at=self._clock(),
            )
            s.add(row)
            s.flush()
            job = repo.job_from_row(row)
        with self._lock:
            self._done[job_id] = threading.Event()
        held: AbstractContextManager[None] = nullcontext()
        if claim is not None:
            claim.hand_over(job_id)
            held = claim.held_by_job()
        try:
            self._pool.submit(self._run, job_id, fn, held)
        except BaseException:
            if claim is not None:
                claim.release()
            raise
        return job

    def _run(self, job_id: str, fn: JobFunction, held: AbstractContextManager[None]) -> None:
        self._update(job_id, status=JobStatus.RUNNING, message="running")
        try:
            with held:
                result = fn(lambda fraction, message: self._update(job_id, progress=fraction, message=message))
        except SnapkeepError as exc:
            self._finish(job_id, JobStatus.FAILED, error=exc.to_body()["error"], message=exc.message)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._finish(job_id, JobStatus.FAILED, error=SnapkeepError(str(exc)).to_body()["error"], message=str(exc))
        else:
            self._finish(job_id, JobStatus.SUCCEEDED, result=result, message="done")

    def _update(self, job_id: str, **values: Any) -> None:
        with self._db.transaction() as s:
            row = repo.get_job_row(s, job_id)
            for key, value in values.items():
                setattr(row, key, value)

    def _finish(self, job_id: str, status: JobStatus, message: str, **values: Any) -> None:
        progress = 1.0 if status is JobStatus.SUCCEEDED else None
        extra = {"progress": progress} if progress is not None else {}
        self._update(job_id, status=status, message=message, finished_at=self._clock(), **extra, **values)
        with self._lock:
            event = self._done.pop(job_id, None)
        if event is not None:
            event.set()

    def get(self, job_id: str) -> Job:
        with self._db.transaction() as s:
            return repo.job_from_row(repo.get_job_row(s, job_id))

    def list(self, limit: int = 100) -> list[Job]:
        with self._db.transaction() as s:
            return [repo.job_from_row(row) for row in repo.list_job_rows(s, limit)]

    def wait(self, job_id: str, timeout: float) -> Job:
        """The job once finished, or as it is after ``timeout`` seconds."""
        with self._lock:
            event = self._done.get(job_id)
        if event is not None:
            event.wait(timeout)
        return self.get(job_id)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
