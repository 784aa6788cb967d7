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
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session

from snapkeep.catalog.generations import WRITTEN, Generations
from snapkeep.catalog.profile_stores import AssignmentStore, MetaStore, ProfileStore, ScheduleStore
from snapkeep.catalog.scope import Scope, subtree
from snapkeep.catalog.store_base import (
    CredentialStore,
    NamedStore,
    OwnedStore,
    Store,
    TagStore,
    convert_row,
    keyset,
    no_owner,
)
from snapkeep.catalog.tables import (
    AuditRow,
    JobRow,
    NetworkRow,
    SettingRow,
    SnapshotRow,
    TenantRow,
    TokenRow,
    VmRow,
    VolumeRow,
)
from snapkeep.catalog.user_stores import UserStore, WebSessionStore
from snapkeep.errors import NotFound
from snapkeep.model.filters import AuditFilter, SnapshotFilter
from snapkeep.model.paging import Key, Page, Window, cut
from snapkeep.model.principal import SYSTEM, Principal
from snapkeep.model.types import (
    AuditEntry,
    Job,
    JobStatus,
    Network,
    QuiescePolicy,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
    Tenant,
    Token,
    VmRecord,
    VolumeRecord,
)


class VolumeStore(NamedStore[VolumeRecord]):
    row = VolumeRow
    record = VolumeRecord
    what = "volume"
    tagged_as = "volume"


class VmStore(NamedStore[VmRecord]):
    row = VmRow
    record = VmRecord
    what = "VM"
    tagged_as = "vm"
    enums: ClassVar[dict[str, type[StrEnum]]] = {"quiesce_policy": QuiescePolicy}


class NetworkStore(NamedStore[Network]):
    row = NetworkRow
    record = Network
    what = "network"

    def every(self) -> builtins.list[Network]:
        """Every network on the host, whoever owns it, outside any scope: they all share the host's
        address space (for the overlap check only; never shown to the caller)."""
        return [self._to(row) for row in self._s.scalars(select(NetworkRow))]


