"""The holds a capture can take (see engine/capture.py): one class per thing held still."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence

from snapkeep.durable import write_durably, write_for_this_boot
from snapkeep.errors import QuiesceFailed, SnapkeepError
from snapkeep.hypervisor import Hypervisor
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

    def __init__(self, trees: Sequence[str], timeout: float, intent_file: str) -> None:
        self._trees = list(trees)
        self._timeout = timeout
        self._intent_file = intent_file
        self._paused: list[Process] = []

    def acquire(self) -> float:
        started = time.monotonic()
        self._paused = pause_writers(self._trees, self._timeout, self._intent_file)
        return started

    def release(self) -> None:
        resume(self._paused)
        self._paused = []
        if os.path.exists(self._intent_file):
            os.unlink(self._intent_file)


class VolumeFrozen:
    """A volume with a filesystem of its own, frozen (``FIFREEZE``) for the capture: every writer of it is
    blocked, including those snapkeep cannot see (the kernel NFS server, ksmbd, shared mappings), and
    its image is clean. Flushed first without blocking (``syncfs``), so the frozen window is short.

    Every capture of such a volume is frozen: its snapshot is a clone of its image, which a read-only
    mount can only read when clean. Asked to quiesce, the freeze is the quiesce (label ``quiesce``);
    otherwise its window is recorded as the ``paused`` one. The intent file is written before the freeze,
    so that the reconciler thaws the volume if snapkeep dies before it does; it is not flushed, as the
    freeze it guards against ends with the machine's uptime.
    """

    def __init__(self, pool: Pool, datasets: Sequence[str], intent_file: str, *, quiesce: bool) -> None:
        self._pool = pool
        self._datasets = list(datasets)
        self._intent_file = intent_file
        self.quiesce = quiesce
        self.label = "quiesce" if quiesce else "paused"

    def acquire(self) -> float:
        intent: dict[str, object] = {"datasets": self._datasets}
        if self._pool.expedite_freeze and rcu.before() == "0":
            intent["rcu_expedited"] = "0"  # the freeze may turn it on: put back if snapkeep dies meanwhile
        write_for_this_boot(self._intent_file, json.dumps(intent))  # a freeze does not outlive a reboot
        try:
            self._pool.flush(self._datasets)
            started = time.monotonic()
            with step("volume freeze"):
                self._pool.freeze(self._datasets)
        except BaseException:
            os.unlink(self._intent_file)
            raise
        return started

    def release(self) -> None:
        """Thaw; the intent stays if the thaw failed, so that the next start-up thaws."""
        with step("volume thaw"):
            self._pool.thaw(self._datasets)
        os.unlink(self._intent_file)


def thaw_recorded(pool: Pool, intent_file: str) -> int:
    """Thaw the volumes a :class:`VolumeFrozen` intent names (start-up, after a crash); how many were frozen."""
    try:
        with open(intent_file) as f:
            intent = json.load(f)
    except ValueError:  # cut short by a power cut (it is not flushed): nothing it named is frozen any more
        log.warning("ignoring the unreadable intent %s (left by a power cut)", intent_file)
        os.unlink(intent_file)
        return 0
    thawed = sum(pool.thaw_one(str(d)) for d in intent["datasets"])
    if intent.get("rcu_expedited") is not None:
        rcu.restore(str(intent["rcu_expedited"]))
    os.unlink(intent_file)
    return thawed


class CannotQuiesce:
    """A quiesce that cannot happen (no agent channel; a guest paused by someone else): it fails at once,
    so the caller's policy decides between refusing and a crash-consistent capture that says why."""

    label = "quiesce"
    quiesce = True

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

    def __init__(self, host: Hypervisor, domain: str, timeout: float, intent_file: str) -> None:
        self._host = host
        self._domain = domain
        self._timeout = timeout
        self._intent_file = intent_file

    def acquire(self) -> float:
        with step("intent: freeze"):
            write_guest_intent(self._intent_file, self._domain)
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
        (see ``services/reconcile.release_pending_guests``) until the agent answers.
        """
        try:
            with step("agent thaw"):
                self._host.thaw(self._domain, self._timeout)
        except SnapkeepError as exc:
            log.warning("thawing %s failed, will retry: %s", self._domain, exc.message)
            keep_pending(self._intent_file)
            return
        if os.path.exists(self._intent_file):
            os.unlink(self._intent_file)


class GuestPaused:
    """All disks of a running VM captured at one instant: its vCPUs paused for the capture only."""

    label = "paused"
    quiesce = False

    def __init__(self, host: Hypervisor, domain: str, intent_file: str) -> None:
        self._host = host
        self._domain = domain
        self._intent_file = intent_file

    def acquire(self) -> float:
        with step("intent: pause"):
            write_guest_intent(self._intent_file, self._domain)
        started = time.monotonic()
        with step("pause"):
            self._host.pause(self._domain)
        return started

    def release(self) -> None:
        """Resume; if that fails the intent stays as *pending*, so the service retries the resume."""
        try:
            with step("resume"):
                self._host.resume(self._domain)
        except SnapkeepError:
            keep_pending(self._intent_file)
            raise
        if os.path.exists(self._intent_file):
            os.unlink(self._intent_file)


def keep_pending(intent_file: str) -> None:
    """Turn an intent into a pending one (``guest-pending-…``), which the service retries every few seconds."""
    directory, name = os.path.split(intent_file)
    os.replace(intent_file, os.path.join(directory, name.replace("guest-", "guest-pending-", 1)))


def write_guest_intent(path: str, domain: str) -> None:
    """Record durably that ``domain`` may be left frozen or paused, for the reconciler."""
    write_durably(path, json.dumps({"domain": domain}))
