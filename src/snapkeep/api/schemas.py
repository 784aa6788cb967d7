"""API request and response bodies (pydantic at the edge): Create/Update/Public per resource."""

from __future__ import annotations

import os
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, WithJsonSchema

from snapkeep.errors import InvalidInput
from snapkeep.model import settings as settings_rules
from snapkeep.model.names import MAX_DESCRIPTION_LENGTH, MAX_NAME_LENGTH, NAME_PATTERN
from snapkeep.model.timespec import DURATION_PATTERN, MAX_EXPIRY_TEXT
from snapkeep.model.types import VM, AuditEntry, FileEntry, Job, QuiescePolicy, RestoreMode, Snapshot, Volume
from snapkeep.model.units import MAX_SIZE, MAX_SIZE_TEXT, SIZE_PATTERN

# The model's rules, written into the OpenAPI document so that it says what the service accepts. They are
# enforced where they live (model/ and the services, with their own error codes and messages), not here.
Name = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME_LENGTH,
            "pattern": NAME_PATTERN,
            "description": "letters, digits, spaces and . _ ( ) + : @ -; starts with a letter or digit, no '..'",
        }
    ),
]
Description = Annotated[str, WithJsonSchema({"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH})]
Size = Annotated[
    StrictInt | StrictFloat | StrictStr,  # a float only when whole: JSON Schema's integers include 5.0
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": MAX_SIZE},
                {"type": "string", "maxLength": MAX_SIZE_TEXT, "pattern": SIZE_PATTERN},
            ],
            "description": "bytes, or a size like 512M, 10G, 1.5T (binary units, ASCII digits, up to 99P)",
        }
    ),
]
Expiry = Annotated[
    str,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "string", "format": "date-time", "maxLength": MAX_EXPIRY_TEXT},
            ],
            "description": "'never' (the default), a duration like 30m, 12h, 7d, 2w, 1y (up to 999 years), "
            "or an ISO 8601 date-time in the future (before the year 10000)",
        }
    ),
]
Settings = Annotated[dict[str, Any], Field(description=settings_rules.SCHEMA_DESCRIPTION)]


class RequestBody(BaseModel):
    """A request body: no unknown members, and JSON's types as the schema states them (``true`` is no
    number, ``0`` no boolean, ``"5"`` no integer); enums read from their JSON strings."""

    model_config = ConfigDict(extra="forbid", strict=True)


class VolumeCreate(RequestBody):
    name: Name
    size_limit: Size
    description: Description = ""


class VolumeUpdate(RequestBody):
    name: Name | None = None
    description: Description | None = None
    size_limit: Size | None = None
    settings: Settings | None = None


class VolumePublic(BaseModel):
    id: str
    name: str
    description: str
    size_limit: int
    path: str
    created_at: datetime
    settings: dict[str, Any]

    @classmethod
    def of(cls, v: Volume) -> VolumePublic:
        return cls(
            id=v.id,
            name=v.name,
            description=v.description,
            size_limit=v.size_limit,
            path=v.path,
            created_at=v.created_at,
            settings=v.settings,
        )


class VmCreate(RequestBody):
    name: Name
    vcpus: int = Field(default=1, ge=1, le=64)
    memory: Size = "256M"
    disks: list[Size] = Field(default_factory=lambda: list[int | float | str](["1G"]), min_length=1, max_length=16)
    kernel: str | None = Field(default=None, max_length=4096, description="a file on the host (admins only)")
    initrd: str | None = Field(default=None, max_length=4096, description="a file on the host (admins only)")
    cmdline: str | None = Field(default=None, max_length=2048)
    nics: int = Field(default=1, ge=0, le=8)
    description: Description = ""
    quiesce_policy: QuiescePolicy = Field(default=QuiescePolicy.FALLBACK, strict=False)
    agent_timeout: float = Field(default=10.0, gt=0, le=300)


class DiskPublic(BaseModel):
    file: str
    path: str
    size: int
    serial: str
    target: str


