"""Subject kinds: the one plug-in point for what a snapshot can be of (see :mod:`.base`)."""

from snapkeep.services.subjects.base import RestoreOptions, Subject, SubjectKind

__all__ = ["RestoreOptions", "Subject", "SubjectKind"]