class SnapshotStore(OwnedStore[Snapshot]):
    row = SnapshotRow
    record = Snapshot
    enums: ClassVar[dict[str, type[StrEnum]]] = {"kind": SnapshotKind, "status": SnapshotStatus}

    def _missing(self, row_id: Any) -> NotFound:
        return NotFound(f"no snapshot with id {row_id}", snapshot=row_id)

    def _exposed(self, row: Any) -> bool:
        """A parent's system snapshot that the scope's tenant may read (and restore its own objects from)."""
        exposed, parent = self._scope.exposed_from()
        return exposed and row.kind == SnapshotKind.SYSTEM and not row.private and row.owner_tenant_id == parent

    def _visible(self, row: Any) -> bool:
        return self._scope.allows(row.owner_tenant_id) or self._exposed(row)

    def _select(self) -> Any:
        exposed, parent = self._scope.exposed_from()
        owned = self._scope.where(select(SnapshotRow), SnapshotRow.owner_tenant_id)
        if not exposed:
            return owned
        owner = SnapshotRow.owner_tenant_id
        visible = self._scope.tenants() or frozenset()
        return select(SnapshotRow).where(
            or_(
                owner.in_(visible),
                and_(
                    owner.is_(None) if parent is None else owner == parent,
                    SnapshotRow.kind == SnapshotKind.SYSTEM.value,
                    SnapshotRow.private.is_(False),
                ),
            )
        )

    def owned(self, snap: Snapshot) -> bool:
        """Whether ``snap`` is the scope's own (not only a parent's, exposed to it): what it may change,
        delete or restore whole."""
        return self._scope.allows(snap.owner_tenant_id)

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

    def page(self, where: SnapshotFilter, window: Window) -> Page[Snapshot]:
        """The snapshots ``where`` admits, oldest first, in (created_at, id) order."""
        query = keyset(self._select().where(*_conditions(where)), (SnapshotRow.created_at, SnapshotRow.id), window)
        # The columns, not ORM objects: the records are only read, and a page of 1,000 loads in a quarter of
        # the time without the ORM's bookkeeping (7 ms rather than 26).
        rows = self._s.execute(query.with_only_columns(*SnapshotRow.__table__.c))
        return cut([self._to(row) for row in rows], window, _snapshot_key)

    def tally(self) -> dict[SnapshotStatus, tuple[int, int, int]]:
        """Per status, of the snapshots the scope sees: how many, how many have their space measured, and
        the exclusive bytes of those (one grouped query)."""
        seen = self._select().subquery()
        query = select(
            seen.c.status, func.count(), func.count(seen.c.exclusive_bytes), func.sum(seen.c.exclusive_bytes)
        ).group_by(seen.c.status)
        return {SnapshotStatus(st): (n, measured, int(size or 0)) for st, n, measured, size in self._s.execute(query)}

    def newest_of_period(self, subject_id: str, period_id: str, count: int) -> frozenset[str]:
        """The ids of the ``count`` newest ready or held snapshots a period took of a subject (the ones its
        minimum count keeps)."""
        if count <= 0:
            return frozenset()
        query = (
            select(SnapshotRow.id)
            .where(
                SnapshotRow.subject_id == subject_id,
                SnapshotRow.period_id == period_id,
                SnapshotRow.status.in_([SnapshotStatus.READY.value, SnapshotStatus.HELD.value]),
            )
            .order_by(SnapshotRow.created_at.desc(), SnapshotRow.id.desc())
            .limit(count)
        )
        return frozenset(self._s.scalars(query))

    def taken_by(self, subject_id: str, period_ids: tuple[str, ...]) -> builtins.list[Snapshot]:
        """The ready and held snapshots of a subject that these periods took, oldest first."""
        query = self._select().where(
            SnapshotRow.subject_id == subject_id,
            SnapshotRow.period_id.in_(period_ids),
            SnapshotRow.status.in_([SnapshotStatus.READY.value, SnapshotStatus.HELD.value]),
        )
        return [self._to(row) for row in self._s.scalars(query.order_by(SnapshotRow.created_at))]

    def release_holds(self, *, period_id: str | None = None, subject_id: str | None = None) -> None:
        """Held snapshots of a period, of a subject, or of both become ready again: the next expiry sweep
        decides anew whether something still holds them (a newer snapshot of the period, a lower minimum,
        an unassigned profile)."""
        query = update(SnapshotRow).where(SnapshotRow.status == SnapshotStatus.HELD.value)
        if period_id is not None:
            query = query.where(SnapshotRow.period_id == period_id)
        if subject_id is not None:
            query = query.where(SnapshotRow.subject_id == subject_id)
        self._s.execute(query.values(status=SnapshotStatus.READY.value))

    def due(self, now: datetime) -> builtins.list[Snapshot]:
        """The scope's own ``ready`` (and ``failed``: the record of a take that failed) snapshots whose
        expiry has passed, soonest expired first: read through the (status, expires_at) index, one status
        at a time, so the cost follows what is due, not the size of the catalog. ``held`` ones are not
        among them (their period decides when they go), nor a parent's snapshots exposed to a tenant (not
        its to delete)."""
        found: builtins.list[Snapshot] = []
        for status in (SnapshotStatus.READY, SnapshotStatus.FAILED):
            query = self._scope.where(select(SnapshotRow), SnapshotRow.owner_tenant_id).where(
                SnapshotRow.status == status.value,
                SnapshotRow.expires_at.is_not(None),
                SnapshotRow.expires_at <= now,
            )
            found += [self._to(row) for row in self._s.scalars(query.order_by(SnapshotRow.expires_at))]
        return sorted(found, key=lambda snap: snap.expires_at or now)


def _snapshot_key(snap: Snapshot) -> Key:
    return (snap.created_at, snap.id)


def _conditions(where: SnapshotFilter) -> builtins.list[ColumnElement[bool]]:
    """The SQL of a :class:`SnapshotFilter`: one condition per field given."""
    equal = {
        SnapshotRow.subject_type: where.subject_type,
        SnapshotRow.subject_id: where.subject_id,
        SnapshotRow.name: where.name,
        SnapshotRow.kind: where.kind and where.kind.value,
        SnapshotRow.status: where.status and where.status.value,
        SnapshotRow.origin: where.origin,
        SnapshotRow.period_id: where.period_id,
    }
    found: builtins.list[ColumnElement[bool]] = [col == value for col, value in equal.items() if value is not None]
    if where.created_after is not None:
        found.append(SnapshotRow.created_at >= where.created_after)
    if where.created_before is not None:
        found.append(SnapshotRow.created_at < where.created_before)
    return found


