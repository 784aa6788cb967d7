"""A take reads its subject before it can claim the subject's guards (it needs the members to claim them),
and skips reading it again under the claim when the catalog has not changed in between. These tests change
the catalog in that gap, as a concurrent request would: what the take captures, or refuses, must be the
subject as it is once held. Real pool and services, no guests; the rule does not depend on the driver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from snapkeep.errors import NotFound
from snapkeep.model.principal import SYSTEM
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import Subject

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)

MiB = 1 << 20


def change_after_reading(svc: Services, monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]) -> None:
    """The next read of a take's subject is followed at once by ``change`` (before the take claims)."""
    read = svc.snapshots.subject

    def read_then_change(*args: Any, **kwargs: Any) -> Subject:
        subject = read(*args, **kwargs)
        monkeypatch.setattr(svc.snapshots, "subject", read)
        change()
        return subject

    monkeypatch.setattr(svc.snapshots, "subject", read_then_change)


def volume_names(svc: Services, snap_id: str) -> set[str]:
    return {obj.name for obj in svc.snapshots.manifest(snap_id).objects if obj.type == "volume"}


def test_a_system_take_captures_its_members_as_they_are_once_claimed(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = services
    svc.volumes.create("early", 8 * MiB, who=SYSTEM)

    def change() -> None:
        svc.volumes.create("late", 8 * MiB, who=SYSTEM)
        svc.volumes.delete("early", svc.snapshots, who=SYSTEM)

    change_after_reading(svc, monkeypatch, change)
    snap = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name="s"), who=SYSTEM)

    assert volume_names(svc, snap.id) == {"late"}
    assert snap.status == "ready"


@pytest.mark.parametrize("path", ["take", "submit_take"])
def test_a_volume_deleted_before_its_take_claims_it_is_not_found_and_nothing_is_made(
    services: Services, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    svc = services
    svc.volumes.create("doomed", 8 * MiB, who=SYSTEM)
    datasets = set(svc.pool.list_datasets())

    def delete() -> None:
        svc.volumes.delete("doomed", svc.snapshots, who=SYSTEM)
        datasets.clear()
        datasets.update(svc.pool.list_datasets())

    change_after_reading(svc, monkeypatch, delete)
    jobs_before = svc.jobs.list(SYSTEM)

    with pytest.raises(NotFound):
        getattr(svc.snapshots, path)(TakeRequest(ref="doomed", name="s"), who=SYSTEM)

    assert svc.snapshots.listing(who=SYSTEM) == []
    assert svc.jobs.list(SYSTEM) == jobs_before  # refused before any job was started
    assert set(svc.pool.list_datasets()) == datasets  # as the delete left it: nothing captured, nothing made
