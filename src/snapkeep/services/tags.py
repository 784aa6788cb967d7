"""Tags on VMs, volumes and tenants: added and removed one at a time, shown with the object.

The object is found through its own store, so the caller's scope applies (a hidden object is
``NotFound``); tags themselves are plain catalog rows (see ``catalog.tables.TagRow`` for why).
"""

from __future__ import annotations

from snapkeep.catalog.db import Database
from snapkeep.catalog.stores import Unit
from snapkeep.model.principal import Principal, Role
from snapkeep.model.tags import TagKind, check_tag, check_tags
from snapkeep.services.audit import Audit


def object_id(uow: Unit, kind: TagKind, ref: str) -> tuple[str, str, str | None]:
    """The (id, name, owner) of the object ``ref`` of ``kind``, through the unit's scope (a tenant is its own
    owner: what concerns it belongs to its subtree)."""
    if kind is TagKind.TENANT:
        tenant = uow.tenants.resolve(ref)
        return tenant.id, tenant.name, tenant.id
    found = (uow.vms if kind is TagKind.VM else uow.volumes).resolve(ref)
    return found.id, found.name, found.owner_tenant_id


def add_tags(uow: Unit, kind: TagKind, object_ref_id: str, tags: tuple[str, ...]) -> tuple[str, ...]:
    """Add checked ``tags`` to an object inside ``uow``; returns all its tags."""
    result = check_tags(tags, uow.tags.of(kind, object_ref_id))
    for tag in tags:
        uow.tags.add(kind, object_ref_id, tag)
    return result


class Tags:
    def __init__(self, db: Database, audit: Audit) -> None:
        self._db = db
        self._audit = audit

    def add(self, who: Principal, kind: TagKind, ref: str, tag: str) -> tuple[str, ...]:
        who.require(Role.OPERATOR)
        with self._db.unit(who) as uow:
            found, name, owner = object_id(uow, kind, ref)
            tags = add_tags(uow, kind, found, (tag,))
            self._audit.done(uow, who, "tag.add", f"{kind}:{name}", tag, owner=owner)
            return tags

    def remove(self, who: Principal, kind: TagKind, ref: str, tag: str) -> tuple[str, ...]:
        """Idempotent: removing a tag the object does not have changes nothing."""
        who.require(Role.OPERATOR)
        check_tag(tag)
        with self._db.unit(who) as uow:
            found, name, owner = object_id(uow, kind, ref)
            uow.tags.remove(kind, found, tag)
            self._audit.done(uow, who, "tag.remove", f"{kind}:{name}", tag, owner=owner)
            return uow.tags.of(kind, found)

    def of(self, who: Principal, kind: TagKind, ref: str) -> tuple[str, ...]:
        with self._db.unit(who) as uow:
            return uow.tags.of(kind, object_id(uow, kind, ref)[0])
