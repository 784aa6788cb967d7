"""SPEC §1: a tenant has its own users and profiles, and a system snapshot captures the configuration of every
object. A tenant deleted since comes back from a system snapshot with its users (who log in with their
passwords as before) and its profiles (periods and assignments, so its schedules run again); a tenant that
still exists keeps the users and profiles it has now; a user whose name was taken since is left out and
named in the audit log. Real pools and services, no guests.
"""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from snapkeep.api.schemas import ContentsPublic
from snapkeep.model.paging import Window
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.profile import Frequency, Period, Profile, SubjectOfProfile
from snapkeep.model.types import Snapshot
from snapkeep.services.container import Services
from snapkeep.services.contents import read_contents
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage.pool import MANIFEST

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # catalog work: the driver plays no part

MiB = 1 << 20
PASSWORD = "correct horse battery staple"


def system_snapshot(svc: Services, name: str) -> Snapshot:
    return svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name=name), who=SYSTEM)


def restore_whole(svc: Services, snap: Snapshot) -> None:
    svc.restores.over_source(snap.id, RestoreOptions(pre_restore=False), SYSTEM)


def assigned(svc: Services, kind: SubjectOfProfile, subject_id: str) -> str | None:
    found = [a for a in svc.profiles.assignments(SYSTEM) if (a.subject_type, a.subject_id) == (kind, subject_id)]
    return found[0].profile_id if found else None


def scheduled(svc: Services, profile: Profile, subject_id: str) -> set[str]:
    """The periods of ``profile`` the scheduler runs on the subject."""
    with svc.db.unit() as uow:
        return {p.id for p in profile.periods for e in uow.schedule.of_period(p.id) if e.subject_id == subject_id}


def make_acme(svc: Services) -> tuple[str, str, Profile]:
    """acme with a sub-tenant dev, a user in each, a volume, and acme's own profile assigned to the volume,
    to acme's own system snapshots and to dev's; returns (acme's id, dev's id, the profile)."""
    acme = svc.tenants.create(SYSTEM, "acme").tenant.id
    dev = svc.tenants.create(SYSTEM, "dev", parent="acme").tenant.id
    svc.users.create(SYSTEM, "alice", PASSWORD, Role.ADMIN, tenant="acme")
    svc.users.create(SYSTEM, "dave", PASSWORD, Role.VIEWER, tenant=dev)
    nightly = Period(name="nightly", frequency=Frequency.DAILY, hour=2, retention=timedelta(days=7))
    profile = svc.profiles.create("acme-nightly", SYSTEM, periods=(nightly,), tenant="acme").profile
    volume = svc.volumes.create("files", 8 * MiB, tenant="acme", who=SYSTEM)
    svc.profiles.assign(profile.id, SubjectOfProfile.VOLUME, volume.id, SYSTEM)
    svc.profiles.assign(profile.id, SubjectOfProfile.TENANT, acme, SYSTEM)
    svc.profiles.assign(profile.id, SubjectOfProfile.TENANT, dev, SYSTEM)
    return acme, dev, profile


def users(svc: Services) -> dict[str, tuple[str, str, str | None, str]]:
    """Every user by name: (id, role, tenant, password hash)."""
    found = svc.users.page(SYSTEM, Window(100)).items
    return {u.name: (u.id, str(u.role), u.tenant_id, u.password_hash) for u in found}


def test_a_deleted_tenant_comes_back_with_its_users_and_profiles(services: Services, libvirtd: None) -> None:
    svc = services
    acme, dev, profile = make_acme(svc)
    before_users = users(svc)
    volume_id = next(v.id for v in svc.volumes.list(who=SYSTEM) if v.name == "files")
    snap = system_snapshot(svc, "sys")
    manifest = os.path.join(svc.pool.snapshot_dir(snap.id), MANIFEST)
    assert stat.S_IMODE(os.stat(manifest).st_mode) == 0o600  # it holds the users' password hashes
    assert svc.snapshots.manifest(snap.id).format_version == 2
    alone = svc.snapshots.take(TakeRequest(ref=volume_id, subject_type="volume", name="alone"), who=SYSTEM)
    assert svc.snapshots.manifest(alone.id).format_version == 1  # nothing new in it: older versions read it

    svc.tenants.delete(SYSTEM, "acme", force=True)
    assert "alice" not in users(svc) and profile.id not in {p.id for p in svc.profiles.listing(SYSTEM)}
    restore_whole(svc, snap)

    assert users(svc) == before_users  # same ids, roles, tenants and hashes
    _secret, visit = svc.logins.login("alice", PASSWORD, "127.0.0.1")
    assert visit.who == Principal("alice", Role.ADMIN, acme)
    back = svc.profiles.get(profile.id, SYSTEM)
    assert back == profile
    assert assigned(svc, SubjectOfProfile.VOLUME, volume_id) == profile.id
    assert assigned(svc, SubjectOfProfile.TENANT, acme) == profile.id
    assert assigned(svc, SubjectOfProfile.TENANT, dev) == profile.id
    assert scheduled(svc, profile, acme) == {p.id for p in profile.periods}  # its schedule runs again


