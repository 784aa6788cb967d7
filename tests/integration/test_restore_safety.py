"""Restores where a review found them wrong (each test failed before its fix): a restore of one member out of
a system snapshot let the snapshot be deleted while it ran, and a volume restored over itself after its size
limit was lowered below the snapshot's data lost its data to a refusal that came after the swap."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from snapkeep.errors import Busy, InvalidInput
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import JobStatus, RestoreMode, SubjectType
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions

MB = 1 << 20


def test_a_member_restore_holds_its_snapshot_until_it_ends(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = services.volumes.create("docs", size_limit=64 * MB, who=SYSTEM)
    snap = services.snapshots.take(TakeRequest("system", "nightly", subject_type="system"), who=SYSTEM)
    inside, go = threading.Event(), threading.Event()
    swap = services.pool.swap_in_snapshot

    def slow_swap(*args: str) -> None:  # fault switch: the restore stays inside its swap until let go
        inside.set()
        go.wait(60)
        swap(*args)

    monkeypatch.setattr(services.pool, "swap_in_snapshot", slow_swap)
    member = RestoreOptions(member_type=SubjectType.VOLUME, member=docs.id, pre_restore=False)
    job = services.restores.submit(snap.id, member, SYSTEM)
    try:
        assert inside.wait(30)
        with pytest.raises(Busy):  # before its fix: deleted under the running restore
            services.snapshots.delete(snap.id, who=SYSTEM)
    finally:
        go.set()
    assert services.jobs.wait(job.id, 60, SYSTEM).status is JobStatus.SUCCEEDED
    assert services.guards.held() == []


def files(tree: str) -> dict[str, bytes]:
    """The volume's files (an XFS image volume also holds snapkeep's own folder, not a user's file)."""
    return {p.name: p.read_bytes() for p in sorted(Path(tree).iterdir()) if p.is_file()}


def test_data_over_a_lowered_size_limit_is_refused_and_the_volume_keeps_its_data(services: Services) -> None:
    docs = services.volumes.create("docs", size_limit=8 * MB, who=SYSTEM)
    tree = services.pool.dataset_tree(docs.dataset)
    Path(tree, "big").write_bytes(os.urandom(3 * MB))
    snap = services.snapshots.take(TakeRequest(docs.id, "with-big"), who=SYSTEM)
    os.unlink(Path(tree, "big"))
    Path(tree, "after").write_bytes(b"written after the snapshot")
    services.volumes.update(docs.id, size_limit=1 * MB, who=SYSTEM)
    before = files(tree)

    with pytest.raises(InvalidInput, match="size limit"):
        services.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)
    assert files(services.pool.dataset_tree(docs.dataset)) == before  # before its fix: 'big' swapped in, 'after' gone
    assert services.pool.list_staging() == [] and services.pool.list_retired() == []

    with_settings = RestoreOptions(pre_restore=False, mode=RestoreMode.DATA_AND_SETTINGS)  # the old limit too
    services.restores.over_source(snap.id, with_settings, SYSTEM)
    assert set(files(services.pool.dataset_tree(docs.dataset))) == {"big"}
    assert services.volumes.get(docs.id, who=SYSTEM).size_limit == 8 * MB
