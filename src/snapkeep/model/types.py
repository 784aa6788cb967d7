"""Frozen dataclasses that cross layers; ORM rows never leave the catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from snapkeep.model.principal import Role


class SnapshotKind(StrEnum):
    SYSTEM = "system"
    TENANT = "tenant"
    VM = "vm"
    VOLUME = "volume"


class SubjectType(StrEnum):
    """What a snapshot (or a manifest object) is of; each has its module in ``services/subjects``."""

    SYSTEM = "system"
    TENANT = "tenant"
    VM = "vm"
    VOLUME = "volume"
    NETWORK = "network"


class SnapshotStatus(StrEnum):
    CREATING = "creating"
    READY = "ready"
    HELD = "held"
    FAILED = "failed"
    DELETING = "deleting"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class QuiescePolicy(StrEnum):
    """What to do when a quiesce cannot happen (writers or the guest agent do not answer in time)."""

    REQUIRE = "require"  # fail the snapshot; nothing is recorded
    FALLBACK = "fallback"  # take it crash-consistent, marked quiesced=false with the reason


class RestoreMode(StrEnum):
    DATA = "data"
    DATA_AND_SETTINGS = "data_and_settings"


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    parent_id: str | None  # None: directly under the system
    description: str
    created_at: datetime


@dataclass(frozen=True)
class Network:
    """A virtual network as the catalog keeps it (``model.network.NetworkDef`` gives its rules)."""

    id: str
    name: str
    description: str
    owner_tenant_id: str | None
    cidr: str
    dhcp: bool
    created_at: datetime


@dataclass(frozen=True)
class Token:
    """An API token as the catalog keeps it: only the hash of its secret."""

    id: str
    name: str
    token_hash: str
    role: Role
    tenant_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class VolumeRecord:
    """A volume as the catalog keeps it; :class:`Volume` adds where its data lies."""

    id: str
    name: str
    description: str
    size_limit: int
    owner_tenant_id: str | None
    dataset: str
    settings: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Volume:
    id: str
    name: str
    description: str
    size_limit: int
    owner_tenant_id: str | None
    dataset: str
    path: str
    created_at: datetime
    settings: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class VmRecord:
    """A VM as the catalog keeps it (``spec`` is its :class:`~snapkeep.model.vmconfig.VMConfig` as a dict);
    :class:`VM` adds where its disks lie and what libvirt says of it."""

    id: str
    name: str
    description: str
    owner_tenant_id: str | None
    dataset: str
    domain_uuid: str
    domain_name: str  # libvirt's name for it: unique on the host, while VM names are unique per owner
    spec: dict[str, Any]
    quiesce_policy: QuiescePolicy
    agent_timeout: float
    created_at: datetime


@dataclass(frozen=True)
class VM:
    id: str
    name: str
    description: str
    dataset: str
    path: str
    domain_uuid: str
    domain: str  # the libvirt domain's name
    config: dict[str, Any]
    quiesce_policy: QuiescePolicy
    agent_timeout: float
    created_at: datetime
    state: str  # from libvirt at the time of the call
    agent_answers: bool | None = None  # asked only when showing one VM
    owner_tenant_id: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Space:
    exclusive_bytes: int
    shared_bytes: int


@dataclass(frozen=True)
class Snapshot:
    id: str
    kind: SnapshotKind
    subject_type: str
    subject_id: str
    subject_name: str
    owner_tenant_id: str | None
    name: str
    description: str
    created_at: datetime
    expires_at: datetime | None
    origin: str
    quiesce_requested: bool
    quiesced: bool
    quiesce_note: str | None
    quiesce_window_ms: float | None
    paused_window_ms: float | None
    immutable: bool
    unlocked_at: datetime | None
    private: bool
    status: SnapshotStatus
    status_reason: str | None
    exclusive_bytes: int | None
    shared_bytes: int | None
    period_id: str | None = None  # the profile period that took it; None: taken by hand (or a restore)


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    status: JobStatus
    progress: float
    message: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None
    owner_tenant_id: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: str
    actor_tenant_id: str | None = None  # the scope of who acted (None: the system's, or not identified)


@dataclass(frozen=True)
class FileEntry:
    """One entry of a browsed snapshot tree.

    ``name`` and ``target`` are the entry's bytes as Python holds file names (``os.fsdecode``: bytes that
    are not UTF-8 become surrogate escapes, so ``os.fsencode`` gives the exact bytes back). ``type`` is
    ``dir``, ``file``, ``symlink``, ``fifo``, ``socket``, ``char-device`` or ``block-device``.
    """

    name: str
    type: str
    size: int
    mode: int
    mtime: float
    target: str | None = None
