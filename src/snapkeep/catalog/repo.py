"""Catalog functions: read and write rows inside the caller's session and return snapkeep types.

They flush but never commit: the service that calls them owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from snapkeep.catalog.tables import AuditRow, JobRow, SnapshotRow, TokenRow, VmRow, VolumeRow
from snapkeep.errors import NotFound
from snapkeep.model.types import (
    AuditEntry,
    Job,
    JobStatus,
    Snapshot,
    SnapshotKind,
    SnapshotStatus,
    Volume,
)

T = TypeVar("T")


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _convert(row: Any, cls: type[T], **overrides: Any) -> T:
    values = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in overrides:
            values[f.name] = overrides[f.name]
            continue
        value = getattr(row, f.name)
        values[f.name] = as_utc(value) if isinstance(value, datetime) else value
    return cls(**values)


# --- volumes -----------------------------------------------------------------------------------------
def volume_from_row(row: VolumeRow, path: str) -> Volume:
    return _convert(row, Volume, path=path, settings=dict(row.settings))


def get_volume_row(s: Session, volume_id: str) -> VolumeRow:
    row = s.get(VolumeRow, volume_id)
    if row is None:
        raise NotFound(f"no volume with id {volume_id}", volume=volume_id)
    return row


def find_volume_row(s: Session, name: str, owner_tenant_id: str | None) -> VolumeRow | None:
    owner = VolumeRow.owner_tenant_id
    return s.scalar(
        select(VolumeRow).where(
            VolumeRow.name == name, owner.is_(None) if owner_tenant_id is None else owner == owner_tenant_id
        )
    )


def resolve_volume_row(s: Session, ref: str) -> VolumeRow:
    """A volume by id or, failing that, by name (in the system scope)."""
    row = s.get(VolumeRow, ref) or find_volume_row(s, ref, None)
    if row is None:
        raise NotFound(f"no volume named or with id {ref!r}", volume=ref)
    return row


def list_volume_rows(s: Session) -> Sequence[VolumeRow]:
    return s.scalars(select(VolumeRow).order_by(VolumeRow.name)).all()


# --- VMs ----------------------------------------------------------------------------------------------
def get_vm_row(s: Session, vm_id: str) -> VmRow:
    row = s.get(VmRow, vm_id)
    if row is None:
        raise NotFound(f"no VM with id {vm_id}", vm=vm_id)
    return row


def find_vm_row(s: Session, name: str, owner_tenant_id: str | None) -> VmRow | None:
    owner = VmRow.owner_tenant_id
    return s.scalar(
        select(VmRow).where(
            VmRow.name == name, owner.is_(None) if owner_tenant_id is None else owner == owner_tenant_id
        )
    )


def resolve_vm_row(s: Session, ref: str) -> VmRow:
    """A VM by id or, failing that, by name (in the system scope)."""
    row = s.get(VmRow, ref) or find_vm_row(s, ref, None)
    if row is None:
        raise NotFound(f"no VM named or with id {ref!r}", vm=ref)
    return row


def list_vm_rows(s: Session) -> Sequence[VmRow]:
    return s.scalars(select(VmRow).order_by(VmRow.name)).all()


# --- snapshots ---------------------------------------------------------------------------------------
def snapshot_from_row(row: SnapshotRow) -> Snapshot:
    return _convert(row, Snapshot, kind=SnapshotKind(row.kind), status=SnapshotStatus(row.status))


def get_snapshot_row(s: Session, snap_id: str) -> SnapshotRow:
    row = s.get(SnapshotRow, snap_id)
    if row is None:
        raise NotFound(f"no snapshot with id {snap_id}", snapshot=snap_id)
    return row


def find_snapshot_row(s: Session, subject_type: str, subject_id: str, name: str) -> SnapshotRow | None:
    return s.scalar(
        select(SnapshotRow).where(
            SnapshotRow.subject_type == subject_type,
            SnapshotRow.subject_id == subject_id,
            SnapshotRow.name == name,
        )
    )


def list_snapshot_rows(
    s: Session, subject_type: str | None = None, subject_id: str | None = None
) -> Sequence[SnapshotRow]:
    query = select(SnapshotRow).order_by(SnapshotRow.created_at, SnapshotRow.name)
    if subject_type is not None:
        query = query.where(SnapshotRow.subject_type == subject_type)
    if subject_id is not None:
        query = query.where(SnapshotRow.subject_id == subject_id)
    return s.scalars(query).all()


def snapshot_rows_in_status(s: Session, *statuses: SnapshotStatus) -> Sequence[SnapshotRow]:
    return s.scalars(select(SnapshotRow).where(SnapshotRow.status.in_([st.value for st in statuses]))).all()


# --- jobs --------------------------------------------------------------------------------------------
def job_from_row(row: JobRow) -> Job:
    return _convert(row, Job, status=JobStatus(row.status))


def get_job_row(s: Session, job_id: str) -> JobRow:
    row = s.get(JobRow, job_id)
    if row is None:
        raise NotFound(f"no job with id {job_id}", job=job_id)
    return row


def list_job_rows(s: Session, limit: int = 100) -> Sequence[JobRow]:
    return s.scalars(select(JobRow).order_by(JobRow.created_at.desc()).limit(limit)).all()


def job_rows_in_status(s: Session, *statuses: JobStatus) -> Sequence[JobRow]:
    return s.scalars(select(JobRow).where(JobRow.status.in_([st.value for st in statuses]))).all()


# --- audit and tokens --------------------------------------------------------------------------------
def add_audit(s: Session, at: datetime, actor: str, action: str, target: str, outcome: str, detail: str) -> None:
    s.add(AuditRow(at=at, actor=actor, action=action, target=target, outcome=outcome, detail=detail))
    s.flush()


def list_audit(s: Session, limit: int = 200) -> list[AuditEntry]:
    rows = s.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)).all()
    return [_convert(row, AuditEntry) for row in rows]


def find_token_row(s: Session, token_hash: str) -> TokenRow | None:
    return s.scalar(select(TokenRow).where(TokenRow.token_hash == token_hash))


def find_token_by_name(s: Session, name: str) -> TokenRow | None:
    return s.scalar(select(TokenRow).where(TokenRow.name == name))
