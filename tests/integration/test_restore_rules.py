"""The rules of restores out of system and tenant snapshots that a hostile review found broken, one test
each: a restore never removes what existed but was left out of a partial snapshot, nor what was made
while it ran, nor is it replayed over later work after failing in its job; a tenant cannot undo its
parent's choices, sweep or copy where it has no say, always sees its own restore's job and is told the
truth without learning of its siblings; a member of a deleted tenant is refused up front. Real pools and
services, no guests.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from snapkeep.errors import SnapkeepError
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.selection import Selection
from snapkeep.model.tags import TagKind
from snapkeep.model.types import Snapshot, SubjectType
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from tests.conftest import TestClock

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # none of this depends on the driver

MiB = 1 << 20


def system_snapshot(svc: Services, name: str, who: Principal, ref: str = "system", private: bool = False) -> Snapshot:
    return svc.snapshots.take(TakeRequest(ref=ref, subject_type="system", name=name, private=private), who=who)


def operator_of(svc: Services, path: str) -> Principal:
    return Principal(f"{path}-op", Role.OPERATOR, svc.tenants.get(SYSTEM, path).tenant.id)


def seen(svc: Services, who: Principal) -> set[str]:
    return {s.name for s in svc.snapshots.listing(None, "system", who=who)}


def catalog(svc: Services) -> dict[str, Any]:
    with svc.db.unit() as uow:
        return {
            "tenants": sorted(t.id for t in uow.tenants.visible()),
            "volumes": sorted(v.id for v in uow.volumes.list()),
            "datasets": sorted(svc.pool.list_datasets()),
        }


def test_own_system_restore_cannot_undo_the_parents_expose_snapshots(services: Services) -> None:
    """acme takes its own system snapshot while its parent exposes snapshots to it; the parent then stops
    exposing them; acme restores its own snapshot in place and must still not see its parent's."""
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    acme = operator_of(svc, "acme")
    svc.volumes.create("data", 8 * MiB, tenant="acme", who=SYSTEM)
    system_snapshot(svc, "parents", SYSTEM)
    own = system_snapshot(svc, "own", acme)
    svc.settings_docs.patch(SYSTEM, {"expose_snapshots": False}, tenant="acme")
    assert "parents" not in seen(svc, acme)

    svc.restores.over_source(own.id, RestoreOptions(), acme)

    assert svc.settings_docs.get(SYSTEM, tenant="acme")["expose_snapshots"] is False
    assert "parents" not in seen(svc, acme)


def test_tenant_cannot_restore_itself_as_new_beside_itself(services: Services) -> None:
    """acme may read its own part of the system's exposed snapshot, but a copy of acme belongs beside it,
    under the system, outside acme's scope: refused up front, changing nothing."""
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    acme = operator_of(svc, "acme")
    svc.volumes.create("data", 8 * MiB, tenant="acme", who=SYSTEM)
    snap = system_snapshot(svc, "sys", SYSTEM)
    before = catalog(svc)
    options = RestoreOptions(as_new=True, member_type=SubjectType.TENANT, member="acme")
    try:
        job = svc.restores.submit(snap.id, options, acme)
    except SnapkeepError:
        pass
    else:
        svc.jobs.wait(job.id, 60, SYSTEM)
    assert [t.path for t in svc.tenants.tree(SYSTEM)] == ["acme"]
    assert catalog(svc) == before


def test_subtenant_restoring_itself_as_new_is_told_the_truth(services: Services) -> None:
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    svc.tenants.create(SYSTEM, "dev", parent="acme")
    own = system_snapshot(svc, "own", operator_of(svc, "acme"))  # exposed to dev by default
    options = RestoreOptions(as_new=True, member_type=SubjectType.TENANT, member="dev")
    with pytest.raises(SnapkeepError) as refused:
        svc.restores.submit(own.id, options, operator_of(svc, "dev"))
    assert "no longer exists" not in refused.value.message


def test_volume_of_a_deleted_tenant_as_new_is_refused_up_front(services: Services) -> None:
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    svc.volumes.create("data", 8 * MiB, tenant="acme", who=SYSTEM)
    snap = system_snapshot(svc, "sys", SYSTEM)
    svc.tenants.delete(SYSTEM, "acme", force=True)
    before = catalog(svc)
    options = RestoreOptions(as_new=True, member_type=SubjectType.VOLUME, member="data")
    with pytest.raises(SnapkeepError) as refused:
        svc.restores.submit(snap.id, options, SYSTEM)
    assert "acme" in refused.value.message  # names the tenant, not its id
    assert catalog(svc) == before


