"""A tenant's own users and snapshot profiles (SPEC §1: a tenant has its own users and profiles), as system
and tenant snapshots record them and as a rebuild brings them back.

Recorded: every user and every profile (with its periods) of every tenant a snapshot captures, as ``user``
and ``profile`` objects of the manifest; and the profile assigned to each tenant's own system snapshots, as
``profile_id`` in the tenant's config (as a VM's or volume's, :mod:`.profile_back`). A user is recorded with
its password hash, so that it logs in again as before; the manifest is readable by root only.

A snapshot of the whole system records the system's own users and profiles too (owner None), and the
profile assigned to the system, in the system's settings object: a restore of the whole system keeps the
users and profiles there are now (the system still exists) and puts its assignment back; they are for a
catalog rebuilt from the pool (:mod:`snapkeep.services.pool_records`), which has nothing else to go by.

Brought back: only with a tenant that a rebuild makes again (deleted since, its users and profiles went with
it), in the same catalog unit that makes it, so a crash leaves the tenant with all of them or without the
tenant. A tenant that still exists keeps the users and profiles it has now: they say who may act and what
protects, not what is protected. A restore must not bring back a password changed since (perhaps because
it leaked), nor a user removed on purpose, nor shorten a retention lengthened since, which would let the
next sweep delete snapshots that are wanted now. Users come back only when an admin restores (making users
takes an admin; an operator's restore leaves them out), each one audited; a recorded user whose name
another user has taken since (names are unique across the system) is left out, also audited. A tenant
copied as new gets neither: login names cannot be doubled, and a copy's schedule is its owner's choice, as
for a VM's copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from snapkeep.catalog.stores import Unit
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.names import numbered_name
from snapkeep.model.principal import Role
from snapkeep.model.profile import Profile, period_from_rule, period_rule
from snapkeep.model.user import User

log = logging.getLogger(__name__)

USER = "user"
PROFILE = "profile"


def recorded(uow: Unit, tenant_ids: Iterable[str | None]) -> list[ManifestObject]:
    """The users and profiles of these tenants (None: the system's own), as a manifest records them (users
    first, each kind by id)."""
    ids = frozenset(tenant_ids)
    if not ids:
        return []
    users = sorted(uow.users.in_tenants(ids), key=lambda u: u.id)
    profiles = sorted((p for p in uow.profiles.list() if p.owner_tenant_id in ids), key=lambda p: p.id)
    return [*(_user_object(u) for u in users), *(recorded_profile(p) for p in profiles)]


def _user_object(user: User) -> ManifestObject:
    return ManifestObject(
        type=USER,
        id=user.id,
        name=user.name,
        owner_tenant_id=user.tenant_id,
        config={"role": str(user.role), "password_hash": user.password_hash, "created_at": _iso(user.created_at)},
        datasets=[],
    )


def recorded_profile(profile: Profile) -> ManifestObject:
    """The profile as a manifest records it."""
    periods = [{"id": p.id, "name": p.name, "rule": period_rule(p)} for p in profile.periods]
    return ManifestObject(
        type=PROFILE,
        id=profile.id,
        name=profile.name,
        owner_tenant_id=profile.owner_tenant_id,
        config={
            "description": profile.description,
            "timezone": profile.timezone,
            "ignore_warning": profile.ignore_warning,
            "periods": periods,
            "created_at": _iso(profile.created_at),
        },
        datasets=[],
    )


def without_secret(user: ManifestObject) -> ManifestObject:
    """A recorded user as a listing shows it: without its password hash."""
    config = {key: value for key, value in user.config.items() if key != "password_hash"}
    return user.model_copy(update={"config": config})


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def bring_back(uow: Unit, objects: Iterable[ManifestObject], users: bool = True) -> list[tuple[str, str]]:
    """Make the recorded profiles of a tenant that was just made again and, with ``users``, its users, inside
    ``uow`` (the unit that makes the tenant); each user as (name, why it was left out, or "")."""
    outcome = []
    for obj in objects:
        if obj.type == PROFILE:
            uow.profiles.insert(_free_named(uow, _profile(obj)))
        elif obj.type == USER:
            why_not = _why_not(uow, obj, users)
            if why_not:
                log.warning("user %s of a tenant brought back is left out: %s", obj.name, why_not)
            else:
                uow.users.insert(_user(obj))
            outcome.append((obj.name, why_not))
    return outcome


def _free_named(uow: Unit, profile: Profile) -> Profile:
    """The profile, numbered ``<name> (n)`` if its owner has another of its name now (the installed profiles
    a first start made before the catalog was rebuilt from the pool): its assignments keep its id."""
    owner = profile.owner_tenant_id
    if uow.profiles.find(profile.name, owner) is None:
        return profile
    name = numbered_name(profile.name, lambda wanted: uow.profiles.find(wanted, owner) is not None)
    log.warning("profile %r brought back as %r: another profile has its name now", profile.name, name)
    return replace(profile, name=name)


def _why_not(uow: Unit, user: ManifestObject, allowed: bool) -> str:
    if not allowed:
        return "only an admin brings users back (an operator may not make users)"
    if uow.users.find_by_name(user.name) is not None:
        return "the name is another user's now"
    return ""


def _user(obj: ManifestObject) -> User:
    config = obj.config
    return User(
        id=obj.id,
        name=obj.name,
        password_hash=str(config["password_hash"]),
        role=Role(config["role"]),
        tenant_id=obj.owner_tenant_id,
        created_at=datetime.fromisoformat(str(config["created_at"])),
    )


def _profile(obj: ManifestObject) -> Profile:
    config = obj.config
    return Profile(
        id=obj.id,
        name=obj.name,
        description=str(config["description"]),
        owner_tenant_id=obj.owner_tenant_id,
        timezone=str(config["timezone"]),
        periods=tuple(period_from_rule(p["id"], p["name"], p["rule"]) for p in config["periods"]),
        ignore_warning=bool(config["ignore_warning"]),
        created_at=datetime.fromisoformat(str(config["created_at"])),
    )
