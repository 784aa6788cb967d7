"""API request and response bodies (pydantic at the edge): Create/Update/Public per resource."""

from __future__ import annotations

import base64
import os
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, WithJsonSchema

from snapkeep.errors import InvalidInput, InvalidPath
from snapkeep.model import relpath
from snapkeep.model import settings as settings_rules
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.names import MAX_DESCRIPTION_LENGTH, MAX_NAME_LENGTH, NAME_PATTERN
from snapkeep.model.principal import Role
from snapkeep.model.selection import Selection
from snapkeep.model.tags import MAX_TAGS, TAG_PATTERN
from snapkeep.model.timespec import DURATION_PATTERN, MAX_EXPIRY_TEXT
from snapkeep.model.types import (
    VM,
    AuditEntry,
    FileEntry,
    Job,
    Network,
    QuiescePolicy,
    RestoreMode,
    Snapshot,
    SubjectType,
    Token,
    Volume,
)
from snapkeep.model.units import MAX_SIZE, MAX_SIZE_TEXT, MIN_VOLUME_SIZE, SIZE_PATTERN
from snapkeep.model.user import User
from snapkeep.services.contents import Contents
from snapkeep.services.passwords import MAX_LENGTH as MAX_PASSWORD_LENGTH
from snapkeep.services.passwords import MIN_LENGTH as MIN_PASSWORD_LENGTH
from snapkeep.services.subjects import RestoreOptions
from snapkeep.services.tenants import TenantView

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


def _size(minimum: int, description: str) -> object:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": minimum, "maximum": MAX_SIZE},
                {"type": "string", "maxLength": MAX_SIZE_TEXT, "pattern": SIZE_PATTERN},
            ],
            "description": description,
        }
    )


SIZE_TEXT = "bytes, or a size like 512M, 10G, 1.5T (binary units, ASCII digits, up to 99P)"
# a float only when whole: JSON Schema's integers include 5.0
Size = Annotated[StrictInt | StrictFloat | StrictStr, _size(1, SIZE_TEXT)]
VolumeSize = Annotated[
    StrictInt | StrictFloat | StrictStr, _size(MIN_VOLUME_SIZE, f"{SIZE_TEXT}; at least 1M for a volume")
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
Tag = Annotated[str, WithJsonSchema({"type": "string", "pattern": TAG_PATTERN, "description": "a tag"})]
Tags = Annotated[list[Tag], Field(default_factory=list, max_length=MAX_TAGS, description="tags to give it")]
TenantRef = Annotated[
    str | None,
    Field(
        default=None,
        max_length=4096,
        description="the owner: a tenant's id, path of names (acme/dev) or unique name; default the caller's own",
    ),
]


class RequestBody(BaseModel):
    """A request body: no unknown members, and JSON's types as the schema states them (``true`` is no
    number, ``0`` no boolean, ``"5"`` no integer); enums read from their JSON strings."""

    model_config = ConfigDict(extra="forbid", strict=True)


class VolumeCreate(RequestBody):
    name: Name
    size_limit: VolumeSize | None = Field(
        default=None,
        description="bytes, or a size like 10G; required where limits are enforced, else the pool's size",
    )
    description: Description = ""
    tenant: TenantRef
    tags: Tags


class VolumeUpdate(RequestBody):
    name: Name | None = None
    description: Description | None = None
    size_limit: VolumeSize | None = None
    settings: Settings | None = None


class VolumePublic(BaseModel):
    id: str
    name: str
    description: str
    size_limit: int
    limits_enforced: bool = Field(description="whether the pool holds the volume to its size limit")
    path: str | None = Field(description="where its files are on the host; shown to system admins only, else null")
    created_at: datetime
    settings: dict[str, Any]
    tenant_id: str | None = Field(default=None, description="the owner; null: the system")
    tags: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, v: Volume, limits_enforced: bool, host_paths: bool) -> VolumePublic:
        return cls(
            id=v.id,
            name=v.name,
            description=v.description,
            size_limit=v.size_limit,
            limits_enforced=limits_enforced,
            path=v.path if host_paths else None,
            created_at=v.created_at,
            settings=v.settings,
            tenant_id=v.owner_tenant_id,
            tags=list(v.tags),
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
    tenant: TenantRef
    networks: list[Annotated[str, Field(max_length=MAX_NAME_LENGTH)]] = Field(
        default_factory=list,
        max_length=8,
        description="one NIC on each of these networks (id, or name within the VM's owner) instead of nics",
    )
    tags: Tags


class DiskPublic(BaseModel):
    file: str
    path: str | None = Field(description="the disk file on the host; shown to system admins only, else null")
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
    boot: Literal["kernel", "firmware"] = Field(description="a kernel and initrd given directly, or firmware")
    kernel: str | None = Field(description="a host file; shown to system admins only, else null")
    initrd: str | None = Field(description="a host file; shown to system admins only, else null")
    cmdline: str | None
    quiesce_policy: str
    agent_timeout: float
    domain_uuid: str
    domain: str = Field(description="its libvirt domain's name (its title is the VM's name)")
    created_at: datetime
    tenant_id: str | None = Field(default=None, description="the owner; null: the system")
    networks: list[str | None] = Field(default_factory=list, description="each NIC's network id (null: none)")
    tags: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, vm: VM, host_paths: bool) -> VmPublic:
        """``host_paths``: show where its files lie on the host (admins of the system only)."""
        c = vm.config

        def host(path: str | None) -> str | None:
            return path if host_paths else None

        return cls(
            id=vm.id,
            name=vm.name,
            description=vm.description,
            state=vm.state,
            agent_answers=vm.agent_answers,
            vcpus=c["vcpus"],
            memory_mib=c["memory_mib"],
            disks=[DiskPublic(path=host(os.path.join(vm.path, d["file"])), **d) for d in c["disks"]],
            macs=[n["mac"] for n in c["nics"]],
            boot="kernel" if c.get("kernel") else "firmware",
            kernel=host(c.get("kernel")),
            initrd=host(c.get("initrd")),
            cmdline=c.get("cmdline"),
            quiesce_policy=vm.quiesce_policy,
            agent_timeout=vm.agent_timeout,
            domain_uuid=vm.domain_uuid,
            domain=vm.domain,
            created_at=vm.created_at,
            tenant_id=vm.owner_tenant_id,
            networks=[n.get("network_id") for n in c["nics"]],
            tags=list(vm.tags),
        )


