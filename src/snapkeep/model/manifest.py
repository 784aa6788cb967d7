"""The snapshot manifest stored in the pool beside the data (docs/format.md describes it).

It names every object captured with its configuration and where its data is, so that the catalog can
be rebuilt from the pool alone. Readers reject a ``format_version`` they do not know.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from snapkeep.errors import NotFound

MANIFEST_VERSION = 1


class ManifestObject(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["volume", "vm", "tenant", "network", "settings"]
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


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int
    snapshot: ManifestSnapshot
    objects: list[ManifestObject]

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != MANIFEST_VERSION:
            raise ValueError(f"unknown manifest format_version {value}; this snapkeep reads {MANIFEST_VERSION}")
        return value

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    def object_of(self, object_type: str, object_id: str) -> ManifestObject:
        """The captured object ``object_type``/``object_id`` (a snapshot's subject, or one member of a
        system snapshot); :class:`NotFound` if the snapshot does not hold it."""
        for obj in self.objects:
            if obj.type == object_type and obj.id == object_id:
                return obj
        raise NotFound(f"snapshot {self.snapshot.name!r} holds no {object_type} {object_id}", id=object_id)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        return cls.model_validate_json(data)