class JobStore(OwnedStore[Job]):
    row = JobRow
    record = Job
    enums: ClassVar[dict[str, type[StrEnum]]] = {"status": JobStatus}

    def _missing(self, row_id: Any) -> NotFound:
        return NotFound(f"no job with id {row_id}", job=row_id)

    def list(self, limit: int = 100) -> list[Job]:
        """The newest ``limit``, newest first."""
        return self.page(Window(limit)).items

    def page(self, window: Window) -> Page[Job]:
        """Newest first, in (created_at, id) order."""
        rows = self._s.scalars(keyset(self._select(), (JobRow.created_at, JobRow.id), window, descending=True))
        return cut([self._to(row) for row in rows], window, lambda job: (job.created_at, job.id))

    def in_status(self, *statuses: JobStatus) -> builtins.list[Job]:
        query = self._select().where(JobRow.status.in_([st.value for st in statuses]))
        return [self._to(row) for row in self._s.scalars(query)]

    def failed_since(self, since: datetime, limit: int) -> builtins.list[Job]:
        """The newest ``limit`` jobs that failed at or after ``since``, newest first."""
        query = self._select().where(JobRow.status == JobStatus.FAILED.value, JobRow.finished_at >= since)
        return [self._to(row) for row in self._s.scalars(query.order_by(JobRow.finished_at.desc()).limit(limit))]

    def hand_over(self, owners: Iterable[str], to: str | None) -> None:
        """Give the jobs of tenants that are going away to ``to``, so that their history stays readable
        above them. The new owner must be in the scope."""
        self._check_placement({"owner_tenant_id": to})
        query = self._scope.where(update(JobRow), JobRow.owner_tenant_id).where(JobRow.owner_tenant_id.in_(owners))
        self._s.execute(query.values(owner_tenant_id=to))


class AuditStore:
    """The audit log: appended to, never changed but for the owner of a deleted tenant's entries. Each entry
    belongs to the tenant whose subtree it concerns (None: the system's); a scope reads its subtree's."""

    def __init__(self, session: Session, scope: Scope) -> None:
        self._s = session
        self._scope = scope

    def append(
        self, at: datetime, by: Principal | str, action: str, target: str, outcome: str, detail: str, owner: str | None
    ) -> None:
        """``by``: who acted (a name alone: someone not identified, such as a failed login's); ``owner``: the
        tenant whose subtree the entry concerns."""
        actor, scope = (by, None) if isinstance(by, str) else (by.name, by.tenant_id)
        self._s.add(
            AuditRow(
                at=at,
                actor=actor,
                actor_tenant_id=scope,
                action=action,
                target=target,
                outcome=outcome,
                detail=detail,
                owner_tenant_id=owner,
            )
        )
        self._s.flush()

    def hand_over(self, owners: Iterable[str], to: str | None) -> None:
        """Give the entries of tenants that are going away to ``to`` (their parent), so that their history
        stays readable above them; their users' acts become acts of ``to``'s scope, so that ``to`` reads
        who did them (they were in its subtree), not ``parent``."""
        gone = list(owners)
        self._s.execute(update(AuditRow).where(AuditRow.owner_tenant_id.in_(gone)).values(owner_tenant_id=to))
        self._s.execute(update(AuditRow).where(AuditRow.actor_tenant_id.in_(gone)).values(actor_tenant_id=to))

    def list(self, limit: int = 200) -> list[AuditEntry]:
        """The newest ``limit``, newest first."""
        return self.page(Window(limit)).items

    def page(self, window: Window, where: AuditFilter | None = None) -> Page[AuditEntry]:
        """Newest first; only the entries ``where`` matches (all the scope sees without it)."""
        where = where or AuditFilter()
        query = self._scope.where(select(AuditRow), AuditRow.owner_tenant_id).where(*_audit_conditions(where))
        visible = self._scope.tenants()
        if where.actor is not None and visible is not None:  # a tenant names its own actors only (or the service)
            service = and_(AuditRow.actor == SYSTEM.name, AuditRow.actor_tenant_id.is_(None))
            query = query.where(or_(AuditRow.actor_tenant_id.in_(visible), service))
        rows = self._s.scalars(keyset(query, (AuditRow.id,), window, descending=True))
        return cut([convert_row(row, AuditEntry, {}) for row in rows], window, lambda entry: (entry.id,))


