"""What every store of the catalog shares: row conversion, the scoped base stores, and tags (which any
object can carry). The stores themselves live in :mod:`snapkeep.catalog.stores` and
:mod:`snapkeep.catalog.profile_stores`; read that module's docstring for the style they all write in.
"""

from __future__ import annotations

import builtins
from dataclasses import fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from snapkeep.catalog.scope import Scope
from snapkeep.catalog.tables import TagRow
from snapkeep.errors import NotFound
from snapkeep.model.paging import Page, Window, cut
from snapkeep.model.principal import Role

T = TypeVar("T")


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def convert_row(row: Any, cls: type[T], enums: dict[str, type[StrEnum]]) -> T:
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = getattr(row, f.name)
        if isinstance(value, datetime):
            value = as_utc(value)
        elif isinstance(value, dict):
            value = dict(value)  # the row's JSON stays with the row
        elif f.name in enums and value is not None:
            value = enums[f.name](value)
        values[f.name] = value
    return cls(**values)


def no_owner(tenant_id: str | None) -> NotFound:
    """An owner outside the scope: a tenant as good as missing, or the system itself."""
    if tenant_id is None:
        return NotFound("the system is outside this scope", tenant=None).hiding()
    return NotFound(f"no tenant with id {tenant_id}", tenant=tenant_id).hiding()


def keyset(query: Any, columns: tuple[Any, ...], window: Window, descending: bool = False) -> Any:
    """``query`` ordered by ``columns`` (a key unique per row), from just after ``window.after``, one row past
    the limit (see :func:`~snapkeep.model.paging.cut`). Rows are compared as one row value, which SQLite and
    PostgreSQL both answer from an index on those columns."""
    if window.after is not None:
        position = tuple_(*columns)
        after = tuple_(*window.after)
        query = query.where(position < after if descending else position > after)
    order = [column.desc() for column in columns] if descending else list(columns)
    return query.order_by(*order).limit(window.limit + 1)


class Store(Generic[T]):
    """Reads and writes of one table whose rows are ``record`` dataclasses field for field."""

    row: ClassVar[type[Any]]
    record: ClassVar[type[Any]]
    enums: ClassVar[dict[str, type[StrEnum]]] = {}
    tagged_as: ClassVar[str | None] = None  # the rows' object_type in the tags table, if they can be tagged

    def __init__(self, session: Session, scope: Scope) -> None:
        self._s = session
        self._scope = scope

    def _to(self, row: Any) -> T:
        result: T = convert_row(row, self.record, self.enums)
        return result

    def _visible(self, row: Any) -> bool:
        return True

    def _row(self, row_id: Any) -> Any:
        row = self._s.get(self.row, row_id)
        if row is None:
            raise self._missing(row_id)
        if not self._visible(row):
            raise self._missing(row_id).hiding()
        return row

    def _missing(self, row_id: Any) -> NotFound:
        """The error for a row that is missing or outside the scope (the caller cannot tell which)."""
        raise NotImplementedError

    def get(self, row_id: Any) -> T:
        return self._to(self._row(row_id))

    def _check_placement(self, values: dict[str, Any]) -> None:
        """Refuse (:class:`NotFound`) values that would put a row outside the scope (an owner, a parent)."""

    def insert(self, obj: T) -> T:
        """Add ``obj`` and return it as stored."""
        values = {f.name: getattr(obj, f.name) for f in fields(obj)}  # type: ignore[arg-type]
        self._check_placement(values)
        row = self.row(**values)
        self._s.add(row)
        self._s.flush()
        return self._to(row)

    def update(self, row_id: Any, **changes: Any) -> T:
        """Change the named columns of a visible row and return it as it now is."""
        row = self._row(row_id)
        known = {f.name for f in fields(self.record)} - {"id"}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"{self.record.__name__} has no field(s) {sorted(unknown)} to update")
        self._check_placement(changes)
        for key, value in changes.items():
            setattr(row, key, value)
        self._s.flush()
        return self._to(row)

    def delete(self, row_id: Any) -> None:
        """Delete the row (and its tags, which name it without a foreign key)."""
        self._s.delete(self._row(row_id))
        if self.tagged_as is not None:
            TagStore(self._s).remove(self.tagged_as, row_id)
        self._s.flush()


class OwnedStore(Store[T]):
    """A table of objects owned by the system or a tenant (``owner_tenant_id``), read through the scope."""

    def _visible(self, row: Any) -> bool:
        return self._scope.allows(row.owner_tenant_id)

    def _select(self) -> Any:
        return self._scope.where(select(self.row), self.row.owner_tenant_id)

    def _check_placement(self, values: dict[str, Any]) -> None:
        if "owner_tenant_id" in values and not self._scope.allows(values["owner_tenant_id"]):
            raise no_owner(values["owner_tenant_id"])

    def count(self) -> int:
        """How many the scope sees: one counting query, not a listing (the dashboard's numbers)."""
        return int(self._s.scalar(select(func.count()).select_from(self._select().subquery())) or 0)


class NamedStore(OwnedStore[T]):
    """Volumes and VMs: named uniquely per owner, found by id or by name."""

    what: ClassVar[str]

    def _missing(self, row_id: Any) -> NotFound:
        return NotFound(f"no {self.what} with id {row_id}", id=row_id)

    def find(self, name: str, owner_tenant_id: str | None) -> T | None:
        """The object named ``name`` within its owner (the system when ``owner_tenant_id`` is None)."""
        owner = self.row.owner_tenant_id
        query = self._select().where(
            self.row.name == name, owner.is_(None) if owner_tenant_id is None else owner == owner_tenant_id
        )
        row = self._s.scalar(query)
        return None if row is None else self._to(row)

    def resolve(self, ref: str) -> T:
        """The object with id ``ref`` or, failing that, named ``ref`` within the caller's own owner."""
        row = self._s.get(self.row, ref)
        if row is not None and self._visible(row):
            return self._to(row)
        found = self.find(ref, self._scope.tenant_id)
        if found is None:
            missing = NotFound(f"no {self.what} named or with id {ref!r}", ref=ref)
            elsewhere = row is not None or self._s.scalar(select(self.row.id).where(self.row.name == ref)) is not None
            raise missing.hiding() if elsewhere else missing
        return found

    def list(self, owned_by: str | None = None) -> list[T]:
        """By name; with ``owned_by`` (a tenant id), only what that tenant owns itself."""
        query = self._select().order_by(self.row.name)
        if owned_by is not None:
            query = query.where(self.row.owner_tenant_id == owned_by)
        return [self._to(row) for row in self._s.scalars(query)]

    def page(self, window: Window, owned_by: str | None = None) -> Page[T]:
        """:meth:`list` a page at a time, in (name, id) order (names repeat across owners)."""
        query = self._select()
        if owned_by is not None:
            query = query.where(self.row.owner_tenant_id == owned_by)
        rows = self._s.scalars(keyset(query, (self.row.name, self.row.id), window))
        return cut([self._to(row) for row in rows], window, lambda obj: (obj.name, obj.id))  # type: ignore[attr-defined]


class TagStore:
    """Tags on objects (``object_type`` is ``vm``, ``volume`` or ``tenant``). The object is resolved through
    its own store (and scope) first; tags are reached only through it."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def of(self, object_type: str, object_id: str) -> tuple[str, ...]:
        query = select(TagRow.tag).where(TagRow.object_type == object_type, TagRow.object_id == object_id)
        return tuple(sorted(self._s.scalars(query)))

    def of_all(self, object_type: str) -> dict[str, tuple[str, ...]]:
        """Every object of a kind that has tags, with them (for listings: one query, not one per row)."""
        found: dict[str, builtins.list[str]] = {}
        for object_id, tag in self._s.execute(
            select(TagRow.object_id, TagRow.tag).where(TagRow.object_type == object_type)
        ):
            found.setdefault(object_id, []).append(tag)
        return {object_id: tuple(sorted(tags)) for object_id, tags in found.items()}

    def add(self, object_type: str, object_id: str, tag: str) -> None:
        """Idempotent."""
        if tag not in self.of(object_type, object_id):
            self._s.add(TagRow(object_type=object_type, object_id=object_id, tag=tag))
            self._s.flush()

    def remove(self, object_type: str, object_id: str, tag: str | None = None) -> None:
        """One tag (idempotent), or every tag of the object when ``tag`` is None."""
        query = select(TagRow).where(TagRow.object_type == object_type, TagRow.object_id == object_id)
        if tag is not None:
            query = query.where(TagRow.tag == tag)
        for row in self._s.scalars(query):
            self._s.delete(row)
        self._s.flush()


class CredentialStore(Store[T]):
    """Holders of credentials — API tokens and users — with a role and a scope (``tenant_id``).

    Their names are unique across scopes; a scope sees and places those of its own subtree only, while a
    lookup by name for authentication or the name check finds any (authentication comes before any scope).
    """

    noun: ClassVar[str]
    enums: ClassVar[dict[str, type[StrEnum]]] = {"role": Role}

    def _missing(self, row_id: Any) -> NotFound:
        return NotFound(f"no {self.noun} with id {row_id}", **{self.noun: row_id})

    def _visible(self, row: Any) -> bool:
        return self._scope.allows(row.tenant_id)

    def _check_placement(self, values: dict[str, Any]) -> None:
        if "tenant_id" in values and not self._scope.allows(values["tenant_id"]):
            raise no_owner(values["tenant_id"])

    def find_by_name(self, name: str) -> T | None:
        """Any one of that name, visible or not."""
        row = self._s.scalar(select(self.row).where(self.row.name == name))
        return None if row is None else self._to(row)

    def resolve(self, ref: str) -> T:
        """The visible one with id or name ``ref``."""
        row = self._s.get(self.row, ref) or self._s.scalar(select(self.row).where(self.row.name == ref))
        missing = NotFound(f"no {self.noun} named or with id {ref!r}", **{self.noun: ref})
        if row is None:
            raise missing
        if not self._visible(row):
            raise missing.hiding()
        return self._to(row)

    def page(self, window: Window) -> Page[T]:
        """By name (the id only makes the key a row's own)."""
        query = self._scope.where(select(self.row), self.row.tenant_id)
        rows = self._s.scalars(keyset(query, (self.row.name, self.row.id), window))
        return cut([self._to(row) for row in rows], window, lambda held: (held.name, held.id))  # type: ignore[attr-defined]
