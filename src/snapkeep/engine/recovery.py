"""Releasing what intent files say a capture still holds: at start-up, everything a crashed process left;
while serving, the pending releases that failed (a guest agent that did not answer, a thaw that failed).

Writers first, then volumes, then guests — resumes before thaws, since a paused guest's agent cannot thaw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from snapkeep.engine.intents import Intent, IntentKind, Intents
from snapkeep.errors import NotFound, SnapkeepError, VMStateConflict
from snapkeep.hypervisor import Hypervisor
from snapkeep.model.vmspec import VMState
from snapkeep.storage import rcu
from snapkeep.storage.pool import Pool
from snapkeep.writers.pause import Process, resume

log = logging.getLogger(__name__)


@dataclass
class Released:
    processes_resumed: int = 0
    volumes_thawed: int = 0
    guests_released: int = 0


def release_recorded(intents: Intents, pool: Pool, host: Hypervisor, *, pending_only: bool = False) -> Released:
    """Release every hold an intent names (``pending_only``: only those whose release already failed once,
    the only ones that may be touched while captures run)."""
    done = Released()
    if not pending_only:  # a quiesce never leaves a pending intent: its resume cannot fail
        for intent in intents.listing(IntentKind.WRITERS_PAUSED):
            done.processes_resumed += _resume_writers(intents, intent)
    for intent in intents.listing(IntentKind.VOLUME_FROZEN, pending_only=pending_only):
        done.volumes_thawed += _thaw_volumes(intents, intent, pool)
    for kind in (IntentKind.GUEST_PAUSED, IntentKind.GUEST_FROZEN):
        for intent in intents.listing(kind, pending_only=pending_only):
            done.guests_released += _release_guest(intents, intent, host)
    return done


def _resume_writers(intents: Intents, intent: Intent) -> int:
    try:
        paused = [Process(pid, start) for pid, start in intent.read()]
    except ValueError:
        paused = []
    resume(paused)
    intents.release(intent)
    return len(paused)


def _thaw_volumes(intents: Intents, intent: Intent, pool: Pool) -> int:
    """Thaw each volume the intent names (one not frozen is fine) and put back the RCU setting the freeze
    may have changed; the intent stays pending if a thaw fails."""
    try:
        record = intent.read()
    except ValueError:  # cut short by a power cut (it is not flushed): nothing it named is frozen any more
        log.warning("ignoring the unreadable intent %s (left by a power cut)", intent.path)
        intents.release(intent)
        return 0
    try:
        thawed = sum(pool.thaw_one(str(d)) for d in record["datasets"])
    except SnapkeepError as exc:
        log.warning("could not thaw the volumes of %s yet: %s", intent.op_id, exc.message)
        intents.mark_pending(intent)
        return 0
    if record.get("rcu_expedited") is not None:
        rcu.restore(str(record["rcu_expedited"]))
    intents.release(intent)
    return thawed


def _release_guest(intents: Intents, intent: Intent, host: Hypervisor) -> int:
    """Resume (a pause intent) or thaw (a freeze intent) the guests an intent names.

    A guest that is gone or off holds nothing. When one cannot be released yet (agent not answering), the
    intent becomes *pending* and the scheduler retries it.
    """
    record = intent.read()
    domains = [str(d) for d in record["domains"]] if "domains" in record else [str(record["domain"])]
    released = 0
    for domain in domains:
        try:
            state = host.state(domain)
            if intent.kind is IntentKind.GUEST_PAUSED and state is VMState.PAUSED:
                host.resume(domain)
            elif intent.kind is IntentKind.GUEST_FROZEN and state is VMState.RUNNING:
                host.thaw(domain, 10)
            elif intent.kind is IntentKind.GUEST_FROZEN and state is VMState.PAUSED:
                raise VMStateConflict(f"{domain} is paused; its agent can thaw it only once it runs", vm=domain)
        except NotFound:
            pass  # the domain is gone: nothing is held
        except SnapkeepError as exc:
            log.warning("could not release guest %s yet: %s", domain, exc.message)
            intents.mark_pending(intent)
            return released
        released += 1
    intents.release(intent)
    return released
