"""Volume snapshots through the service layer, on both drivers: every rule of SPEC §2-3 for volumes."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from snapkeep.errors import (
    Forbidden,
    InvalidExpiry,
    InvalidInput,
    InvalidName,
    InvalidPath,
    NameClash,
    NotFound,
    SnapshotLocked,
)
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.profile import Frequency, Period, SubjectOfProfile
from snapkeep.model.timespec import parse_expiry
from snapkeep.model.types import RestoreMode, SnapshotStatus
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from tests.conftest import TestClock, volume_restored_as_new
from tests.treeutil import make_rich_tree, tree_signature


def write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_take_restore_over_source_undo_and_as_new(services: Services) -> None:
    vol = services.volumes.create("docs", 1 << 30, "team documents", who=SYSTEM)
    make_rich_tree(vol.path)
    expected = tree_signature(vol.path)
    snap = services.snapshots.take(TakeRequest(ref="docs", name="before-upgrade"), who=SYSTEM)
    assert snap.status is SnapshotStatus.READY and not snap.quiesced
    manifest = services.snapshots.manifest(snap.id)
    assert manifest.objects[0].name == "docs" and manifest.snapshot.name == "before-upgrade"

    write(os.path.join(vol.path, "dir", "a.txt"), "ruined by the upgrade")
    after_change = tree_signature(vol.path)
    result = services.restores.over_source(snap.id, RestoreOptions(), SYSTEM)
    assert tree_signature(vol.path) == expected

    safety_id = result["pre_restore_snapshot_id"]
    assert safety_id is not None
    safety = services.snapshots.get(safety_id, who=SYSTEM)
    assert safety.name.startswith("pre-restore_") and safety.expires_at is not None
    services.restores.over_source(safety_id, RestoreOptions(pre_restore=False), SYSTEM)
    assert tree_signature(vol.path) == after_change

    copy = volume_restored_as_new(services, snap.id)
    assert copy.name == "docs_restored"
    assert tree_signature(copy.path) == expected
    with pytest.raises(NameClash):
        volume_restored_as_new(services, snap.id)


def test_restore_data_and_settings(services: Services) -> None:
    vol = services.volumes.create("settings-vol", 1 << 30, "old description", who=SYSTEM)
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    services.volumes.update(vol.id, description="new description", size_limit=2 << 30, who=SYSTEM)
    services.restores.over_source(snap.id, RestoreOptions(mode=RestoreMode.DATA, pre_restore=False), SYSTEM)
    assert services.volumes.get(vol.id, who=SYSTEM).description == "new description"
    services.restores.over_source(
        snap.id, RestoreOptions(mode=RestoreMode.DATA_AND_SETTINGS, pre_restore=False), SYSTEM
    )
    restored = services.volumes.get(vol.id, who=SYSTEM)
    assert (restored.description, restored.size_limit) == ("old description", 1 << 30)


@pytest.mark.parametrize("bad", ["a/b", "..", "a..b", "x\x00y", "n" * 300, " lead"])
def test_bad_snapshot_names_are_refused_and_change_nothing(services: Services, bad: str) -> None:
    vol = services.volumes.create(f"names-{abs(hash(bad))}", 1 << 30, who=SYSTEM)
    with pytest.raises(InvalidName):
        services.snapshots.take(TakeRequest(ref=vol.id, name=bad), who=SYSTEM)
    with pytest.raises(InvalidName):
        services.volumes.create(bad, 1 << 30, who=SYSTEM)
    assert services.snapshots.listing(vol.id, who=SYSTEM) == []
    assert services.pool.list_staging() == []


def test_a_take_without_a_name_is_named_after_its_time(services: Services) -> None:
    vol = services.volumes.create("unnamed", 1 << 30, who=SYSTEM)
    with pytest.raises(InvalidName):
        services.volumes.create("", 1 << 30, who=SYSTEM)
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name=""), who=SYSTEM)
    named_at = datetime.strptime(snap.name, "manual_%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    assert abs((snap.created_at - named_at).total_seconds()) < 2


def test_unnamed_takes_in_one_second_get_the_first_free_number_among_their_subjects_names(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services.snapshots, "_clock", lambda: datetime(2026, 12, 3, 9, 5, 7, tzinfo=UTC))
    vol, other = (services.volumes.create(name, 1 << 30, who=SYSTEM) for name in ("numbered", "other"))
    services.snapshots.take(TakeRequest(ref=other.id, name=""), who=SYSTEM)  # another subject's name is free
    names = [services.snapshots.take(TakeRequest(ref=vol.id, name=""), who=SYSTEM).name for _ in range(2)]
    services.snapshots.take(TakeRequest(ref=vol.id, name="manual_20261203_090507_3"), who=SYSTEM)
    names.append(services.snapshots.take(TakeRequest(ref=vol.id, name=""), who=SYSTEM).name)
    assert names == ["manual_20261203_090507", "manual_20261203_090507_2", "manual_20261203_090507_4"]


def test_clashing_names_are_refused(services: Services) -> None:
    vol = services.volumes.create("clash", 1 << 30, who=SYSTEM)
    first = services.snapshots.take(TakeRequest(ref=vol.id, name="daily"), who=SYSTEM)
    with pytest.raises(NameClash):
        services.snapshots.take(TakeRequest(ref=vol.id, name="daily"), who=SYSTEM)
    with pytest.raises(NameClash):
        services.volumes.create("clash", 1 << 30, who=SYSTEM)
    assert [s.id for s in services.snapshots.listing(vol.id, who=SYSTEM)] == [first.id]


def test_expiry_in_the_past_is_refused(services: Services) -> None:
    from snapkeep.model.timespec import utcnow

    with pytest.raises(InvalidExpiry, match="in the past"):
        parse_expiry("2001-01-01T00:00:00", utcnow())
    vol = services.volumes.create("past", 1 << 30, who=SYSTEM)
    with pytest.raises(InvalidExpiry, match="in the past"):
        services.snapshots.take(
            TakeRequest(ref=vol.id, name="s", expires_at=utcnow() - timedelta(seconds=1)), who=SYSTEM
        )
    assert services.snapshots.listing(vol.id, who=SYSTEM) == []
    assert parse_expiry("never", utcnow()) is None
    assert parse_expiry("7d", utcnow()) is not None


def test_immutable_snapshot_refuses_deletion_until_cooled_off(services: Services, clock: TestClock) -> None:
    vol = services.volumes.create("locked", 1 << 30, who=SYSTEM)
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="audit", immutable=True), who=SYSTEM)
    mallory = Principal("mallory", Role.OPERATOR, None)
    with pytest.raises(SnapshotLocked):
        services.snapshots.delete(snap.id, who=mallory)
    with pytest.raises(SnapshotLocked):
        services.volumes.delete(vol.id, services.snapshots, who=mallory)
    assert services.snapshots.get(snap.id, who=SYSTEM).status is SnapshotStatus.READY
    assert services.volumes.get(vol.id, who=SYSTEM).id == vol.id
    refused = [e for e in services.audit.entries(who=SYSTEM) if e.outcome == "refused" and e.actor == "mallory"]
    assert len(refused) == 2

    unlocked = services.snapshots.unlock(snap.id, who=SYSTEM)
    assert services.snapshots.deletable_at(unlocked) == unlocked.unlocked_at + timedelta(days=7)  # type: ignore[operator]
    with pytest.raises(SnapshotLocked):
        services.snapshots.delete(snap.id, who=SYSTEM)
    clock.advance(timedelta(days=6))  # a day of margin either side: real time moves on while the test runs
    with pytest.raises(SnapshotLocked):
        services.snapshots.delete(snap.id, who=SYSTEM)
    clock.advance(timedelta(days=2))
    services.snapshots.delete(snap.id, who=SYSTEM)
    with pytest.raises(NotFound):
        services.snapshots.get(snap.id, who=SYSTEM)


def test_expiry_sweep_deletes_only_expired(services: Services, clock: TestClock) -> None:
    vol = services.volumes.create("sweep", 1 << 30, who=SYSTEM)
    now = services.clock()
    soon = services.snapshots.take(
        TakeRequest(ref=vol.id, name="soon", expires_at=now + timedelta(hours=1)), who=SYSTEM
    )
    keep = services.snapshots.take(TakeRequest(ref=vol.id, name="keep"), who=SYSTEM)
    locked = services.snapshots.take(
        TakeRequest(ref=vol.id, name="locked-expiring", expires_at=now + timedelta(hours=2), immutable=True), who=SYSTEM
    )
    assert services.snapshots.sweep_expired(who=SYSTEM) == []
    clock.advance(timedelta(minutes=90))
    assert services.snapshots.sweep_expired(who=SYSTEM) == [soon.id]
    clock.advance(timedelta(minutes=90))
    assert services.snapshots.sweep_expired(who=SYSTEM) == [locked.id]
    assert [s.id for s in services.snapshots.listing(vol.id, who=SYSTEM)] == [keep.id]
    assert soon.id not in services.pool.list_snapshots()


def test_delete_volume_deletes_its_snapshots(services: Services) -> None:
    vol = services.volumes.create("gone", 1 << 30, who=SYSTEM)
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    services.volumes.delete(vol.id, services.snapshots, who=SYSTEM)
    assert snap.id not in services.pool.list_snapshots()
    assert vol.dataset not in services.pool.list_datasets()
    with pytest.raises(NotFound):
        services.snapshots.get(snap.id, who=SYSTEM)


def test_browse_and_extract_files(services: Services) -> None:
    vol = services.volumes.create("files", 1 << 30, who=SYSTEM)
    make_rich_tree(vol.path)

    # extracting "dir" alone splits its hard link with big.bin outside it: compare all but link identity
    def signature(root: str) -> dict[str, tuple[object, ...]]:
        return {rel: entry[:-1] for rel, entry in tree_signature(root).items()}

    expected = signature(os.path.join(vol.path, "dir"))
    del expected["fifo"]  # special files are listed, never extracted: skipped and counted
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    names = {e.name: e for e in services.files.browse(snap.id, who=SYSTEM)}
    assert names["dir"].type == "dir" and names["link-out"].type == "symlink"
    assert [e.name for e in services.files.browse(snap.id, "dir/a.txt", who=SYSTEM)] == ["a.txt"]

    write(os.path.join(vol.path, "dir", "a.txt"), "lost")
    assert services.files.extract(snap.id, "dir", who=SYSTEM)["skipped_special"] == 1
    assert signature(os.path.join(vol.path, "dir")) == expected

    other = services.volumes.create("files-other", 1 << 30, who=SYSTEM)
    services.files.extract(snap.id, "dir/a.txt", to_volume=other.id, to_path="copy.txt", who=SYSTEM)
    assert read(os.path.join(other.path, "copy.txt")) == "hello snapshot\n"


@pytest.mark.parametrize(
    ("path", "to_path"),
    [
        ("../etc/passwd", None),
        ("/etc/passwd", None),
        ("link-out", "x/../../y"),
        ("dir/a.txt", "/tmp/escape"),
        ("link-in/../big.bin", None),
    ],
)
def test_file_restore_paths_that_escape_are_refused(services: Services, path: str, to_path: str | None) -> None:
    vol = services.volumes.create(f"escape-{abs(hash((path, to_path)))}", 1 << 30, who=SYSTEM)
    make_rich_tree(vol.path)
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    before = tree_signature(vol.path)
    with pytest.raises(InvalidPath):
        services.files.extract(snap.id, path, to_path=to_path, who=SYSTEM)
    assert tree_signature(vol.path) == before


def test_symlinked_directories_are_not_followed(services: Services) -> None:
    vol = services.volumes.create("symlinks", 1 << 30, who=SYSTEM)
    os.symlink("/etc", os.path.join(vol.path, "etc-link"))
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    with pytest.raises(InvalidPath, match="symlink"):
        services.files.browse(snap.id, "etc-link/passwd", who=SYSTEM)
    with pytest.raises(InvalidPath, match="symlink"):
        services.files.extract(snap.id, "etc-link/passwd", who=SYSTEM)
    os.makedirs(os.path.join(vol.path, "real"))
    with pytest.raises(InvalidPath, match="symlink"):
        services.files.extract(snap.id, "etc-link", to_path="etc-link/hostname", who=SYSTEM)


def test_snapshot_being_taken_cannot_be_deleted(services: Services) -> None:
    from snapkeep.errors import SnapshotNotReady

    vol = services.volumes.create("creating", 1 << 30, who=SYSTEM)
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    with services.db.unit() as uow:
        uow.snapshots.update(snap.id, status=SnapshotStatus.CREATING)
    with pytest.raises(SnapshotNotReady):
        services.snapshots.delete(snap.id, who=SYSTEM)
    assert snap.id in services.pool.list_snapshots()


def test_restore_that_fails_leaves_nothing_in_staging(services: Services) -> None:
    """The copy is built, then the swap fails (the live dataset was moved away behind snapkeep's back)."""
    from snapkeep.errors import PoolError

    vol = services.volumes.create("restore-fails", 1 << 30, who=SYSTEM)
    snap = services.snapshots.take(TakeRequest(ref=vol.id, name="s"), who=SYSTEM)
    live = vol.path + ".xfs" if services.pool.is_image_volume(vol.dataset) else vol.path  # XFS: its image
    os.rename(live, live + "-moved-away")
    try:
        with pytest.raises(PoolError):
            services.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)
        assert services.pool.list_staging() == []
    finally:
        os.rename(live + "-moved-away", live)


