"""Pages of a listing: at most ``limit`` rows after the key of the last row already seen (keyset paging).

A listing is ordered by a key that is unique per row (``(created_at, id)``, ``(name, id)``, ...). A page is
asked for as a :class:`Window` (the limit, and the key of the previous page's last row) and answered as a
:class:`Page` (its rows and the key to continue after, or None at the end). Rows inserted or deleted between
two pages never make another row appear twice or go missing, as an offset would: the next page starts
strictly after a key, wherever that key now lies. The interfaces turn keys into opaque cursors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")
Key = tuple[str | int | datetime, ...]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Window:
    """Which page: at most ``limit`` rows, those after ``after`` (None: from the start)."""

    limit: int = DEFAULT_LIMIT
    after: Key | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next: Key | None  # the key to continue after; None: this is the last page


def cut(rows: list[T], window: Window, key: Callable[[T], Key]) -> Page[T]:
    """The page of ``rows`` read with a limit of ``window.limit + 1``: the extra row says whether more follow."""
    if len(rows) <= window.limit:
        return Page(rows, None)
    items = rows[: window.limit]
    return Page(items, key(items[-1]))


def page_of(
    rows: Iterable[T], window: Window, key: Callable[[T], Key], order: Callable[[Key], Any] = lambda k: k
) -> Page[T]:
    """A page of a listing made in memory (the tree of tenants, a folder in a snapshot): the rows after
    ``window.after``, in the order of ``order(key(row))`` (by default the key itself)."""
    ordered = sorted(rows, key=lambda row: order(key(row)))
    if window.after is not None:
        after = order(window.after)
        ordered = [row for row in ordered if order(key(row)) > after]
    return cut(ordered[: window.limit + 1], window, key)
