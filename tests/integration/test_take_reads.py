"""A take reads its subject before it can claim the subject's guards (it needs the members to claim them),
and skips reading it again under the claim when the catalog has not changed in between. These tests change
the catalog in that gap, as a concurrent request would: what the take captures, or refuses, must be the
subject as it is once held. Real pool and services, no guests; the rule does not depend on the driver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Table, event
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.util import find_tables

from snapkeep.errors import NotFound
from snapkeep.model.principal import SYSTEM, Role
from snapkeep.model.profile import SubjectOfProfile
from snapkeep.model.tags import TagKind
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import Subject
from snapkeep.services.subjects.profile_back import PROFILE

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


def objects_of(svc: Services, snap_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(obj.type, obj.name): obj.config for obj in svc.snapshots.manifest(snap_id).objects}


def test_a_system_take_reads_the_system_again_after_any_change_and_only_then(services: Services) -> None:
    """A system take keeps the estate it read last (most of a small take's catalog time) while none of the
    tables it reads from has changed: after each kind of change the next take records it; with no change
    between two takes (a snapshot deleted in between is none) the second reads none of those tables."""
    svc = services
    svc.volumes.create("v1", 8 * MiB, who=SYSTEM)
    taken = iter(range(100))

    def take() -> dict[tuple[str, str], dict[str, Any]]:
        snap = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name=f"s{next(taken)}"), who=SYSTEM)
        return objects_of(svc, snap.id)

    take()
    changes: list[tuple[Callable[[], object], Callable[[dict[tuple[str, str], dict[str, Any]]], bool]]] = [
        (lambda: svc.volumes.create("v2", 8 * MiB, who=SYSTEM), lambda seen: ("volume", "v2") in seen),
        (
            lambda: svc.tags.add(SYSTEM, TagKind.VOLUME, "v1", "prod"),
            lambda seen: seen["volume", "v1"]["tags"] == ["prod"],
        ),
        (lambda: svc.networks.create(SYSTEM, "lan", "10.77.0.0/24"), lambda seen: ("network", "lan") in seen),
        (
            lambda: svc.settings_docs.patch(SYSTEM, {"motd": "hello"}),
            lambda seen: seen["settings", "settings"]["document"].get("motd") == "hello",
        ),
        (
            lambda: svc.users.create(SYSTEM, "ann", "a long password 1", Role.VIEWER),
            lambda seen: ("user", "ann") in seen,
        ),
        (lambda: svc.tenants.create(SYSTEM, "acme"), lambda seen: ("tenant", "acme") in seen),
        (lambda: svc.profiles.create("nightly", SYSTEM), lambda seen: ("profile", "nightly") in seen),
        (
            lambda: svc.profiles.assign("nightly", SubjectOfProfile.VOLUME, "v1", SYSTEM),
            lambda seen: seen["volume", "v1"][PROFILE] is not None,
        ),
        (lambda: svc.tenants.delete(SYSTEM, "acme"), lambda seen: ("tenant", "acme") not in seen),
    ]
    for index, (change, recorded) in enumerate(changes):
        change()
        assert recorded(take()), f"change {index} is not in the next take's manifest"

    read: set[str] = set()

    def record(state: ORMExecuteState) -> None:
        found = find_tables(state.statement, check_columns=True, include_selects=True)
        read.update(table.name for table in found if isinstance(table, Table))

    unchanged = take()
    svc.snapshots.delete(svc.snapshots.listing(None, who=SYSTEM)[-1].id, who=SYSTEM)
    event.listen(Session, "do_orm_execute", record)
    try:
        assert take() == unchanged
    finally:
        event.remove(Session, "do_orm_execute", record)
    assert not read & {"vms", "volumes", "networks", "users", "profiles", "tags"}, read  # the estate kept