class StopRequest(RequestBody):
    force: bool = False
    timeout: float = Field(default=60.0, gt=0, le=600)


class CloneRequest(RequestBody):
    name: Name
    preserve_macs: bool = False


class SnapshotCreate(RequestBody):
    """Exactly one subject: a ``volume`` or a ``vm`` (by id or name), the ``system`` (the caller's whole scope;
    with ``tenant``, that tenant's own system snapshot), or a ``tenant`` alone (a tenant snapshot, taken by
    its parent)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["volume"], "properties": {"volume": {"type": "string"}}},
                {"required": ["vm"], "properties": {"vm": {"type": "string"}}},
                {"required": ["system"], "properties": {"system": {"const": True}}},
                {"required": ["tenant"], "properties": {"tenant": {"type": "string"}}},
            ]
        },
    )
    volume: str | None = None
    vm: str | None = None
    system: bool = False
    tenant: str | None = None
    name: Name | None = Field(default=None, description="default: manual_<YYYYMMDD>_<HHMMSS> (UTC)")
    description: Description = ""
    expires: Expiry | None = None
    quiesce: bool = False
    quiesce_policy: QuiescePolicy | None = Field(
        default=None, strict=False, description="default: the subject's own setting"
    )
    immutable: bool = False
    private: bool | None = Field(default=None, description="system snapshots: hidden from tenants (default true)")
    include_tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS, description="partial: only these")
    exclude_tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS, description="partial: all but these")

    def subject(self) -> tuple[str, str]:
        """(subject type, ref) of the one subject the body names."""
        named = [("volume", self.volume), ("vm", self.vm)]
        given = [(kind, ref) for kind, ref in named if ref is not None]
        if self.system:
            given.append(("system", self.tenant or "system"))
        elif self.tenant is not None:
            given.append(("tenant", self.tenant))
        if len(given) != 1:
            raise InvalidInput(
                "say what to snapshot: exactly one of volume, vm, system (with or without tenant), tenant"
            )
        return given[0][0], str(given[0][1])

    def selection(self) -> Selection:
        return Selection(tuple(self.include_tags), tuple(self.exclude_tags))


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
    period_id: str | None = Field(description="the profile period that took it; null: taken by hand")
    overdue_seconds: float | None = Field(
        default=None, description="held: how long past its expiry its period's minimum count has kept it"
    )
    owner: str = Field(
        description="its owner scope as the caller sees it: system, tenant: and a tenant's path from the "
        "caller's top (tenant:acme/dev), or parent (a parent's system snapshot exposed to the caller)"
    )

    @classmethod
    def of(
        cls, snap: Snapshot, owner: str, deletable_at: datetime | None, overdue_seconds: float | None = None
    ) -> SnapshotPublic:
        values = dict(vars(snap))  # not asdict(): its deep copies cost more than the rest of a page of rows
        values.pop("owner_tenant_id")  # its id could name a parent the caller may not see: ``owner`` instead
        return cls(**values, owner=owner, deletable_at=deletable_at, overdue_seconds=overdue_seconds)


def _both(a: str, b: str) -> dict[str, Any]:
    return {"required": [a, b], "properties": {a: {"type": "string"}, b: {"type": "string"}}}


class RestoreRequest(RequestBody):
    """The snapshot's whole subject, or at most one member of a system or tenant snapshot."""

    model_config = ConfigDict(
        json_schema_extra={"not": {"anyOf": [_both("vm", "volume"), _both("vm", "tenant"), _both("volume", "tenant")]}},
    )
    as_new: bool = False
    name: Name | None = Field(default=None, description="name of the new volume, VM or tenant (with as_new)")
    mode: RestoreMode = Field(default=RestoreMode.DATA, strict=False)
    pre_restore: bool = True
    power_off: bool = Field(default=False, description="VM snapshots: power the VM off first if it runs")
    preserve_macs: bool = Field(default=False, description="VM snapshots restored as new: keep the MACs")
    vm: str | None = Field(default=None, description="system snapshots: restore only this VM (id or name)")
    volume: str | None = Field(default=None, description="system snapshots: restore only this volume")
    tenant: str | None = Field(default=None, description="system snapshots: restore only this tenant")

    def options(self) -> RestoreOptions:
        """The service's options: the member named (at most one), or the snapshot's whole subject."""
        members = [
            (SubjectType(t), ref) for t, ref in (("vm", self.vm), ("volume", self.volume), ("tenant", self.tenant))
        ]
        named = [(t, ref) for t, ref in members if ref is not None]
        if len(named) > 1:
            raise InvalidInput("restore one member at a time: at most one of vm, volume and tenant")
        member_type, member = named[0] if named else (None, None)
        values = self.model_dump(exclude={"vm", "volume", "tenant"})
        return RestoreOptions(**values, member_type=member_type, member=member)


