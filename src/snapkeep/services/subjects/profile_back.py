"""A VM's or volume's snapshot profile is part of its configuration (SPEC §1): every snapshot of it records
the profile assigned then (``profile_id`` in the object's manifest config, None for none), and a restore that
brings its configuration back brings that back too: a VM over itself, a volume's data and settings, the
whole subtree in place. A copy restored as new starts with none (a schedule for it is its owner's choice).

The kinds get the profile service's :meth:`~snapkeep.services.profiles.Profiles.put_back` as a plain
callable, so that they need not import it (the profile service imports the subject kinds' names).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from snapkeep.catalog.stores import Unit
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.principal import Principal
from snapkeep.model.profile import SubjectOfProfile

log = logging.getLogger(__name__)

PROFILE = "profile_id"  # the key in a VM's or volume's manifest config

PutBack = Callable[[SubjectOfProfile, str, str | None, Principal], str | None]


def assigned_profile(uow: Unit, subject_type: SubjectOfProfile, subject_id: str) -> str | None:
    """The profile assigned to the subject now, as a snapshot records it."""
    assignment = uow.assignments.of_subject(subject_type.value, subject_id)
    return None if assignment is None else assignment.profile_id


def put_back_profile(
    put_back: PutBack, recorded: ManifestObject, subject_type: SubjectOfProfile, subject_id: str, who: Principal
) -> None:
    """Assign (or take off) the profile ``recorded`` says; one recorded before snapshots kept it is left as it
    is, and so is one that cannot be assigned any more (deleted since): logged, the restore stands."""
    if PROFILE not in recorded.config:
        return
    why_not = put_back(subject_type, subject_id, recorded.config[PROFILE], who)
    if why_not is not None:
        log.warning("%s %s restored without its snapshot profile: %s", subject_type, recorded.name, why_not)