def test_a_restore_refused_by_its_rules_changes_nothing(services: Services) -> None:
    """The restore service holds the rules for every caller (API, CLI, scheduler alike): a viewer, an option
    that means nothing for a volume and a clashing new name are refused before any job, safety snapshot or
    change."""
    vol = services.volumes.create("rules", 1 << 30, who=SYSTEM)
    write(os.path.join(vol.path, "f.txt"), "before")
    snap = services.snapshots.take(TakeRequest(ref="rules", name="s"), who=SYSTEM)
    write(os.path.join(vol.path, "f.txt"), "after")
    state, jobs_before = tree_signature(vol.path), services.jobs.list(SYSTEM, 1000)
    viewer = Principal("viewer", Role.VIEWER, None)
    for refused in (
        lambda: services.restores.submit(snap.id, RestoreOptions(), viewer),
        lambda: services.restores.over_source(snap.id, RestoreOptions(), viewer),
        lambda: services.restores.as_new(snap.id, RestoreOptions(as_new=True), viewer),
    ):
        with pytest.raises(Forbidden):
            refused()
    with pytest.raises(InvalidInput, match="VM snapshots only"):
        services.restores.submit(snap.id, RestoreOptions(power_off=True), SYSTEM)
    with pytest.raises(NameClash):
        services.restores.submit(snap.id, RestoreOptions(as_new=True, name="rules"), SYSTEM)
    assert tree_signature(vol.path) == state
    assert [s.name for s in services.snapshots.listing("rules", who=SYSTEM)] == ["s"]  # no pre-restore snapshot
    assert services.jobs.list(SYSTEM, 1000) == jobs_before
    assert [v.name for v in services.volumes.list(who=SYSTEM)] == ["rules"]


