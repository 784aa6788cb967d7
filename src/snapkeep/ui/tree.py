"""A flat tree listing (each parent before its children, as the services give tenants) as nested nodes,
for nested lists in a page."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Node(Generic[T]):
    item: T
    children: list[Node[T]] = field(default_factory=list)


def nest(items: Iterable[T], key: Callable[[T], str], parent: Callable[[T], str | None]) -> list[Node[T]]:
    """The tops, with their children below them; an item whose parent is not among ``items`` (on an earlier
    page, or outside the caller's scope) is a top."""
    nodes: dict[str, Node[T]] = {}
    tops: list[Node[T]] = []
    for item in items:
        node = nodes[key(item)] = Node(item)
        above = nodes.get(parent(item) or "")
        (above.children if above else tops).append(node)
    return tops