def _audit_conditions(where: AuditFilter) -> builtins.list[ColumnElement[bool]]:
    """The SQL of an :class:`AuditFilter`: one condition per field given."""
    equal = {AuditRow.actor: where.actor, AuditRow.action: where.action, AuditRow.outcome: where.outcome}
    found: builtins.list[ColumnElement[bool]] = [col == value for col, value in equal.items() if value is not None]
    if where.target is not None:
        found.append(func.lower(AuditRow.target).contains(where.target.lower(), autoescape=True))
    if where.since is not None:
        found.append(AuditRow.at >= where.since)
    if where.until is not None:
        found.append(AuditRow.at < where.until)
    return found


class TokenStore(CredentialStore[Token]):
    """API tokens, looked up by the hash of their secret (authentication comes before any scope)."""

    row = TokenRow
    record = Token
    noun = "token"

    def find_by_hash(self, token_hash: str) -> Token | None:
        row = self._s.scalar(select(TokenRow).where(TokenRow.token_hash == token_hash))
        return None if row is None else self._to(row)

    def list(self) -> builtins.list[Token]:
        query = self._scope.where(select(TokenRow), TokenRow.tenant_id).order_by(TokenRow.name)
        return [self._to(row) for row in self._s.scalars(query)]


class TenantStore(Store[Tenant]):
    """Tenants a scope sees: its own tenant and those beneath it (the system sees all)."""

    row = TenantRow
    record = Tenant
    tagged_as = "tenant"

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

    def visible(self) -> list[Tenant]:
        """Every tenant the scope sees, by name."""
        query = self._scope.where(select(TenantRow), TenantRow.id).order_by(TenantRow.name)
        return [self._to(row) for row in self._s.scalars(query)]

    def paths(self) -> dict[str, str]:
        """Tenant id -> its path as the scope sees it (``acme/dev``), from the scope's top."""
        seen = {t.id: t for t in self.visible()}  # the scope's top has no parent among them

        def path(tenant: Tenant) -> str:
            parent = seen.get(tenant.parent_id or "")
            return tenant.name if parent is None else f"{path(parent)}/{tenant.name}"

        return {tenant_id: path(tenant) for tenant_id, tenant in seen.items()}

    def find(self, name: str, parent_id: str | None) -> Tenant | None:
        """The tenant named ``name`` directly under ``parent_id`` (None: under the system), if visible."""
        parent = TenantRow.parent_id
        query = select(TenantRow).where(
            TenantRow.name == name, parent.is_(None) if parent_id is None else parent == parent_id
        )
        row = self._s.scalar(self._scope.where(query, TenantRow.id))
        return None if row is None else self._to(row)

    def resolve(self, ref: str) -> Tenant:
        """The tenant with id ``ref``; else the one at the path of names ``ref`` (``acme/dev``) from the top
        of the scope (the system's tenants, or the scope's own tenant); else the one visible tenant named
        ``ref``. Ambiguous or unknown: :class:`NotFound`."""
        row = self._s.get(TenantRow, ref)
        if row is not None and self._visible(row):
            return self._to(row)
        by_path = self._by_path(ref.split("/"))
        if by_path is not None:
            return by_path
        named = [t for t in self.visible() if t.name == ref]
        if len(named) == 1:
            return named[0]
        why = f"{len(named)} tenants are named {ref!r}: give its id or path" if named else f"no tenant {ref!r}"
        missing = NotFound(why, tenant=ref)
        name = ref.rsplit("/", 1)[-1]
        elsewhere = row is not None or self._s.scalar(select(TenantRow.id).where(TenantRow.name == name)) is not None
        raise missing.hiding() if elsewhere and not named else missing

    def _by_path(self, names: builtins.list[str]) -> Tenant | None:
        top = self._scope.tenant_id
        if top is None:
            found = self.find(names[0], None)
        else:
            own = self.get(top)
            found = own if own.name == names[0] else None
        for name in names[1:]:
            found = None if found is None else self.find(name, found.id)
        return found

    def id_of(self, ref: str | None) -> str | None:
        """The id of tenant ``ref`` (None stays None: no tenant named)."""
        return None if ref is None else self.resolve(ref).id

    def owner(self, ref: str | None) -> str | None:
        """The owner id an object created "in tenant ``ref``" gets: that tenant's id; without ``ref`` the
        scope's own (the system: None, or the caller's tenant)."""
        return self._scope.tenant_id if ref is None else self.resolve(ref).id

    def subtree_ids(self, tenant_id: str) -> frozenset[str]:
        """``tenant_id`` and the ids of every tenant beneath it."""
        self._row(tenant_id)
        return subtree(self._s, tenant_id)

    def insert(self, obj: Tenant) -> Tenant:
        tenant = super().insert(obj)
        self._scope.refresh()  # the new tenant is in the subtree of its parent
        return tenant

    def _check_placement(self, values: dict[str, Any]) -> None:
        """A tenant goes under a parent the scope sees (under the system only in the system's scope)."""
        if "parent_id" not in values:
            return
        if values["parent_id"] is not None:
            self._row(values["parent_id"])
        elif self._scope.tenant_id is not None:
            raise no_owner(None)


