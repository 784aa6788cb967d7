"""Tags: short labels on VMs, volumes and tenants, for picking objects out (partial system snapshots).

A tag is 1-64 letters, digits and ``. _ : = -``, starting with a letter or digit: no spaces, commas or
slashes, so it reads the same in a CLI argument, a URL path segment and a comma-separated filter. Tags
compare exactly (``Prod`` and ``prod`` are two tags).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from snapkeep.errors import InvalidTag


class TagKind(StrEnum):
    """What can carry tags."""

    VM = "vm"
    VOLUME = "volume"
    TENANT = "tenant"


MAX_TAG_LENGTH = 64
MAX_TAGS = 32  # per object
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$"
_TAG = re.compile(TAG_PATTERN)


def check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise InvalidTag(
            f"tag {tag[:80]!r} is not 1-{MAX_TAG_LENGTH} letters, digits and . _ : = - starting with a letter or digit",
            tag=tag[:80],
        )
    return tag


def check_tags(tags: Iterable[str], existing: Iterable[str] = ()) -> tuple[str, ...]:
    """The object's tags once ``tags`` are added to ``existing``: checked, without repeats, sorted."""
    result = set(existing) | {check_tag(t) for t in tags}
    if len(result) > MAX_TAGS:
        raise InvalidTag(f"an object has at most {MAX_TAGS} tags; this would give it {len(result)}")
    return tuple(sorted(result))
