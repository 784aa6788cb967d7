"""What the pages show of a snapshot beyond its record: whether it is locked, for how long it has been held
past its expiry (both the snapshots service's rules, as the API shows them), its owner scope, and owners'
names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from snapkeep.model.principal import Principal
from snapkeep.model.types import Snapshot
from snapkeep.services.container import Services
from snapkeep.services.snapshots import owner_scope


@dataclass(frozen=True)
class SnapshotRow:
    snap: Snapshot
    deletable_at: datetime | None
    locked: bool  # immutable, and not deletable yet
    overdue: str | None  # held past its expiry by its period's minimum count: for how long ("2d 3h")
    owner: str  # its owner scope as the caller sees it (services.snapshots.owner_scope)


def snapshot_row(svc: Services, snap: Snapshot, who: Principal, paths: Mapping[str, str] | None = None) -> SnapshotRow:
    """``paths`` (:meth:`Tenants.paths`), read once for a page of rows."""
    deletable_at = svc.snapshots.deletable_at(snap)
    locked = snap.immutable and (deletable_at is None or deletable_at > svc.clock())
    overdue = svc.snapshots.overdue_seconds(snap)
    owner = owner_scope(snap, who, svc.tenants.paths(who) if paths is None else paths)
    return SnapshotRow(snap, deletable_at, locked, None if overdue is None else _span(overdue), owner)


def _span(seconds: float) -> str:
    """A span as a person reads it at a glance: its two largest units ("2d 3h", "5m 0s")."""
    whole = int(seconds)
    parts = [(whole // 86400, "d"), (whole % 86400 // 3600, "h"), (whole % 3600 // 60, "m"), (whole % 60, "s")]
    while len(parts) > 2 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{n}{unit}" for n, unit in parts[:2])


def snapshot_rows(svc: Services, snaps: Iterable[Snapshot], who: Principal) -> list[SnapshotRow]:
    paths = svc.tenants.paths(who)
    return [snapshot_row(svc, snap, who, paths) for snap in snaps]


def owner_names(svc: Services, who: Principal) -> dict[str, str]:
    """Tenant id -> its path as the caller sees it (``acme/dev``), for the owner column of a list."""
    return svc.tenants.paths(who)
