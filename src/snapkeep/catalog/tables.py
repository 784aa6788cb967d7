"""ORM tables of the catalog. These classes never leave ``snapkeep.catalog``.

Every owned object has ``owner_tenant_id`` (NULL = the system itself) so that tenants, VMs, networks and
profiles slot in beside volumes without reshaping anything. Snapshots name their subject generically
(``subject_type`` + ``subject_id``) for the same reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def unique_for_the_system(table: str, column: str, owner: str = "owner_tenant_id") -> Index:
    """``column`` unique among the rows the system owns (``owner`` NULL): a UNIQUE constraint over (owner,
    column) holds for tenants only, NULLs being distinct in SQL, so two system objects of one name created
    at once would both land. A partial index, the same on SQLite and PostgreSQL (migration 0011)."""
    where = text(f"{owner} IS NULL")
    return Index(f"uq_{table}_system_{column}", column, unique=True, sqlite_where=where, postgresql_where=where)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class TenantRow(Base):
    __tablename__ = "tenants"
    __table_args__ = (UniqueConstraint("parent_id", "name"), unique_for_the_system("tenants", "name", "parent_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class SettingRow(Base):
    """System (owner NULL) and tenant settings as key/value documents."""

    __tablename__ = "settings"
    __table_args__ = (UniqueConstraint("owner_tenant_id", "key"), unique_for_the_system("settings", "key"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[dict[str, Any]]


class NetworkRow(Base):
    """A virtual network definition (``model.network.NetworkDef``), owned like volumes and VMs."""

    __tablename__ = "networks"
    __table_args__ = (UniqueConstraint("owner_tenant_id", "name"), unique_for_the_system("networks", "name"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    cidr: Mapped[str] = mapped_column(String(64))
    dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]


class TagRow(Base):
    """One tag on one object (``object_type`` + ``object_id``: a VM, a volume or a tenant).

    A table rather than a JSON column on each object: "every object tagged X" (partial system snapshots)
    is one indexed query across kinds, the same SQL on SQLite and PostgreSQL, and the objects' own rows
    and records stay as they are.
    """

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("object_type", "object_id", "tag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(36), index=True)
    tag: Mapped[str] = mapped_column(String(64), index=True)


class VolumeRow(Base):
    __tablename__ = "volumes"
    __table_args__ = (UniqueConstraint("owner_tenant_id", "name"), unique_for_the_system("volumes", "name"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    size_limit: Mapped[int] = mapped_column(BigInteger)
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    dataset: Mapped[str] = mapped_column(String(128), unique=True)
    settings: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class VmRow(Base):
    """A VM snapkeep manages: its libvirt domain is defined from ``spec`` (disks are files in ``dataset``)."""

    __tablename__ = "vms"
    __table_args__ = (UniqueConstraint("owner_tenant_id", "name"), unique_for_the_system("vms", "name"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    dataset: Mapped[str] = mapped_column(String(128), unique=True)
    domain_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    domain_name: Mapped[str] = mapped_column(String(128), unique=True)  # names are per owner, domains per host
    spec: Mapped[dict[str, Any]]
    quiesce_policy: Mapped[str] = mapped_column(String(16), default="fallback")
    agent_timeout: Mapped[float] = mapped_column(Float, default=10.0)
    created_at: Mapped[datetime]


class SnapshotRow(Base):
    """Indexed for what schedules make large: pages in (created_at, id) order, of one subject or all; the
    expiry sweep (ready rows by expiry); the rows one profile period took; the dashboard's tally by status
    and measured space, read off covering indexes (the system's, and a tenant's by owner and exposure)."""

    __tablename__ = "snapshots"
    __table_args__ = (
        UniqueConstraint("subject_type", "subject_id", "name"),
        Index("ix_snapshots_created_at_id", "created_at", "id"),
        Index("ix_snapshots_subject_created_at_id", "subject_type", "subject_id", "created_at", "id"),
        Index("ix_snapshots_status_expires_at", "status", "expires_at"),
        Index("ix_snapshots_period_created_at_id", "period_id", "created_at", "id"),
        # a period's newest snapshots of one subject (the hold rule), whatever the period's other subjects
        Index("ix_snapshots_subject_period_created_at", "subject_id", "period_id", "created_at", "id"),
        Index("ix_snapshots_status_exclusive_bytes", "status", "exclusive_bytes"),
        # a tenant's own, and its parent's exposed system snapshots (not private), without the rest
        Index("ix_snapshots_scope_tally", "owner_tenant_id", "kind", "private", "status", "exclusive_bytes"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    subject_name: Mapped[str] = mapped_column(String(128))
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    origin: Mapped[str] = mapped_column(String(128), default="manual")
    quiesce_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    quiesced: Mapped[bool] = mapped_column(Boolean, default=False)
    quiesce_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    quiesce_window_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    paused_window_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    immutable: Mapped[bool] = mapped_column(Boolean, default=False)
    unlocked_at: Mapped[datetime | None]
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    exclusive_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    shared_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    period_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # NULL: not scheduled


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_created_at_id", "created_at", "id"),)  # pages, newest first

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class AuditRow(Base):
    __tablename__ = "audit_log"
    # the log's filters that match exactly, each read newest first (by id) from its index
    __table_args__ = (
        Index("ix_audit_log_actor_id", "actor", "id"),
        Index("ix_audit_log_action_id", "action", "id"),
        Index("ix_audit_log_outcome_id", "outcome", "id"),
        Index("ix_audit_log_owner_id", "owner_tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(256))
    outcome: Mapped[str] = mapped_column(String(16))
    # the tenant whose subtree the entry concerns (None: the system's), and the scope of who acted; no
    # foreign keys: the log outlives tenants (a deleted tenant's entries are handed to its parent)
    owner_tenant_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    actor_tenant_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class TokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    created_at: Mapped[datetime]


class ProfileRow(Base):
    """A snapshot profile (``model.profile.Profile``); its periods are :class:`PeriodRow`."""

    __tablename__ = "profiles"
    __table_args__ = (UniqueConstraint("owner_tenant_id", "name"), unique_for_the_system("profiles", "name"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    timezone: Mapped[str] = mapped_column(String(64))
    ignore_warning: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class PeriodRow(Base):
    """One period of a profile. Its rule (frequency, when, retention, how it takes) is one JSON document:
    nothing queries inside it, and a new field needs no migration."""

    __tablename__ = "profile_periods"
    __table_args__ = (UniqueConstraint("profile_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    rule: Mapped[dict[str, Any]]


class AssignmentRow(Base):
    """A profile assigned to a subject; a subject has at most one profile."""

    __tablename__ = "profile_assignments"
    __table_args__ = (UniqueConstraint("subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    profile_id: Mapped[str] = mapped_column(ForeignKey("profiles.id"), index=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(36))
    subject_name: Mapped[str] = mapped_column(String(128))
    owner_tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    created_at: Mapped[datetime]


class ScheduleRow(Base):
    """The scheduler's state of one period on one subject: which slot it waits for, when to act next (the
    slot itself, or a retry after a failure), and whether a take is running. Due work is one indexed query
    on ``next_due``, so finding it costs what is due, not what is scheduled."""

    __tablename__ = "schedule"
    # subject first: "does this subject still have this period" (the sweep's hold rule) reads this index
    __table_args__ = (UniqueConstraint("subject_id", "period_id", "subject_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period_id: Mapped[str] = mapped_column(ForeignKey("profile_periods.id", ondelete="CASCADE"), index=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    slot: Mapped[datetime | None]  # None: the period will not fire again (a "once" that has run)
    next_due: Mapped[datetime | None] = mapped_column(index=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_run: Mapped[datetime | None]
    last_snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    running_since: Mapped[datetime | None]


class MetaRow(Base):
    """Facts about the catalog itself, e.g. when the installed profiles were installed (once: an operator
    who deletes one does not get it back at the next start)."""

    __tablename__ = "catalog_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class UserRow(Base):
    """A person who logs in to the web UI: role and scope as an API token has them; the password as argon2id."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    created_at: Mapped[datetime]


class WebSessionRow(Base):
    """A logged-in browser: the SHA-256 of its cookie's secret, the CSRF token of its forms, and when it ends."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
