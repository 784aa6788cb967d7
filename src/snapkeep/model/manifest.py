"""The snapshot manifest stored in the pool beside the data (docs/format.md describes it).

It names every object captured with its configuration and where its data is, so that the catalog can
be rebuilt from the pool alone. Readers reject a ``format_version`` they do not know.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from snapkeep.errors import NotFound

MANIFEST_VERSION = 2  # 2: system and tenant snapshots record users and profiles (tenants', the system's)
READS = frozenset({1, MANIFEST_VERSION})  # a version-1 manifest is a version 2 without them
_SINCE_2 = ("user", "profile")


class ManifestObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["system", "volume", "vm", "tenant", "network", "settings", "user", "profile"]
    id: str
    name: str
    owner_tenant_id: str | None
    config: dict[str, Any]
    datasets: list[str]


class ManifestSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    kind: Literal["system", "tenant", "vm", "volume"]
    name: str
    description: str
    subject_type: str
    subject_id: str
    created_at: datetime
    expires_at: datetime | None
    origin: str
    quiesced: bool
    quiesce_note: str | None
    immutable: bool
    private: bool
    selection: dict[str, list[str]] | None = None  # system and tenant snapshots: which objects (model.selection)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int
    snapshot: ManifestSnapshot
    objects: list[ManifestObject]

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in READS:
            raise ValueError(f"unknown manifest format_version {value}; this snapkeep reads {sorted(READS)}")
        return value

    @classmethod
    def written(cls, snapshot: ManifestSnapshot, objects: list[ManifestObject]) -> Manifest:
        """A manifest as this snapkeep writes it: version 1 unless it records users or profiles, so that an
        older snapkeep still reads every snapshot it could have taken itself."""
        version = MANIFEST_VERSION if any(o.type in _SINCE_2 for o in objects) else 1
        return cls(format_version=version, snapshot=snapshot, objects=objects)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    def object_of(self, object_type: str, object_id: str) -> ManifestObject:
        """The captured object ``object_type``/``object_id`` (a snapshot's subject, or one member of a
        system snapshot); :class:`NotFound` if the snapshot does not hold it."""
        for obj in self.objects:
            if obj.type == object_type and obj.id == object_id:
                return obj
        raise NotFound(f"snapshot {self.snapshot.name!r} holds no {object_type} {object_id}", id=object_id)

    def visible_to(self, tenant_id: str | None) -> list[ManifestObject]:
        """The objects a caller scoped to ``tenant_id`` may see (all for the system): those owned within
        that tenant's subtree *as the snapshot recorded it*, so a sub-tenant deleted since still counts."""
        if tenant_id is None:
            return list(self.objects)
        parents = {o.id: o.owner_tenant_id for o in self.objects if o.type == "tenant"}

        def within(owner: str | None) -> bool:
            seen: set[str] = set()
            while owner is not None and owner not in seen:
                if owner == tenant_id:
                    return True
                seen.add(owner)
                owner = parents.get(owner)
            return False

        return [o for o in self.objects if within(o.id if o.type in ("tenant", "system") else o.owner_tenant_id)]

    def member(self, object_type: str, ref: str, tenant_id: str | None) -> ManifestObject:
        """The object of ``object_type`` with id or name ``ref`` among those visible to ``tenant_id``
        (by name: the one owned by the caller's own tenant first); :class:`NotFound` otherwise."""
        candidates = [o for o in self.visible_to(tenant_id) if o.type == object_type]
        for obj in candidates:
            if obj.id == ref:
                return obj
        named = sorted((o for o in candidates if o.name == ref), key=lambda o: (o.owner_tenant_id != tenant_id, o.id))
        if not named:
            missing = NotFound(f"snapshot {self.snapshot.name!r} holds no {object_type} {ref!r}", ref=ref)
            elsewhere = any(o.type == object_type and ref in (o.id, o.name) for o in self.objects)
            raise missing.hiding() if elsewhere else missing  # outside the caller's part: a refusal
        return named[0]

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        return cls.model_validate_json(data)