class ImportRequest(RequestBody):
    """One VM (or volume) of a system snapshot, to become a snapshot of that VM (or volume)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [{"required": [member], "properties": {member: {"type": "string"}}} for member in ("vm", "volume")]
        },
    )
    vm: str | None = None
    volume: str | None = None
    name: Name | None = Field(default=None, description="the new snapshot's name (default: the system snapshot's)")

    def member(self) -> tuple[SubjectType, str]:
        if (self.vm is None) == (self.volume is None):
            raise InvalidInput("say what to import: exactly one of vm and volume")
        return (SubjectType.VM, self.vm) if self.vm is not None else (SubjectType.VOLUME, str(self.volume))


class ObjectPublic(BaseModel):
    """One object as a snapshot recorded it."""

    type: str
    id: str
    name: str
    owner_tenant_id: str | None
    config: dict[str, Any]
    datasets: list[str]


class TenantInSnapshot(BaseModel):
    id: str
    name: str
    parent_id: str | None
    path: str
    depth: int
    config: dict[str, Any]


class ContentsPublic(BaseModel):
    snapshot: SnapshotPublic
    selection: str = Field(description="full, or which tags a partial snapshot took")
    tenants: list[TenantInSnapshot]
    vms: list[ObjectPublic]
    volumes: list[ObjectPublic]
    networks: list[ObjectPublic]
    settings: list[ObjectPublic]
    users: list[ObjectPublic] = Field(description="the tenants' own users, as recorded (never a password hash)")
    profiles: list[ObjectPublic] = Field(description="the tenants' own snapshot profiles, with their periods")

    @classmethod
    def of(cls, contents: Contents, owner: str, deletable_at: datetime | None) -> ContentsPublic:
        def objects(items: list[ManifestObject]) -> list[ObjectPublic]:
            return [ObjectPublic(**item.model_dump()) for item in items]

        return cls(
            snapshot=SnapshotPublic.of(contents.snapshot, owner, deletable_at),
            selection=contents.selection,
            tenants=[TenantInSnapshot(**asdict(node)) for node in contents.tenants],
            vms=objects(contents.vms),
            volumes=objects(contents.volumes),
            networks=objects(contents.networks),
            settings=objects(contents.settings),
            users=objects(contents.users),
            profiles=objects(contents.profiles),
        )


def raw_path(text: str | None, b64: str | None, field: str) -> bytes | None:
    """A path given as text, or as base64 of its bytes (``<field>_b64``, for names that are not UTF-8)."""
    if text is not None and b64 is not None:
        raise InvalidPath(f"give {field} or {field}_b64, not both")
    if b64 is not None:
        return relpath.from_base64(b64)
    return relpath.from_text(text) if text is not None else None


class ExtractRequest(RequestBody):
    """The file or folder to copy (``path``, or ``path_b64`` for a name that is not UTF-8) and where to."""

    path: str | None = Field(default=None, description="relative to the volume's root, as text")
    path_b64: str | None = Field(default=None, description="the path's bytes in base64, instead of path")
    volume: str | None = Field(default=None, description="system snapshots: the volume to copy from")
    to_volume: str | None = None
    to_path: str | None = Field(default=None, description="default: the same path in the volume")
    to_path_b64: str | None = Field(default=None, description="the destination's bytes in base64, instead of to_path")
    replace: bool = Field(
        default=False,
        description="replace what is at a destination other than the file's own place (refused with name_clash "
        "otherwise); at its own place the restore always replaces, after a pre-restore snapshot",
    )
    pre_restore: bool = Field(
        default=True,
        description="take a pre-restore snapshot of the volume before replacing what is there (the undo)",
    )

    def source(self) -> bytes:
        raw = raw_path(self.path, self.path_b64, "path")
        if raw is None:
            raise InvalidPath("say what to extract: path (or path_b64)")
        return raw

    def dest(self) -> bytes | None:
        return raw_path(self.to_path, self.to_path_b64, "to_path")


FileType = Literal["dir", "file", "symlink", "fifo", "socket", "char-device", "block-device", "unknown"]


class FileEntryPublic(BaseModel):
    """One entry of a snapshot's folder. Names are bytes on disk: ``name`` shows them as text (bytes that are
    not UTF-8 as ``\\xNN`` escapes, so it is not always the exact name); ``name_b64`` holds the exact bytes in
    base64 when they are not UTF-8 (else null) — send those back as ``path_b64``. The same for ``target``.
    Special files (fifo, socket, devices) are listed, never opened, and not extracted."""

    name: str = Field(description="the name as text; bytes that are not UTF-8 appear as \\xNN escapes")
    name_b64: str | None = Field(description="base64 of the name's bytes when they are not UTF-8, else null")
    type: FileType
    size: int
    mode: int = Field(description="permission bits")
    mtime: float = Field(description="modification time, seconds since the epoch")
    target: str | None = Field(description="symlinks: where it points, as text (never followed)")
    target_b64: str | None = Field(description="base64 of the target's bytes when they are not UTF-8, else null")

    @classmethod
    def of(cls, e: FileEntry) -> FileEntryPublic:
        name, b64 = _text_and_b64(e.name)
        target, target_b64 = _text_and_b64(e.target) if e.target is not None else (None, None)
        return cls(
            name=name,
            name_b64=b64,
            type=e.type,  # one of FileType, from storage
            size=e.size,
            mode=e.mode,
            mtime=e.mtime,
            target=target,
            target_b64=target_b64,
        )


def _text_and_b64(name: str) -> tuple[str, str | None]:
    raw = os.fsencode(name)
    text = relpath.shown(raw)
    return text, (None if text.encode("utf-8") == raw else base64.b64encode(raw).decode())


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


class TenantCreate(RequestBody):
    name: Name
    description: Description = ""
    parent: TenantRef
    tags: Tags


class TenantUpdate(RequestBody):
    """Name and description; moving a tenant to another parent is not offered."""

    name: Name | None = None
    description: Description | None = None


class TenantPublic(BaseModel):
    id: str
    name: str
    description: str
    parent_id: str | None = Field(description="null: directly under the system")
    path: str = Field(description="names from the top the caller sees, e.g. acme/dev")
    depth: int
    online: bool = Field(description="whether any VM of its subtree runs")
    tags: list[str]
    created_at: datetime

    @classmethod
    def of(cls, view: TenantView) -> TenantPublic:
        t = view.tenant
        return cls(
            id=t.id,
            name=t.name,
            description=t.description,
            parent_id=t.parent_id,
            path=view.path,
            depth=view.depth,
            online=view.online,
            tags=list(view.tags),
            created_at=t.created_at,
        )


class TenantStopRequest(RequestBody):
    force: bool = Field(default=False, description="power off at once instead of a graceful shutdown")
    timeout: float = Field(default=60.0, gt=0, le=600, description="seconds each VM may take to shut down")


class NetworkCreate(RequestBody):
    name: Name
    cidr: str = Field(max_length=64, description="a private IPv4 network address, e.g. 10.0.0.0/24")
    dhcp: bool = True
    description: Description = ""
    tenant: TenantRef


class NetworkUpdate(RequestBody):
    name: Name | None = None
    cidr: str | None = Field(default=None, max_length=64)
    dhcp: bool | None = None
    description: Description | None = None


class NetworkPublic(BaseModel):
    id: str
    name: str
    description: str
    tenant_id: str | None = Field(description="the owner; null: the system")
    cidr: str
    dhcp: bool
    created_at: datetime

    @classmethod
    def of(cls, n: Network) -> NetworkPublic:
        return cls(
            id=n.id,
            name=n.name,
            description=n.description,
            tenant_id=n.owner_tenant_id,
            cidr=n.cidr,
            dhcp=n.dhcp,
            created_at=n.created_at,
        )


class TagsPublic(BaseModel):
    tags: list[str]


class TokenCreate(RequestBody):
    name: Name
    role: Role = Field(strict=False, description="at most the caller's own role")
    tenant: TenantRef


class TokenPublic(BaseModel):
    id: str
    name: str
    role: str
    tenant_id: str | None = Field(description="its scope; null: the system")
    created_at: datetime

    @classmethod
    def of(cls, t: Token) -> TokenPublic:
        return cls(id=t.id, name=t.name, role=t.role, tenant_id=t.tenant_id, created_at=t.created_at)


class TokenCreated(TokenPublic):
    secret: str = Field(description="the token itself: shown this once, only its hash is kept")


Password = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "minLength": MIN_PASSWORD_LENGTH, "maxLength": MAX_PASSWORD_LENGTH, "writeOnly": True}
    ),
]


class UserCreate(RequestBody):
    name: Name
    password: Password
    role: Role = Field(strict=False, description="admin, operator or viewer")
    tenant: TenantRef


class UserUpdate(RequestBody):
    """A new password and/or role; either ends the user's sessions."""

    password: Password | None = None
    role: Role | None = Field(default=None, strict=False, description="admin, operator or viewer")


class UserPublic(BaseModel):
    """A user as shown: never its password hash."""

    id: str
    name: str
    role: str
    tenant_id: str | None = Field(description="its scope; null: the system")
    created_at: datetime

    @classmethod
    def of(cls, u: User) -> UserPublic:
        return cls(id=u.id, name=u.name, role=u.role, tenant_id=u.tenant_id, created_at=u.created_at)


class ErrorBody(BaseModel):
    code: str
    message: str
    retryable: bool
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorBody
