"""One operation per subject at a time: in-process guards, claimed by the request, held by its job.

Every operation that changes a volume or a VM, or that needs a snapshot to stay, claims a guard on each
subject it touches before it starts: *exclusive* for what it changes (the volume a take captures or a
restore replaces, the VM it starts, the snapshot it deletes), *shared* for what it only reads (the
snapshot a restore or an extract copies from, so that it cannot be deleted meanwhile). A claim that meets
another operation's guard is refused at once with :class:`~snapkeep.errors.Busy`, naming that operation,
its job and since when, so the API refuses synchronously; nothing waits unless the caller asks for a bound.

- **Claimed in the request, held by the job.** The API claims (with the checks inside the claim, so a
  refusal changes nothing), then hands the claim to the job it starts
  (:meth:`~snapkeep.services.jobs.JobRunner.submit`); the job releases it when it ends, failed or not.
- **Re-entrant within one operation.** While a claim is active in a thread (a ``with`` block, or the job
  it was handed to), a nested claim that it already covers (the pre-restore take inside a restore, the
  snapshot deletes inside a volume delete) is granted without touching the table. A nested claim on
  something more never waits, so an operation never holds guards while waiting for others.
- **All or nothing, in one global order.** A claim of several subjects (a system snapshot's members) takes
  all of them in one step under one lock, or none; keys are kept sorted by (kind, id), so which one is
  reported busy is deterministic, and if guards ever become per-key locks (files with ``flock`` for
  several processes) that sorted order is the one to take them in. Two overlapping claims therefore never
  deadlock.
- **Nothing stale after a crash.** Guards live in the service process's memory only, and the process is
  the only one that writes the pool: after ``kill -9`` there is no guard left, and the reconciler settles
  whatever the killed operation had half done before the restarted service takes requests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType

from snapkeep.errors import Busy


@dataclass(frozen=True, order=True)
class Need:
    """One subject an operation touches: ``kind`` is ``volume``, ``vm`` or ``snapshot``."""

    kind: str
    id: str
    shared: bool = False
    label: str = field(default="", compare=False)  # the name, for messages

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.id)


def exclusive(kind: str, subject_id: str, label: str = "") -> Need:
    return Need(kind, subject_id, False, label)


def shared(kind: str, subject_id: str, label: str = "") -> Need:
    return Need(kind, subject_id, True, label)


_active: ContextVar[Claim | None] = ContextVar("snapkeep_active_claim", default=None)


class Claim:
    """The guards one operation holds. A context manager: entering makes it the thread's active claim
    (so nested claims it covers are granted), leaving releases it unless it was handed to a job."""

    def __init__(
        self,
        guards: Guards | None,
        operation: str,
        needs: tuple[Need, ...],
        since: datetime,
        parent: Claim | None = None,
    ) -> None:
        self._guards = guards  # None: a nested claim that holds nothing of its own
        self._parent = parent  # the active claim this one was made inside
        self.operation = operation
        self.needs = needs
        self.since = since
        self.job_id: str | None = None
        self._handed_over = False
        self._released = False
        self._tokens: list[Token[Claim | None]] = []

    def covers(self, need: Need) -> bool:
        """Whether this claim (or the one it is nested in) already holds ``need``."""
        mine = any(n.key == need.key and (need.shared or not n.shared) for n in self.needs)
        return mine or (self._parent is not None and self._parent.covers(need))

    def verified(self, check: Callable[[], object]) -> Claim:
        """This claim, once ``check`` passed with the guards held (does the subject still exist, now that
        nothing can delete it?); given back if it raises."""
        try:
            check()
        except BaseException:
            self.release()
            raise
        return self

    def hand_over(self, job_id: str) -> None:
        """The job ``job_id`` now holds this claim: leaving the ``with`` no longer releases it."""
        self.job_id = job_id
        self._handed_over = True

    @contextmanager
    def held_by_job(self) -> Iterator[None]:
        """Active in the job's thread while the job runs; released when it ends, however it ends."""
        token = _active.set(self)
        try:
            yield
        finally:
            _active.reset(token)
            self.release()

    def release(self) -> None:
        """Give the guards back (idempotent)."""
        if self._guards is not None and not self._released:
            self._released = True
            self._guards._release(self)

    def __enter__(self) -> Claim:
        self._tokens.append(_active.set(self))
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        _active.reset(self._tokens.pop())
        if not self._handed_over:
            self.release()


class Guards:
    """The table of guards held in this process; one instance per service."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._changed = threading.Condition()
        self._holders: dict[tuple[str, str], list[tuple[Need, Claim]]] = {}

    def claim(self, operation: str, needs: Iterable[Need], wait: float = 0.0) -> Claim:
        """Claim every need at once, or raise :class:`Busy` (after waiting up to ``wait`` seconds)."""
        wanted = tuple(sorted(set(needs)))
        current = _active.get()
        if current is not None:
            missing = tuple(n for n in wanted if not current.covers(n))
            if not missing:
                return Claim(None, operation, wanted, current.since, parent=current)
            wanted, wait = missing, 0.0  # never wait while holding: no deadlock between nested claims
        claim = Claim(self, operation, wanted, self._clock(), parent=current)
        with self._changed:
            self._changed.wait_for(lambda: self._blocker(wanted) is None, timeout=wait)
            blocker = self._blocker(wanted)
            if blocker is not None:
                raise self._busy(*blocker)
            for need in wanted:
                self._holders.setdefault(need.key, []).append((need, claim))
        return claim

    def _blocker(self, wanted: tuple[Need, ...]) -> tuple[Need, Need, Claim] | None:
        """The first wanted subject that is taken in a conflicting way, with the holder."""
        for need in wanted:
            for held, holder in self._holders.get(need.key, []):
                if not (need.shared and held.shared):
                    return need, held, holder
        return None

    def _busy(self, need: Need, held: Need, holder: Claim) -> Busy:
        what = f"{need.kind} {need.label or held.label or need.id}"
        job = f" (job {holder.job_id})" if holder.job_id else ""
        return Busy(
            f"{what} is busy: {holder.operation}{job} since {holder.since.isoformat()}; try again when it is done",
            subject=f"{need.kind}:{need.id}",
            operation=holder.operation,
            job=holder.job_id,
            since=holder.since.isoformat(),
        )

    def _release(self, claim: Claim) -> None:
        with self._changed:
            for need in claim.needs:
                holders = [(n, c) for n, c in self._holders.get(need.key, []) if c is not claim]
                if holders:
                    self._holders[need.key] = holders
                else:
                    self._holders.pop(need.key, None)
            self._changed.notify_all()

    def held(self) -> list[tuple[str, str, str]]:
        """(subject, operation, since) of every guard held now: for diagnostics and tests."""
        with self._changed:
            return sorted(
                (f"{kind}:{sid}", claim.operation, claim.since.isoformat())
                for (kind, sid), holders in self._holders.items()
                for _need, claim in holders
            )