def test_a_user_whose_name_was_taken_since_is_left_out_and_named_in_the_audit_log(
    services: Services, libvirtd: None
) -> None:
    svc = services
    acme, _dev, profile = make_acme(svc)
    snap = system_snapshot(svc, "sys")
    svc.tenants.delete(SYSTEM, "acme", force=True)
    svc.users.create(SYSTEM, "alice", "another password entirely", Role.VIEWER)  # a new alice, of the system
    taken = users(svc)["alice"]

    restore_whole(svc, snap)

    assert users(svc)["alice"] == taken  # the system's alice is untouched
    assert "dave" in users(svc)  # the rest came back
    assert svc.profiles.get(profile.id, SYSTEM) == profile
    assert assigned(svc, SubjectOfProfile.TENANT, acme) == profile.id
    [entry] = [e for e in svc.audit.entries(SYSTEM) if e.action == "user.restore" and e.outcome == "failed"]
    assert entry.target == "user:alice" and "acme" in entry.detail


def test_a_tenant_that_still_exists_keeps_its_users_and_profiles_as_they_are_now(
    services: Services, libvirtd: None
) -> None:
    """Who may act and what protects are not rolled back: a user made since stays, a password changed since
    stays changed, a retention lengthened since stays long. The tenant's own assignment is configuration,
    and comes back as recorded."""
    svc = services
    acme, _dev, profile = make_acme(svc)
    snap = system_snapshot(svc, "sys")
    svc.users.create(SYSTEM, "bob", PASSWORD, Role.OPERATOR, tenant="acme")
    svc.users.update(SYSTEM, "alice", password="a new password after a leak")
    longer = svc.profiles.update_period(profile.id, "nightly", SYSTEM, retention=timedelta(days=30)).profile
    svc.profiles.unassign(SubjectOfProfile.TENANT, acme, SYSTEM)
    now = users(svc)

    restore_whole(svc, snap)

    assert users(svc) == now
    assert svc.profiles.get(profile.id, SYSTEM) == longer
    assert assigned(svc, SubjectOfProfile.TENANT, acme) == profile.id


def test_an_operators_restore_brings_a_tenant_back_without_its_users(services: Services, libvirtd: None) -> None:
    """Making users takes an admin: an operator could otherwise revive a revoked admin by deleting its
    sub-tenant and restoring it. acme's operator restores acme's own snapshot after dev was deleted: dev comes
    back with its profile assignment, without dave, and the audit log says so."""
    svc = services
    acme, dev, profile = make_acme(svc)
    operator = Principal("acme-ops", Role.OPERATOR, acme)
    own = svc.snapshots.take(TakeRequest(ref="system", subject_type="system", name="own"), who=operator)
    svc.tenants.delete(SYSTEM, "acme/dev", force=True)

    svc.restores.over_source(own.id, RestoreOptions(pre_restore=False), operator)

    assert "dave" not in users(svc) and "alice" in users(svc)
    assert assigned(svc, SubjectOfProfile.TENANT, dev) == profile.id
    left_out = [e.target for e in svc.audit.entries(SYSTEM) if e.action == "user.restore" and e.outcome == "failed"]
    assert left_out == ["user:dave"]


def test_a_tenant_copy_gets_neither_users_nor_profiles(services: Services, libvirtd: None) -> None:
    """A copy restored as a new tenant is a new tenant: the source's logins would be a second door into its
    data, and its profiles would double its schedules. The source keeps its own, untouched."""
    svc = services
    acme, _dev, profile = make_acme(svc)
    snap = svc.snapshots.take(TakeRequest(ref="acme", subject_type="tenant", name="t1"), who=SYSTEM)
    before = users(svc), svc.profiles.listing(SYSTEM), svc.profiles.assignments(SYSTEM)

    made = svc.restores.as_new(snap.id, RestoreOptions(as_new=True), SYSTEM)

    copy = svc.tenants.subtree(SYSTEM, str(made["tenant_id"]))
    assert made["tenant"] == "acme (1)" and sorted(t.name for t in copy.tenants) == ["acme (1)", "dev"]
    assert (users(svc), svc.profiles.listing(SYSTEM), svc.profiles.assignments(SYSTEM)) == before
    assert profile.id in {p.id for p in before[1]} and assigned(svc, SubjectOfProfile.TENANT, acme) == profile.id


