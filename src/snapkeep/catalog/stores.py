"""The stores of a unit of work (:meth:`snapkeep.catalog.db.Database.unit`): one per table family, taking
and returning snapkeep's frozen dataclasses. ORM rows and the session stay in here.

Every store writes in one style: ``insert(obj)``, ``update(id, **changes)``, ``delete(id)``. ``update``
names the columns it changes rather than saving a whole changed copy (``save(replace(obj, ...))``): it
writes only those columns, so two units changing different fields of one row at the same time (a job's
progress and its end; a snapshot's measured space and its unlock) never write back each other's stale
values, and a caller need not read before it writes. Unknown names are a programming error (``TypeError``).

Every read and write of owned objects (volumes, VMs, snapshots, jobs) goes through the unit's
:class:`~snapkeep.catalog.scope.Scope`: an object outside it is :class:`NotFound`, exactly as a missing
one, whether asked by id or by name, read or written. Names resolve within the caller's own owner (the
system, or the caller's tenant), since names are unique per owner only; objects of tenants beneath it
are reached by id.

Stores flush but never commit: the unit commits when its ``with`` block ends without an error.
"""

from __future__ import annotations

import builtins
from dataclasses import fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from snapkeep.catalog.scope import Scope, subtree
from snapkeep.catalog.tables import AuditRow, JobRow, SnapshotRow, TenantRow, TokenRow, VmRow, VolumeRow
from snapkeep.errors import NotFound
from snapkeep.model.principal import Role
from snapkeep.model.types import (
    AuditEntry,
    Job,
    JobStatus,
    QuiescePolicy,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
    Tenant,
    Token,
    VmRecord,
    VolumeRecord,
)

T = TypeVar("T")


def _as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _convert(row: Any, cls: type[T], enums: dict[str, type[StrEnum]]) -> T:
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = getattr(row, f.name)
        if isinstance(value, datetime):
            value = _as_utc(value)
        elif isinstance(value, dict):
            value = dict(value)  # the row's JSON stays with the row
        elif f.name in enums and value is not None:
            value = enums[f.name](value)
        values[f.name] = value
    return cls(**values)


def _no_owner(tenant_id: str | None) -> NotFound:
    """An owner outside the scope: a tenant as good as missing, or the system itself."""
    if tenant_id is None:
        return NotFound("the system is outside this scope", tenant=None)
    return NotFound(f"no tenant with id {tenant_id}", tenant=tenant_id)


class _Store(Generic[T]):
    """Reads and writes of one table whose rows are ``record`` dataclasses field for field."""

    row: ClassVar[type[Any]]
    record: ClassVar[type[Any]]
    enums: ClassVar[dict[str, type[StrEnum]]] = {}

    def __init__(self, session: Session, scope: Scope) -> None:
        self._s = session
        self._scope = scope

    def _to(self, row: Any) -> T:
        result: T = _convert(row, self.record, self.enums)
        return result

    def _visible(self, row: Any) -> bool:
        return True

    def _row(self, row_id: Any) -> Any:
        row = self._s.get(self.row, row_id)
        if row is None or not self._visible(row):
            raise self._missing(row_id)
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
        self._s.delete(self._row(row_id))
        self._s.flush()


class _Owned(_Store[T]):
    """A table of objects owned by the system or a tenant (``owner_tenant_id``), read through the scope."""

    def _visible(self, row: Any) -> bool:
        return self._scope.allows(row.owner_tenant_id)

    def _select(self) -> Any:
        return self._scope.where(select(self.row), self.row.owner_tenant_id)

    def _check_placement(self, values: dict[str, Any]) -> None:
        if "owner_tenant_id" in values and not self._scope.allows(values["owner_tenant_id"]):
            raise _no_owner(values["owner_tenant_id"])


class _Named(_Owned[T]):
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
            raise NotFound(f"no {self.what} named or with id {ref!r}", ref=ref)
        return found

    def list(self) -> list[T]:
        return [self._to(row) for row in self._s.scalars(self._select().order_by(self.row.name))]


class VolumeStore(_Named[VolumeRecord]):
    row = VolumeRow
    record = VolumeRecord
    what = "volume"


class VmStore(_Named[VmRecord]):
    row = VmRow
    record = VmRecord
    what = "VM"
    enums: ClassVar[dict[str, type[StrEnum]]] = {"quiesce_policy": QuiescePolicy}