def test_whole_system_restore_removes_nothing_its_pre_restore_snapshot_lacks(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tenant creates a volume while the system's restore runs, just after its pre-restore snapshot (as a
    concurrent API request can: creating an object claims no guard the restore holds)."""
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    acme = operator_of(svc, "acme")
    snap = system_snapshot(svc, "sys", SYSTEM)
    take_pre_restore = svc.snapshots.take_pre_restore
    made: list[str] = []

    def and_meanwhile(*args: Any, **kwargs: Any) -> Snapshot:
        safety = take_pre_restore(*args, **kwargs)
        made.append(svc.volumes.create("late", 8 * MiB, tenant="acme", who=acme).id)
        return safety

    monkeypatch.setattr(svc.snapshots, "take_pre_restore", and_meanwhile)
    result = svc.restores.over_source(snap.id, RestoreOptions(), SYSTEM)

    safety = str(result["pre_restore_snapshot_id"])
    in_safety = {o.id for o in svc.snapshots.manifest(safety).objects}
    still_there = {v.id for v in svc.volumes.list(who=SYSTEM)}
    assert made[0] in still_there or made[0] in in_safety


def test_a_failed_restore_is_not_replayed_over_later_work_at_the_next_start(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restore fails (the pool refuses one step); the operator sees the failed job and carries on:
    makes a volume and writes to it. At the next start of the service that volume must still be there."""
    svc = services
    svc.volumes.create("kept", 8 * MiB, who=SYSTEM)
    snap = system_snapshot(svc, "sys", SYSTEM)
    svc.volumes.create("since", 8 * MiB, who=SYSTEM)  # created after the snapshot: the restore removes it

    def refused(*_args: Any, **_kwargs: Any) -> None:
        raise SnapkeepError("the pool refused the step (injected)")

    with monkeypatch.context() as patched:
        patched.setattr(svc.rebuild, "_volume_back", refused)
        with pytest.raises(SnapkeepError):
            svc.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)

    later = svc.volumes.create("made-after-the-failure", 8 * MiB, who=SYSTEM)
    with open(f"{later.path}/work", "w") as f:
        f.write("a day's work")

    svc.reconcile()  # what the next start of the service does, before it answers requests

    assert later.id in {v.id for v in svc.volumes.list(who=SYSTEM)}


def test_a_tenants_restore_of_itself_is_a_job_it_can_follow(services: Services) -> None:
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    acme = operator_of(svc, "acme")
    snap = system_snapshot(svc, "sys", SYSTEM)
    options = RestoreOptions(member_type=SubjectType.TENANT, member="acme", pre_restore=False)
    job = svc.restores.submit(snap.id, options, acme)
    svc.jobs.wait(job.id, 60, SYSTEM)
    assert svc.jobs.get(job.id, acme).id == job.id


def test_a_tenants_restore_of_itself_with_a_pre_restore_snapshot_is_refused_up_front(services: Services) -> None:
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    acme = operator_of(svc, "acme")
    snap = system_snapshot(svc, "sys", SYSTEM)
    options = RestoreOptions(member_type=SubjectType.TENANT, member="acme")
    try:
        job = svc.restores.submit(snap.id, options, acme)
    except SnapkeepError:
        return
    finished = svc.jobs.wait(job.id, 60, SYSTEM)
    assert finished.error is None, finished.error


def test_a_tenants_own_restore_does_not_reveal_a_sibling(services: Services) -> None:
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    acme = operator_of(svc, "acme")
    own = system_snapshot(svc, "own", acme)
    svc.tenants.update(acme, "acme", name="acme-old")
    svc.tenants.create(SYSTEM, "acme")  # a new sibling takes the old name
    try:  # better: the root's own row (its parent's) is left alone, so nothing clashes
        svc.restores.submit(own.id, RestoreOptions(), acme)
    except SnapkeepError as refused:
        assert "exists" not in refused.message, refused.message


def test_a_tenant_admins_sweep_leaves_its_parents_snapshots_alone(services: Services, clock: TestClock) -> None:
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    acme_admin = Principal("acme-admin", Role.ADMIN, svc.tenants.get(SYSTEM, "acme").tenant.id)
    soon = clock() + timedelta(hours=1)
    parents = svc.snapshots.take(
        TakeRequest(ref="system", subject_type="system", name="parents", private=False, expires_at=soon), who=SYSTEM
    )
    clock.advance(timedelta(hours=2))  # expired: the system's own sweep decides when it goes
    svc.snapshots.sweep_expired(acme_admin)
    assert svc.snapshots.get(parents.id, SYSTEM).id == parents.id


def test_partial_restore_keeps_what_existed_but_was_not_selected(services: Services) -> None:
    svc = services
    svc.volumes.create("prod-data", 8 * MiB, tags=["prod"], who=SYSTEM)
    other = svc.volumes.create("other", 8 * MiB, who=SYSTEM)
    request = TakeRequest(ref="system", subject_type="system", name="prod-only", selection=Selection(include=("prod",)))
    snap = svc.snapshots.take(request, who=SYSTEM)
    svc.tags.add(SYSTEM, TagKind.VOLUME, other.id, "prod")  # tagged after the snapshot, which did not take it

    svc.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)

    assert other.id in {v.id for v in svc.volumes.list(who=SYSTEM)}