def test_the_systems_own_are_recorded_and_a_whole_restore_keeps_them_as_they_are_now(
    services: Services, libvirtd: None
) -> None:
    """A whole-system snapshot records the system's own users and profiles (for a catalog rebuilt from the
    pool: test_catalog_rebuild.py), shown to the system only. A restore of the whole system keeps the users
    and profiles there are now, as for a tenant that still exists, and puts back the profile assigned to the
    system, which is configuration."""
    svc = services
    acme = svc.tenants.create(SYSTEM, "acme").tenant.id
    svc.users.create(SYSTEM, "olga", PASSWORD, Role.ADMIN)
    ours = svc.profiles.create("ours", SYSTEM, periods=(Period(name="hourly", frequency=Frequency.HOURLY),)).profile
    svc.profiles.assign(ours.id, SubjectOfProfile.SYSTEM, "system", SYSTEM)
    request = TakeRequest(ref="system", subject_type="system", name="sys", private=False)  # exposed beneath
    snap = svc.snapshots.take(request, who=SYSTEM)

    everything = ContentsPublic.of(read_contents(svc.snapshots, snap.id, SYSTEM), "system", None)
    acmes = ContentsPublic.of(read_contents(svc.snapshots, snap.id, Principal("al", Role.VIEWER, acme)), "parent", None)
    assert ("olga", "admin", None) in {(u.name, u.config["role"], u.owner_tenant_id) for u in everything.users}
    assert ours.id in {p.id for p in everything.profiles}
    assert acmes.users == [] and acmes.profiles == []  # the system's are not a tenant's to see
    assert "$argon2" not in everything.model_dump_json()

    svc.users.create(SYSTEM, "newbie", PASSWORD, Role.VIEWER)
    svc.users.update(SYSTEM, "olga", password="a new password after a leak")
    svc.profiles.unassign(SubjectOfProfile.SYSTEM, "system", SYSTEM)
    now = users(svc), svc.profiles.listing(SYSTEM)

    restore_whole(svc, snap)

    assert (users(svc), svc.profiles.listing(SYSTEM)) == now
    assert assigned(svc, SubjectOfProfile.SYSTEM, "system") == ours.id


def test_with_only_tenants_users_the_first_admin_is_made_beside_them(services: Services, tmp_path: Path) -> None:
    """A catalog rebuilt from the pool holds its tenants' users only: the system still gets a first admin
    (named ``admin_2`` when a tenant's user is ``admin``)."""
    svc = services
    svc.tenants.create(SYSTEM, "acme")
    svc.users.create(SYSTEM, "admin", PASSWORD, Role.ADMIN, tenant="acme")

    made = svc.users.ensure_first_admin(str(tmp_path / "password"))

    assert made == "admin_2" and users(svc)["admin_2"][1:3] == ("admin", None)
    assert svc.users.ensure_first_admin(str(tmp_path / "again")) is None


def test_contents_list_the_users_and_profiles_without_a_password_hash(services: Services, libvirtd: None) -> None:
    """What the API, CLI and web UI show of a snapshot: each scope its own subtree's users and profiles."""
    svc = services
    acme, _dev, profile = make_acme(svc)
    svc.tenants.create(SYSTEM, "globex")
    svc.users.create(SYSTEM, "gary", PASSWORD, Role.ADMIN, tenant="globex")
    request = TakeRequest(ref="system", subject_type="system", name="sys", private=False)  # exposed beneath
    snap = svc.snapshots.take(request, who=SYSTEM)

    everything = ContentsPublic.of(read_contents(svc.snapshots, snap.id, SYSTEM), "system", None)
    acmes = ContentsPublic.of(read_contents(svc.snapshots, snap.id, Principal("al", Role.VIEWER, acme)), "parent", None)

    roles = {(u.name, u.config["role"]) for u in everything.users}
    assert roles == {("alice", "admin"), ("dave", "viewer"), ("gary", "admin")}
    periods = [(p.name, [q["name"] for q in p.config["periods"]]) for p in everything.profiles]
    assert periods == [("acme-nightly", ["nightly"])]
    assert {u.name for u in acmes.users} == {"alice", "dave"} and [p.name for p in acmes.profiles] == ["acme-nightly"]
    for shown in (everything, acmes):
        assert "password_hash" not in shown.model_dump_json() and "$argon2" not in shown.model_dump_json()
    assert everything.profiles[0].id == profile.id and everything.profiles[0].owner_tenant_id == acme
