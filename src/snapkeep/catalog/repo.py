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


Owned = TypeVar("Owned", VolumeRow, VmRow)
_WHAT = {VolumeRow: "volume", VmRow: "VM"}


def get_owned_row(s: Session, model: type[Owned], row_id: str) -> Owned:
    row = s.get(model, row_id)
    if row is None:
        raise NotFound(f"no {_WHAT[model]} with id {row_id}", id=row_id)
    return row


def find_owned_row(s: Session, model: type[Owned], name: str, owner_tenant_id: str | None) -> Owned | None:
    """An object by name within its owner (the system when ``owner_tenant_id`` is None)."""
    owner = model.owner_tenant_id
    return s.scalar(
        select(model).where(
            model.name == name, owner.is_(None) if owner_tenant_id is None else owner == owner_tenant_id
        )
    )


def resolve_owned_row(s: Session, model: type[Owned], ref: str) -> Owned:
    """An object by id or, failing that, by name (in the system scope)."""
    row = s.get(model, ref) or find_owned_row(s, model, ref, None)
    if row is None:
        raise NotFound(f"no {_WHAT[model]} named or with id {ref!r}", ref=ref)
    return row


def list_owned_rows(s: Session, model: type[Owned]) -> Sequence[Owned]:
    return s.scalars(select(model).order_by(model.name)).all()


def get_volume_row(s: Session, volume_id: str) -> VolumeRow:
    return get_owned_row(s, VolumeRow, volume_id)


def find_volume_row(s: Session, name: str, owner_tenant_id: str | None) -> VolumeRow | None:
    return find_owned_row(s, VolumeRow, name, owner_tenant_id)


def resolve_volume_row(s: Session, ref: str) -> VolumeRow:
    return resolve_owned_row(s, VolumeRow, ref)


def list_volume_rows(s: Session) -> Sequence[VolumeRow]:
    return list_owned_rows(s, VolumeRow)


# --- VMs ----------------------------------------------------------------------------------------------
def get_vm_row(s: Session, vm_id: str) -> VmRow:
    return get_owned_row(s, VmRow, vm_id)


def find_vm_row(s: Session, name: str, owner_tenant_id: str | None) -> VmRow | None:
    return find_owned_row(s, VmRow, name, owner_tenant_id)


def resolve_vm_row(s: Session, ref: str) -> VmRow:
    return resolve_owned_row(s, VmRow, ref)


def list_vm_rows(s: Session) -> Sequence[VmRow]:
    return list_owned_rows(s, VmRow)


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
