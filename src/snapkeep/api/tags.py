"""``/tags/{kind}/{ref}``: the tags of a VM, volume or tenant, added and removed one at a time."""

from __future__ import annotations

from fastapi import APIRouter, Path

from snapkeep.api.deps import Caller, Svc
from snapkeep.api.schemas import TagsPublic
from snapkeep.model.tags import TAG_PATTERN, TagKind

router = APIRouter(prefix="/api/v1/tags", tags=["tags"])
TagPath = Path(pattern=TAG_PATTERN, description="the tag")


@router.get("/{kind}/{ref}", response_model=TagsPublic)
def get_tags(svc: Svc, who: Caller, kind: TagKind, ref: str) -> TagsPublic:
    return TagsPublic(tags=list(svc.tags.of(who, kind, ref)))


@router.put("/{kind}/{ref}/{tag}", response_model=TagsPublic)
def add_tag(svc: Svc, who: Caller, kind: TagKind, ref: str, tag: str = TagPath) -> TagsPublic:
    """Idempotent; answers the object's tags."""
    return TagsPublic(tags=list(svc.tags.add(who, kind, ref, tag)))


@router.delete("/{kind}/{ref}/{tag}", response_model=TagsPublic)
def remove_tag(svc: Svc, who: Caller, kind: TagKind, ref: str, tag: str = TagPath) -> TagsPublic:
    """Idempotent; answers the object's tags."""
    return TagsPublic(tags=list(svc.tags.remove(who, kind, ref, tag)))