def profile_of(services: Services, kind: SubjectOfProfile, subject_id: str) -> str | None:
    """The name of the profile assigned to the subject, if any."""
    names = {p.id: p.name for p in services.profiles.listing(SYSTEM)}
    found = [a for a in services.profiles.assignments(SYSTEM) if (a.subject_type, a.subject_id) == (kind, subject_id)]
    return names[found[0].profile_id] if found else None


def test_a_volumes_snapshot_profile_comes_back_with_its_settings(services: Services) -> None:
    """SPEC §1: the profile is part of the configuration a snapshot records; a restore of data only leaves
    the current one, a restore of data and settings puts back the recorded one (or none)."""
    gold, bronze = "gold", "bronze"
    for name in (gold, bronze):
        services.profiles.create(name, SYSTEM, periods=(Period(name="nightly", frequency=Frequency.DAILY, hour=2),))
    vol = services.volumes.create("scheduled", 1 << 30, who=SYSTEM)
    services.profiles.assign(gold, SubjectOfProfile.VOLUME, vol.id, SYSTEM)
    with_gold = services.snapshots.take(TakeRequest(ref=vol.id, name="gold"), who=SYSTEM)
    services.profiles.unassign(SubjectOfProfile.VOLUME, vol.id, SYSTEM)
    with_none = services.snapshots.take(TakeRequest(ref=vol.id, name="none"), who=SYSTEM)
    services.profiles.assign(bronze, SubjectOfProfile.VOLUME, vol.id, SYSTEM)

    data_only = RestoreOptions(mode=RestoreMode.DATA, pre_restore=False)
    services.restores.over_source(with_gold.id, data_only, SYSTEM)
    assert profile_of(services, SubjectOfProfile.VOLUME, vol.id) == bronze
    settings_too = RestoreOptions(mode=RestoreMode.DATA_AND_SETTINGS, pre_restore=False)
    services.restores.over_source(with_gold.id, settings_too, SYSTEM)
    assert profile_of(services, SubjectOfProfile.VOLUME, vol.id) == gold
    services.restores.over_source(with_none.id, settings_too, SYSTEM)
    assert profile_of(services, SubjectOfProfile.VOLUME, vol.id) is None
