"""Whether the pool has room for a restore before it starts, so that one that cannot fit is refused with
nothing changed instead of failing half-way (SPEC §3: every restore checks a free space estimate first).

Restores of whole datasets (:mod:`snapkeep.services.restores`) and of single files
(:mod:`snapkeep.services.files`) judge their own estimates by the same rule: the pool's free bytes now,
less a margin kept free for the service's own catalog and logs, which live there too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from snapkeep.errors import PoolFull
from snapkeep.model.units import MiB, format_size

# What one dataset cloned may cost the pool: clones share their data with the snapshot (btrfs subvolume
# snapshots, XFS reflinks), so only metadata is new — a subvolume's trees, or the extent maps and reference
# counts of a reflinked image, which grow with how fragmented it is. A generous allowance, not a measure.
CLONE_ALLOWANCE = 16 * MiB


@dataclass(frozen=True)
class SpaceRule:
    """How a restore's need for space is judged before it starts: the pool's free bytes now, and what
    must stay free beyond the restore's estimate."""

    free: Callable[[], int]
    min_free: int

    def require(self, estimate: int, what: str, made_of: str) -> None:
        """Refused (:class:`PoolFull`, nothing changed) unless the pool has ``estimate`` bytes free beyond
        the margin; ``what`` needs them, ``made_of`` says how the estimate was reached."""
        needed = estimate + self.min_free
        free = self.free()
        if free < needed:
            raise PoolFull(
                f"the pool has {format_size(free)} free; {what} needs an estimated {format_size(needed)} "
                f"({made_of}, and {format_size(self.min_free)} kept free): free space first, e.g. delete old "
                "snapshots",
                free=free,
                needed=needed,
            )
