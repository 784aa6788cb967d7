"""Which VMs and volumes a system or tenant snapshot holds: all of them (a full snapshot), only those
carrying one of some tags, or all but those carrying one of some tags (partial snapshots).

A tag on a tenant counts for everything in its subtree, so ``--include-tag prod`` on tenant ``acme`` takes
all of acme's VMs and volumes. The structure around them — tenants, networks, settings — is always recorded,
so that whatever a partial snapshot holds can be restored into the place it came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from snapkeep.errors import InvalidInput
from snapkeep.model.tags import check_tag


@dataclass(frozen=True)
class Selection:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.include and self.exclude:
            raise InvalidInput("a partial snapshot either includes or excludes tags, not both")
        for tag in (*self.include, *self.exclude):
            check_tag(tag)

    @property
    def full(self) -> bool:
        return not self.include and not self.exclude

    def admits(self, tags: Iterable[str]) -> bool:
        """Whether an object with ``tags`` (its own and its tenants') belongs in the snapshot."""
        carried = set(tags)
        if self.include:
            return bool(carried & set(self.include))
        return not carried & set(self.exclude)

    def describe(self) -> str:
        if self.include:
            return "partial: only objects tagged " + ", ".join(self.include)
        if self.exclude:
            return "partial: all but objects tagged " + ", ".join(self.exclude)
        return "full"

    def as_json(self) -> dict[str, list[str]]:
        return {"include_tags": list(self.include), "exclude_tags": list(self.exclude)}

    @classmethod
    def from_json(cls, values: dict[str, list[str]] | None) -> Selection:
        values = values or {}
        return cls(tuple(values.get("include_tags", ())), tuple(values.get("exclude_tags", ())))


FULL = Selection()