class SettingStore:
    """The settings document of the system (owner None) or of a tenant, one row per top-level key. An
    owner outside the scope is :class:`NotFound` (a tenant never sees the system's settings)."""

    def __init__(self, session: Session, scope: Scope) -> None:
        self._s = session
        self._scope = scope

    def _rows(self, owner_tenant_id: str | None) -> builtins.list[SettingRow]:
        if not self._scope.allows(owner_tenant_id):
            raise no_owner(owner_tenant_id)
        owner = SettingRow.owner_tenant_id
        query = select(SettingRow).where(owner.is_(None) if owner_tenant_id is None else owner == owner_tenant_id)
        return list(self._s.scalars(query))

    def document(self, owner_tenant_id: str | None) -> dict[str, Any]:
        return {row.key: row.value for row in sorted(self._rows(owner_tenant_id), key=lambda r: r.key)}

    def replace(self, owner_tenant_id: str | None, document: dict[str, Any]) -> None:
        """Make the owner's document ``document``: changed keys rewritten, missing ones removed."""
        rows = {row.key: row for row in self._rows(owner_tenant_id)}
        for key, row in rows.items():
            if key not in document:
                self._s.delete(row)
            elif row.value != document[key]:
                row.value = document[key]
        for key, value in document.items():
            if key not in rows:
                self._s.add(SettingRow(owner_tenant_id=owner_tenant_id, key=key, value=value))
        self._s.flush()


class Unit:
    """One unit of work: a store per table family over one transaction, seen through one scope."""

    def __init__(self, session: Session, tenant_id: str | None, seen: Generations) -> None:
        scope = Scope(session, tenant_id)
        self.scope_tenant_id = tenant_id
        self.seen = seen  # the tables' write counts, as the unit was opened and as of now (Database.unit)
        self._session = session
        self.volumes = VolumeStore(session, scope)
        self.vms = VmStore(session, scope)
        self.snapshots = SnapshotStore(session, scope)
        self.jobs = JobStore(session, scope)
        self.audit = AuditStore(session, scope)
        self.tokens = TokenStore(session, scope)
        self.tenants = TenantStore(session, scope)
        self.networks = NetworkStore(session, scope)
        self.tags = TagStore(session)
        self.settings = SettingStore(session, scope)
        self.profiles = ProfileStore(session, scope)
        self.assignments = AssignmentStore(session, scope)
        self.schedule = ScheduleStore(session)
        self.meta = MetaStore(session)
        self.users = UserStore(session, scope)
        self.web_sessions = WebSessionStore(session)

    def changed_anything(self) -> bool:
        """Whether this unit has changed rows, sent or not yet: what it reads may not be committed."""
        session = self._session
        return bool(session.info.get(WRITTEN) or session.new or session.dirty or session.deleted)