class VmPublic(BaseModel):
    id: str
    name: str
    description: str
    state: str
    agent_answers: bool | None
    vcpus: int
    memory_mib: int
    disks: list[DiskPublic]
    macs: list[str]
    kernel: str | None
    initrd: str | None
    cmdline: str | None
    quiesce_policy: str
    agent_timeout: float
    domain_uuid: str
    created_at: datetime

    @classmethod
    def of(cls, vm: VM) -> VmPublic:
        c = vm.config
        return cls(
            id=vm.id,
            name=vm.name,
            description=vm.description,
            state=vm.state,
            agent_answers=vm.agent_answers,
            vcpus=c["vcpus"],
            memory_mib=c["memory_mib"],
            disks=[DiskPublic(path=os.path.join(vm.path, d["file"]), **d) for d in c["disks"]],
            macs=[n["mac"] for n in c["nics"]],
            kernel=c.get("kernel"),
            initrd=c.get("initrd"),
            cmdline=c.get("cmdline"),
            quiesce_policy=vm.quiesce_policy,
            agent_timeout=vm.agent_timeout,
            domain_uuid=vm.domain_uuid,
            created_at=vm.created_at,
        )


class StopRequest(RequestBody):
    force: bool = False
    timeout: float = Field(default=60.0, gt=0, le=600)


class CloneRequest(RequestBody):
    name: Name
    preserve_macs: bool = False


class SnapshotCreate(RequestBody):
    """Exactly one subject: ``volume`` (or, with the VM slice, ``vm``), by id or name."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": [subject], "properties": {subject: {"type": "string"}}} for subject in ("volume", "vm")
            ]
        },
    )
    volume: str | None = None
    vm: str | None = None
    name: Name
    description: Description = ""
    expires: Expiry | None = None
    quiesce: bool = False
    quiesce_policy: QuiescePolicy | None = Field(
        default=None, strict=False, description="default: the subject's own setting"
    )
    immutable: bool = False

    def subject(self) -> tuple[str, str]:
        if (self.volume is None) == (self.vm is None):
            raise InvalidInput("say what to snapshot: exactly one of volume and vm")
        return ("volume", self.volume) if self.volume is not None else ("vm", str(self.vm))


class SnapshotPublic(BaseModel):
    id: str
    kind: str
    subject_type: str
    subject_id: str
    subject_name: str
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
    deletable_at: datetime | None
    private: bool
    status: str
    status_reason: str | None
    exclusive_bytes: int | None
    shared_bytes: int | None

    @classmethod
    def of(cls, snap: Snapshot, deletable_at: datetime | None) -> SnapshotPublic:
        values = asdict(snap)
        values.pop("owner_tenant_id")
        return cls(**values, deletable_at=deletable_at)


class RestoreRequest(RequestBody):
    as_new: bool = False
    name: Name | None = Field(default=None, description="name of the new volume (with as_new)")
    mode: RestoreMode = Field(default=RestoreMode.DATA, strict=False)
    pre_restore: bool = True
    power_off: bool = Field(default=False, description="VM snapshots: power the VM off first if it runs")
    preserve_macs: bool = Field(default=False, description="VM snapshots restored as new: keep the MACs")


class ExtractRequest(RequestBody):
    path: str = Field(min_length=1, description="a file or folder in the snapshot, relative to its root")
    to_volume: str | None = None
    to_path: str | None = None


class FileEntryPublic(BaseModel):
    name: str
    type: str
    size: int
    mode: int
    mtime: float
    target: str | None

    @classmethod
    def of(cls, e: FileEntry) -> FileEntryPublic:
        return cls(**asdict(e))


class JobPublic(BaseModel):
    id: str
    kind: str
    status: str
    progress: float
    message: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        return cls(**asdict(job))


class AuditPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    detail: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditPublic:
        return cls(**asdict(e))


class ErrorBody(BaseModel):
    code: str
    message: str
    retryable: bool
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody
