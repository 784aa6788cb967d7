"""Snapshot images mounted to be read (XFS pools), in a real pool: readers of one snapshot share one
mount however they come and go, nothing is left mounted or attached after them, the limit refuses only
what would need a new mount, and a snapshot deleted while read stays readable to its readers only."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from snapkeep.errors import NotFound, SnapshotMountsFull
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import Snapshot, Volume
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from tests.integration.test_volume_capture import loop_devices_of, mounts_under

pytestmark = pytest.mark.parametrize("fs", ["xfs"], indirect=True)  # only image volumes are mounted


def _snapshot(services: Services, name: str) -> tuple[Volume, Snapshot]:
    vol = services.volumes.create(name, 1 << 30, who=SYSTEM)
    Path(vol.path, "doc.txt").write_text(name)
    return vol, services.snapshots.take(TakeRequest(ref=vol.id, name="s1"), who=SYSTEM)


def _browsing(services: Services) -> list[str]:
    return mounts_under(os.path.join(services.pool.root, "staging"))


def _snapshot_loops(services: Services) -> list[str]:
    live = os.path.join(services.pool.root, "datasets", "")
    return [path for path in loop_devices_of(services.pool.root) if not path.startswith(live)]


def test_readers_coming_and_going_at_once_share_one_mount_and_leave_none(services: Services) -> None:
    """Readers come and go at random, so the last one out is often unmounting as the next one comes: that
    one waits and mounts again, never a second mount of the image, never refused for it (limit 1)."""
    vol, snap = _snapshot(services, "shared")
    seen: list[int] = []
    problems: list[BaseException] = []
    start = threading.Barrier(6)

    def read() -> None:
        try:
            start.wait()
            for _ in range(12):
                with services.pool.snapshot_tree(snap.id, vol.dataset, limit=1) as root:
                    assert Path(root, "doc.txt").read_text() == "shared"
                    seen.append(len(_browsing(services)))
                threading.Event().wait(random.random() * 0.05)
        except BaseException as exc:
            problems.append(exc)

    readers = [threading.Thread(target=read) for _ in range(6)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert not problems, problems
    assert len(seen) == 72 and max(seen) == 1
    assert not _browsing(services) and not _snapshot_loops(services)
    assert services.pool.snapshot_mounts.count() == 0


def test_the_limit_refuses_only_a_new_mount_and_only_who_asks_for_it(services: Services) -> None:
    a_vol, a_snap = _snapshot(services, "limit-a")
    b_vol, b_snap = _snapshot(services, "limit-b")
    with services.pool.snapshot_tree(a_snap.id, a_vol.dataset, limit=1):
        with pytest.raises(SnapshotMountsFull), services.pool.snapshot_tree(b_snap.id, b_vol.dataset, limit=1):
            pass
        assert len(_browsing(services)) == 1  # the refusal mounted nothing
        with services.pool.snapshot_tree(a_snap.id, a_vol.dataset, limit=1) as root:  # mounted already: shared
            assert Path(root, "doc.txt").read_text() == "limit-a"
        with services.pool.snapshot_tree(b_snap.id, b_vol.dataset) as root:  # no limit asked: mounted
            assert Path(root, "doc.txt").read_text() == "limit-b"
    assert not _browsing(services) and not _snapshot_loops(services)


def test_a_snapshot_deleted_while_read_stays_readable_to_its_readers_only(services: Services) -> None:
    vol, snap = _snapshot(services, "deleted")
    with services.pool.snapshot_tree(snap.id, vol.dataset) as root:
        services.snapshots.delete(snap.id, who=SYSTEM)  # a reader does not hold a snapshot: deleted
        assert Path(root, "doc.txt").read_text() == "deleted"
        with pytest.raises(NotFound), services.pool.snapshot_tree(snap.id, vol.dataset):
            pass
    assert not _browsing(services) and not _snapshot_loops(services)  # its image went with the last reader