class SnapshotStore(_Owned[Snapshot]):
    row = SnapshotRow
    record = Snapshot
    enums: ClassVar[dict[str, type[StrEnum]]] = {"kind": SnapshotKind, "status": SnapshotStatus}

    def _missing(self, row_id: Any) -> NotFound:
        return NotFound(f"no snapshot with id {row_id}", snapshot=row_id)

    def find(self, subject_type: str, subject_id: str, name: str) -> Snapshot | None:
        """The snapshot of a subject by its name (unique among that subject's snapshots)."""
        row = self._s.scalar(
            self._select().where(
                SnapshotRow.subject_type == subject_type,
                SnapshotRow.subject_id == subject_id,
                SnapshotRow.name == name,
            )
        )
        return None if row is None else self._to(row)

    def list(self, subject_type: str | None = None, subject_id: str | None = None) -> list[Snapshot]:
        """Oldest first; of one subject (or kind of subject) when given."""
        query = self._select().order_by(SnapshotRow.created_at, SnapshotRow.name)
        if subject_type is not None:
            query = query.where(SnapshotRow.subject_type == subject_type)
        if subject_id is not None:
            query = query.where(SnapshotRow.subject_id == subject_id)
        return [self._to(row) for row in self._s.scalars(query)]

    def in_status(self, *statuses: SnapshotStatus) -> builtins.list[Snapshot]:
        query = self._select().where(SnapshotRow.status.in_([st.value for st in statuses]))
        return [self._to(row) for row in self._s.scalars(query)]


class JobStore(_Owned[Job]):
    row = JobRow
    record = Job
    enums: ClassVar[dict[str, type[StrEnum]]] = {"status": JobStatus}

    def _missing(self, row_id: Any) -> NotFound:
        return NotFound(f"no job with id {row_id}", job=row_id)

    def list(self, limit: int = 100) -> list[Job]:
        """Newest first."""
        query = self._select().order_by(JobRow.created_at.desc()).limit(limit)
        return [self._to(row) for row in self._s.scalars(query)]

    def in_status(self, *statuses: JobStatus) -> builtins.list[Job]:
        query = self._select().where(JobRow.status.in_([st.value for st in statuses]))
        return [self._to(row) for row in self._s.scalars(query)]


class AuditStore:
    """The audit log: appended to, never changed."""

    def __init__(self, session: Session) -> None:
        self._s = session

    def append(self, at: datetime, actor: str, action: str, target: str, outcome: str, detail: str) -> None:
        self._s.add(AuditRow(at=at, actor=actor, action=action, target=target, outcome=outcome, detail=detail))
        self._s.flush()

    def list(self, limit: int = 200) -> list[AuditEntry]:
        """Newest first."""
        rows = self._s.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit))
        return [_convert(row, AuditEntry, {}) for row in rows]


class TokenStore(_Store[Token]):
    """API tokens, looked up by the hash of their secret (authentication comes before any scope)."""

    row = TokenRow
    record = Token
    enums: ClassVar[dict[str, type[StrEnum]]] = {"role": Role}

    def _missing(self, row_id: Any) -> NotFound:
        return NotFound(f"no token with id {row_id}", token=row_id)

    def find_by_hash(self, token_hash: str) -> Token | None:
        row = self._s.scalar(select(TokenRow).where(TokenRow.token_hash == token_hash))
        return None if row is None else self._to(row)


class TenantStore(_Store[Tenant]):
    """Tenants a scope sees: its own tenant and those beneath it (the system sees all)."""

    row = TenantRow
    record = Tenant

    def _visible(self, row: Any) -> bool:
        return self._scope.allows(row.id)

    def _missing(self, row_id: Any) -> NotFound:
        return NotFound(f"no tenant with id {row_id}", tenant=row_id)

    def children(self, parent_id: str | None) -> list[Tenant]:
        """The tenants directly under ``parent_id`` (None: under the system), by name."""
        if parent_id is not None:
            self._row(parent_id)
        parent = TenantRow.parent_id
        query = select(TenantRow).where(parent.is_(None) if parent_id is None else parent == parent_id)
        query = self._scope.where(query, TenantRow.id).order_by(TenantRow.name)
        return [self._to(row) for row in self._s.scalars(query)]

    def subtree_ids(self, tenant_id: str) -> frozenset[str]:
        """``tenant_id`` and the ids of every tenant beneath it."""
        self._row(tenant_id)
        return subtree(self._s, tenant_id)

    def _check_placement(self, values: dict[str, Any]) -> None:
        """A tenant goes under a parent the scope sees (under the system only in the system's scope)."""
        if "parent_id" not in values:
            return
        if values["parent_id"] is not None:
            self._row(values["parent_id"])
        elif self._scope.tenant_id is not None:
            raise _no_owner(None)


class Unit:
    """One unit of work: a store per table family over one transaction, seen through one scope."""

    def __init__(self, session: Session, tenant_id: str | None) -> None:
        scope = Scope(session, tenant_id)
        self.volumes = VolumeStore(session, scope)
        self.vms = VmStore(session, scope)
        self.snapshots = SnapshotStore(session, scope)
        self.jobs = JobStore(session, scope)
        self.audit = AuditStore(session)
        self.tokens = TokenStore(session, scope)
        self.tenants = TenantStore(session, scope)
