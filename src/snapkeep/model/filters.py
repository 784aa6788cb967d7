"""What a listing of snapshots, or the audit log, may be narrowed to; every field left None matches every row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from snapkeep.model.types import SnapshotKind, SnapshotStatus


@dataclass(frozen=True)
class SnapshotFilter:
    subject_type: str | None = None  # with subject_id: one subject's snapshots
    subject_id: str | None = None
    name: str | None = None
    kind: SnapshotKind | None = None
    status: SnapshotStatus | None = None
    origin: str | None = None
    period_id: str | None = None
    created_after: datetime | None = None  # inclusive: created_at >= created_after
    created_before: datetime | None = None  # exclusive: created_at < created_before, so ranges can follow on


AUDIT_OUTCOMES = ("done", "failed", "refused")


@dataclass(frozen=True)
class AuditFilter:
    """Entries of the audit log: ``actor``, ``action`` and ``outcome`` match exactly (they are names and
    codes); ``target`` is a case-insensitive substring, because targets are ``kind:name`` and one looks for a
    name (``user:alice``, ``alice``, ``volume:``)."""

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    outcome: str | None = None
    since: datetime | None = None  # inclusive: at >= since
    until: datetime | None = None  # exclusive: at < until
