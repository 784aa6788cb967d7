"""The holds a capture can take (see engine/capture.py): one class per thing held still."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from snapkeep.engine.intents import Intent, IntentKind, Intents
from snapkeep.errors import QuiesceFailed, SnapkeepError
from snapkeep.hypervisor import Hypervisor
from snapkeep.hypervisor.base import Guest
from snapkeep.parallel import each_at_once
from snapkeep.storage import rcu
from snapkeep.storage.pool import Pool
from snapkeep.timing import step
from snapkeep.writers.pause import Process, pause_writers, resume

log = logging.getLogger(__name__)


class WritersPaused:
    """Quiesce of a volume: its writer processes stopped, recorded in an intent file first, so that the
    reconciler resumes them if snapkeep dies before it does."""

    label = "quiesce"
    quiesce = True
    still: Sequence[str] = ()  # its writers could be resumed by someone else: captured with the rest

    def __init__(self, trees: Sequence[str], timeout: float, intents: Intents, op_id: str) -> None:
        self._trees = list(trees)
        self._timeout = timeout
        self._intents = intents
        self._op_id = op_id
        self._intent: Intent | None = None
        self._paused: list[Process] = []

    def acquire(self) -> float:
        started = time.monotonic()
        intent = self._intent = self._intents.make(IntentKind.WRITERS_PAUSED, self._op_id, [])

        def record(paused: list[Process]) -> None:
            self._intents.update(intent, [[p.pid, p.start_time] for p in paused])

        try:
            self._paused = pause_writers(self._trees, self._timeout, record)
        except BaseException:
            self._intents.release(intent)
            raise
        return started

    def release(self) -> None:
        resume(self._paused)
        self._paused = []
        if self._intent is not None:
            self._intents.release(self._intent)


class VolumeFrozen:
    """A volume with a filesystem of its own, frozen (``FIFREEZE``) for the capture: every writer of it is
    blocked, including those snapkeep cannot see (the kernel NFS server, ksmbd, shared mappings), and
    its image is clean. Flushed first without blocking (``syncfs``), so the frozen window is short.

    Every capture of such a volume is frozen: its snapshot is a clone of its image, which a read-only
    mount can only read when clean. Asked to quiesce, the freeze is the quiesce (label ``quiesce``);
    otherwise its window is recorded as the ``paused`` one. The intent file is written before the freeze,
    so that the reconciler thaws the volume if snapkeep dies before it does (it is not flushed, as the
    freeze it guards against ends with the machine's uptime); a thaw that fails leaves it pending, for the
    scheduler to retry.
    """

    def __init__(self, pool: Pool, datasets: Sequence[str], intents: Intents, op_id: str, *, quiesce: bool) -> None:
        self._pool = pool
        self._datasets = list(datasets)
        self.still: Sequence[str] = tuple(datasets)  # a frozen filesystem's image cannot change until the thaw
        self._intents = intents
        self._op_id = op_id
        self._intent: Intent | None = None
        self.quiesce = quiesce
        self.label = "quiesce" if quiesce else "paused"

    def acquire(self) -> float:
        record: dict[str, object] = {"datasets": self._datasets}
        if self._pool.expedite_freeze and rcu.before() == "0":
            record["rcu_expedited"] = "0"  # the freeze may turn it on: put back if snapkeep dies meanwhile
        kind, op_id = IntentKind.VOLUME_FROZEN, self._op_id
        intent = self._intent = self._intents.make(kind, op_id, record, flushed=False)  # a freeze ends at reboot
        try:
            self._pool.flush(self._datasets)
            started = time.monotonic()
            with step("volume freeze"):
                self._pool.freeze(self._datasets)
        except BaseException:
            self._intents.release(intent)
            raise
        return started

    def release(self) -> None:
        """Thaw; if that fails the intent is left pending, so that the scheduler retries the thaw."""
        assert self._intent is not None, "released before acquired"
        try:
            with step("volume thaw"):
                self._pool.thaw(self._datasets)
        except BaseException:
            self._intents.mark_pending(self._intent)
            raise
        self._intents.release(self._intent)


class CannotQuiesce:
    """A quiesce that cannot happen (no agent channel; a guest paused by someone else): it fails at once,
    so the caller's policy decides between refusing and a crash-consistent capture that says why."""

    label = "quiesce"
    quiesce = True
    still: Sequence[str] = ()

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def acquire(self) -> float:
        raise QuiesceFailed(self._reason)

    def release(self) -> None:
        """Nothing was held."""


class GuestFrozen:
    """Quiesce of a VM: the guest agent freezes its filesystems (bounded), and thaws them on release.

    The intent file is written before the freeze, so that after a crash the reconciler thaws the guest.
    """

    label = "quiesce"
    quiesce = True
    still: Sequence[str] = ()  # the guest's disks: still only once it is paused, captured with the rest

    def __init__(self, host: Hypervisor, domain: str, timeout: float, intents: Intents, op_id: str) -> None:
        self._host = host
        self._domain = domain
        self._timeout = timeout
        self._intents = intents
        self._op_id = op_id
        self._intent: Intent | None = None

    def acquire(self) -> float:
        with step("intent: freeze"):
            self._intent = self._intents.make(IntentKind.GUEST_FROZEN, self._op_id, {"domain": self._domain})
        started = time.monotonic()
        try:
            with step("agent freeze"):
                self._host.freeze(self._domain, self._timeout)
        except BaseException:
            self._thaw_quietly()
            raise
        return started

    def release(self) -> None:
        self._thaw_quietly()

    def _thaw_quietly(self) -> None:
        """Thaw even after a failed or timed-out freeze: a slow agent may still freeze later.

        When the thaw itself cannot get through, the intent is kept as *pending*: the service retries it
        (see :mod:`snapkeep.engine.recovery`) until the agent answers.
        """
        assert self._intent is not None, "released before acquired"
        try:
            with step("agent thaw"):
                self._host.thaw(self._domain, self._timeout)
        except SnapkeepError as exc:
            log.warning("thawing %s failed, will retry: %s", self._domain, exc.message)
            self._intents.mark_pending(self._intent)
            return
        self._intents.release(self._intent)


class GuestsPaused:
    """All disks of running VMs captured at one instant: the vCPUs of every guest paused for the capture
    only (one guest for a VM snapshot, every running guest of a system snapshot).

    One intent names every guest before the first is paused, so the window holds no file writes and, after
    a crash, the reconciler resumes them all. The guests are paused all at once and resumed all at once
    (libvirt runs calls to different domains in parallel): one after another, five busy guests took
    70-140 ms of the window. They are looked up before the window, so that inside it each guest costs one
    call (a lookup by name and a check of the connection per call added ~2 ms to each side for five). If
    one guest cannot be paused, every other is resumed before the error goes up: a failed hold leaves
    every guest running.
    """

    label = "paused"
    quiesce = False
    still: Sequence[str] = ()  # the last hold: everything not captured yet is captured inside it

    def __init__(self, host: Hypervisor, domains: Sequence[str], intents: Intents, op_id: str) -> None:
        self._host = host
        self._domains = list(domains)
        self._intents = intents
        self._op_id = op_id
        self._intent: Intent | None = None
        self._paused: list[Guest] = []

    def acquire(self) -> float:
        with step("intent: pause"):
            self._intent = self._intents.make(IntentKind.GUEST_PAUSED, self._op_id, {"domains": self._domains})
        try:
            with step("look up guests"):
                guests = self._host.guests(self._domains)  # outside the window: one call per guest inside
            started = time.monotonic()
            with step("pause"):
                each_at_once(self._pause, guests)
        except BaseException:
            self._resume_paused()
            raise
        return started

    def _pause(self, guest: Guest) -> None:
        self._paused.append(guest)  # before the call: a pause that fails half-way is resumed too
        guest.pause()

    def release(self) -> None:
        """Resume every paused guest; if one fails the intent stays *pending*, so the service retries it."""
        failed = self._resume_paused()
        if failed is not None:
            raise failed

    def _resume_paused(self) -> Exception | None:
        assert self._intent is not None, "released before acquired"
        failures: list[Exception] = []

        def resume(guest: Guest) -> None:
            try:
                guest.resume()
            except Exception as exc:  # any failure: the pending intent has the service retry it
                log.warning("resuming %s failed, will retry: %s", guest.name, getattr(exc, "message", repr(exc)))
                failures.append(exc)

        with step("resume"):
            each_at_once(resume, self._paused)
        self._paused = []
        failed = failures[0] if failures else None
        if failed is not None:
            self._intents.mark_pending(self._intent)
        else:
            self._intents.release(self._intent)
        return failed
