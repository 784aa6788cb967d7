"""The first page of one subject's snapshots, for its detail page (the rest: the snapshots list, filtered)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from snapkeep.model.filters import SnapshotFilter
from snapkeep.model.paging import Window
from snapkeep.model.principal import Principal
from snapkeep.services.container import Services
from snapkeep.ui.rows import SnapshotRow, snapshot_rows

SHOWN = 50


@dataclass(frozen=True)
class SubjectSnapshots:
    rows: list[SnapshotRow]
    more_url: str | None  # the snapshots list of this subject, when it has more than a page


def subject_snapshots(svc: Services, who: Principal, subject_type: str, subject_id: str) -> SubjectSnapshots:
    """``subject_type``'s snapshots (volume, vm, tenant; system: a tenant's own system snapshots, or the
    system's with ``subject_id`` "system"), oldest first, as the API's listing with that subject."""
    page = svc.snapshots.page(SnapshotFilter(subject_type=subject_type), Window(SHOWN), subject_id, who=who)
    more = None
    if page.next is not None:
        more = "/snapshots?" + urlencode({"subject_type": subject_type, "subject": subject_id})
    return SubjectSnapshots(snapshot_rows(svc, page.items, who), more)
