"""What a cache of catalog rows checks to know it is still valid: how many committed units have changed each
table (:class:`Generations`), as :meth:`snapkeep.catalog.db.Database.unit` counts them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

ANY_TABLE = "*"  # a change whose table is not known (a statement in SQL text): counts for every table


class Generations:
    """How many committed units had changed each table when a unit was opened: a cache of rows read from some
    tables is still valid while their counts (:meth:`of`) are the same as when it was read. This process is
    the catalog's only writer; a change sent through a raw connection would not be counted."""

    def __init__(self, counts: Counter[str]) -> None:
        self._counts = counts

    def of(self, tables: Iterable[str]) -> tuple[int, ...]:
        return (*(self._counts[name] for name in tables), self._counts[ANY_TABLE])
