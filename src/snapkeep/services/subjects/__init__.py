"""Subject kinds: the one plug-in point for what a snapshot can be of (see :mod:`.base`)."""

from snapkeep.services.subjects.base import Effects, RestoreOptions, Subject, SubjectKind

__all__ = ["Effects", "RestoreOptions", "Subject", "SubjectKind"]
