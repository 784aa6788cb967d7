"""What a listing of snapshots may be narrowed to; every field left None matches every snapshot."""

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
