"""The guard table (services/guards.py): conflicts, sharing, nesting, all-or-nothing claims without
deadlock, and a job that gives its guards back however it ends."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.errors import Busy, NotFound, PoolFull
from snapkeep.model.principal import SYSTEM
from snapkeep.model.types import JobStatus
from snapkeep.services.guards import Guards, Need, exclusive, shared
from snapkeep.services.jobs import JobRunner, Progress

T0 = datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)


def test_an_exclusive_claim_refuses_the_next_and_names_the_holder() -> None:
    guards = Guards(lambda: T0)
    claim = guards.claim("snapshot.take", [exclusive("volume", "v1", "docs")])
    claim.hand_over("job-1")
    with pytest.raises(Busy) as refused:
        guards.claim("snapshot.restore", [shared("snapshot", "s1"), exclusive("volume", "v1", "docs")])
    assert refused.value.details == {
        "subject": "volume:v1",
        "operation": "snapshot.take",
        "job": "job-1",
        "since": T0.isoformat(),
    }
    assert "volume docs is busy: snapshot.take (job job-1) since" in refused.value.message
    assert guards.held() == [("volume:v1", "snapshot.take", T0.isoformat())], "a refused claim holds nothing"
    guards.claim("snapshot.take", [exclusive("volume", "v2")]).release()  # other subjects stay free
    claim.release()
    claim.release()  # idempotent
    guards.claim("snapshot.restore", [exclusive("volume", "v1")]).release()
    assert guards.held() == []


def test_readers_share_a_snapshot_and_keep_a_delete_out() -> None:
    guards = Guards(lambda: T0)
    first = guards.claim("snapshot.restore_as_new", [shared("snapshot", "s1")])
    second = guards.claim("snapshot.extract", [shared("snapshot", "s1"), exclusive("volume", "v1")])
    with pytest.raises(Busy):
        guards.claim("snapshot.delete", [exclusive("snapshot", "s1")])
    first.release()
    with pytest.raises(Busy) as refused:
        guards.claim("snapshot.delete", [exclusive("snapshot", "s1")])
    assert refused.value.details["operation"] == "snapshot.extract"
    second.release()
    with guards.claim("snapshot.delete", [exclusive("snapshot", "s1")]):
        assert isinstance(claim_elsewhere(guards, [shared("snapshot", "s1")]), Busy)
    assert guards.held() == []


def test_a_claim_is_reentrant_inside_its_operation_only() -> None:
    guards = Guards(lambda: T0)
    with guards.claim("snapshot.restore", [shared("snapshot", "s1"), exclusive("volume", "v1")]):
        with guards.claim("snapshot.take", [exclusive("volume", "v1")]):  # the pre-restore take
            with guards.claim("snapshot.take", [shared("volume", "v1")]):  # covered through its parent
                pass
            assert len(guards.held()) == 2
        with guards.claim("snapshot.delete", [exclusive("snapshot", "s2")]):  # something more: claimed
            assert ("snapshot:s2", "snapshot.delete", T0.isoformat()) in guards.held()
        with pytest.raises(Busy):  # a shared hold does not cover an exclusive need
            guards.claim("snapshot.delete", [exclusive("snapshot", "s1")])
        assert isinstance(claim_elsewhere(guards, [shared("volume", "v1")]), Busy), "another thread, another operation"
    assert guards.held() == []


def claim_elsewhere(guards: Guards, needs: list[Need]) -> Busy | None:
    """Claim (and release) in another thread, as another operation would: the refusal, if any."""
    refusals: list[Busy] = []

    def run() -> None:
        try:
            guards.claim("elsewhere", needs).release()
        except Busy as exc:
            refusals.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return refusals[0] if refusals else None


def test_overlapping_multi_claims_that_wait_never_deadlock_and_never_overlap() -> None:
    """Three operations each claiming two of three subjects, listed in different orders, waiting for each
    other: all-or-nothing acquisition means none holds one while waiting for another."""
    guards = Guards(lambda: T0)
    subjects = [exclusive("vm", name) for name in ("a", "b", "c")]
    holding: Counter[str] = Counter()
    overlaps: list[str] = []
    lock = threading.Lock()
    rounds = 300

    def run(first: int, second: int) -> None:
        for _ in range(rounds):
            with guards.claim("system.snapshot", [subjects[first], subjects[second]], wait=30):
                with lock:
                    for i in (first, second):
                        holding[subjects[i].id] += 1
                        if holding[subjects[i].id] > 1:
                            overlaps.append(subjects[i].id)
                with lock:
                    for i in (first, second):
                        holding[subjects[i].id] -= 1

    threads = [threading.Thread(target=run, args=pair) for pair in ((0, 1), (2, 1), (1, 2), (2, 0), (0, 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "deadlock"
    assert overlaps == []
    assert guards.held() == []


def test_a_bounded_wait_gets_the_guard_when_it_is_given_back_or_gives_up_with_busy() -> None:
    guards = Guards(lambda: T0)
    held = guards.claim("vm.start", [exclusive("vm", "a")])  # held, not entered: another operation's
    with pytest.raises(Busy):
        guards.claim("vm.stop", [exclusive("vm", "a")], wait=0.05)
    threading.Timer(0.05, held.release).start()
    guards.claim("vm.stop", [exclusive("vm", "a")], wait=30).release()
    assert guards.held() == []


@pytest.mark.parametrize("outcome", ["succeeds", "fails", "crashes"])
def test_a_job_holds_the_claim_of_its_request_until_it_ends(tmp_path: Path, outcome: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    runner = JobRunner(Database(engine), lambda: T0, workers=2)
    guards = Guards(lambda: T0)
    inside, finish = threading.Event(), threading.Event()
    seen: list[list[tuple[str, str, str]]] = []

    def work(_progress: Progress) -> dict[str, object]:
        inside.set()
        finish.wait(10)
        with guards.claim("snapshot.take", [exclusive("volume", "v1")]):  # nested: granted, not refused
            seen.append(guards.held())
        if outcome == "fails":
            raise PoolFull("the pool is full")
        if outcome == "crashes":
            raise RuntimeError("unexpected")
        return {}

    try:
        with guards.claim("snapshot.restore", [exclusive("volume", "v1")]) as claim:
            job = runner.submit("snapshot.restore", {}, work, claim=claim)
        assert inside.wait(10)
        with pytest.raises(Busy) as refused:
            guards.claim("snapshot.take", [exclusive("volume", "v1")])
        assert refused.value.details["job"] == job.id, "the request's claim went to the job"
        finish.set()
        done = runner.wait(job.id, 10, SYSTEM)
        assert done.status is (JobStatus.SUCCEEDED if outcome == "succeeds" else JobStatus.FAILED)
        assert seen == [[("volume:v1", "snapshot.restore", T0.isoformat())]]
        assert guards.held() == []
    finally:
        finish.set()
        runner.shutdown()
        engine.dispose()


def test_a_request_refused_before_its_job_starts_gives_the_claim_back() -> None:
    guards = Guards(lambda: T0)
    with pytest.raises(PoolFull), guards.claim("snapshot.take", [exclusive("volume", "v1")]):
        raise PoolFull("checked inside the claim and refused")
    assert guards.held() == []


def test_a_claim_whose_check_fails_with_the_guards_held_gives_them_back() -> None:
    guards = Guards(lambda: T0)

    def gone() -> None:
        raise NotFound("volume 'docs' was deleted before the claim")

    with pytest.raises(NotFound):
        guards.claim("snapshot.take", [exclusive("volume", "v1")]).verified(gone)
    assert guards.held() == []
