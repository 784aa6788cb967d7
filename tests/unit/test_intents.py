"""The intent-file protocol: what a hold records before it holds, what a failed release leaves pending,
and what recovery releases (a fake pool with a fault switch stands in for a thaw that fails once; the
real freezes and thaws are tested in tests/integration/test_volume_capture.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

import pytest

from snapkeep.engine.holds import VolumeFrozen
from snapkeep.engine.intents import IntentKind, Intents
from snapkeep.engine.recovery import release_recorded
from snapkeep.errors import PoolError
from snapkeep.hypervisor import Hypervisor
from snapkeep.storage.pool import Pool


class FlakyPool:
    """Freezes and thaws in memory; ``fail_thaws`` makes that many thaws fail (as a busy device might)."""

    expedite_freeze = False

    def __init__(self) -> None:
        self.frozen: set[str] = set()
        self.fail_thaws = 0

    def flush(self, datasets: list[str]) -> None:
        pass

    def freeze(self, datasets: list[str]) -> None:
        self.frozen.update(datasets)

    def thaw(self, datasets: list[str]) -> None:
        for dataset in datasets:
            self.thaw_one(dataset)

    def thaw_one(self, dataset: str) -> int:
        if self.fail_thaws:
            self.fail_thaws -= 1
            raise PoolError(f"thawing volume {dataset}: device busy")
        was = dataset in self.frozen
        self.frozen.discard(dataset)
        return int(was)


def test_make_list_update_and_release(tmp_path: Path) -> None:
    intents = Intents(str(tmp_path / "run"))
    extract = intents.make(IntentKind.EXTRACT, "op1", {"op": "op1"})
    frozen = intents.make(IntentKind.VOLUME_FROZEN, "snap-1", {"datasets": ["a"]})
    intents.update(frozen, {"datasets": ["a", "b"]})
    assert sorted(os.listdir(tmp_path / "run")) == ["extract-op1.json", "volume-freeze-snap-1.json"]
    assert intents.listing(IntentKind.VOLUME_FROZEN) == [frozen]
    assert frozen.read() == {"datasets": ["a", "b"]}
    intents.release(frozen)
    intents.release(frozen)  # already gone: fine
    assert intents.listing(IntentKind.VOLUME_FROZEN, IntentKind.EXTRACT) == [extract]


def test_pending_intents_are_listed_apart_and_keep_their_record(tmp_path: Path) -> None:
    intents = Intents(str(tmp_path))
    live = intents.make(IntentKind.GUEST_FROZEN, "snap-live", {"domain": "web"})
    failed = intents.mark_pending(intents.make(IntentKind.GUEST_FROZEN, "snap-old", {"domain": "db"}))
    assert failed.pending and os.path.basename(failed.path) == "pending-guest-freeze-snap-old.json"
    assert intents.listing(IntentKind.GUEST_FROZEN, pending_only=True) == [failed]
    assert set(intents.listing(IntentKind.GUEST_FROZEN)) == {live, failed}
    assert failed.read() == {"domain": "db"}


def test_files_that_are_not_intents_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "volume-freeze-x.json.tmp").write_text("{")  # a write_durably cut short
    (tmp_path / "notes.txt").write_text("")
    assert Intents(str(tmp_path)).listing(*IntentKind) == []


def test_pending_guest_intents_of_earlier_builds_are_adopted(tmp_path: Path) -> None:
    (tmp_path / "guest-pending-pause-s1.json").write_text('{"domain": "web"}')
    pending = Intents(str(tmp_path)).listing(IntentKind.GUEST_PAUSED, pending_only=True)
    assert [(i.op_id, i.read()) for i in pending] == [("s1", {"domain": "web"})]


def test_a_thaw_that_fails_is_left_pending_and_the_retry_thaws(tmp_path: Path) -> None:
    intents, pool = Intents(str(tmp_path)), FlakyPool()
    hold = VolumeFrozen(cast(Pool, pool), ["vol-a"], intents, "snap-1", quiesce=False)
    hold.acquire()
    assert pool.frozen == {"vol-a"} and [i.op_id for i in intents.listing(IntentKind.VOLUME_FROZEN)] == ["snap-1"]
    pool.fail_thaws = 1
    with pytest.raises(PoolError):
        hold.release()
    assert pool.frozen == {"vol-a"}
    assert [i.pending for i in intents.listing(IntentKind.VOLUME_FROZEN)] == [True]

    host = cast(Hypervisor, object())  # no guest intents: the host is never asked
    done = release_recorded(intents, cast(Pool, pool), host, pending_only=True)
    assert done.volumes_thawed == 1 and pool.frozen == set()
    assert os.listdir(tmp_path) == []


def test_the_retry_of_pending_releases_leaves_captures_in_progress_alone(tmp_path: Path) -> None:
    intents, pool = Intents(str(tmp_path)), FlakyPool()
    VolumeFrozen(cast(Pool, pool), ["vol-b"], intents, "snap-2", quiesce=True).acquire()  # a capture running
    host = cast(Hypervisor, object())
    assert release_recorded(intents, cast(Pool, pool), host, pending_only=True).volumes_thawed == 0
    assert pool.frozen == {"vol-b"}
    done = release_recorded(intents, cast(Pool, pool), host)  # start-up: nothing runs, all goes
    assert done.volumes_thawed == 1 and pool.frozen == set() and os.listdir(tmp_path) == []


def test_a_freeze_that_fails_leaves_no_intent(tmp_path: Path) -> None:
    intents, pool = Intents(str(tmp_path)), FlakyPool()

    def refuse(datasets: list[str]) -> None:
        raise PoolError("freezing: read-only filesystem")

    pool.freeze = refuse  # type: ignore[method-assign]
    with pytest.raises(PoolError):
        VolumeFrozen(cast(Pool, pool), ["vol-c"], intents, "snap-3", quiesce=False).acquire()
    assert os.listdir(tmp_path) == []
