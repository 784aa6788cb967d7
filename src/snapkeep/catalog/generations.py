"""What a cache of catalog rows checks to know it is still valid: how many committed units have changed each
table (:class:`Generations`), as :meth:`snapkeep.catalog.db.Database.unit` counts them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

ANY_TABLE = "*"  # a change whose table is not known (a statement in SQL text): counts for every table
WRITTEN = "snapkeep_written"  # a session's info: the names of the tables its changes went to


class Generations:
    """How many committed units had changed each table, as a unit saw them: a cache of rows read from some
    tables is up to date while their counts now (:meth:`current`) are those it was read at. Rows read in a
    unit are at least as new as the counts when it was opened (:meth:`opened`, taken before its first query),
    so those are what they are kept with. This process is the catalog's only writer; a change sent through a
    raw connection would not be counted."""

    def __init__(self, opened: Counter[str], now: Callable[[], Counter[str]]) -> None:
        self._opened = opened
        self._now = now

    def opened(self, tables: Iterable[str]) -> tuple[int, ...]:
        return _of(self._opened, tables)

    def current(self, tables: Iterable[str]) -> tuple[int, ...]:
        return _of(self._now(), tables)


def _of(counts: Counter[str], tables: Iterable[str]) -> tuple[int, ...]:
    return (*(counts[name] for name in tables), counts[ANY_TABLE])
