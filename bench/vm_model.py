"""What the VM benchmark records: operation names, per-size results, targets and their verdicts.

Samples and their statistics are :class:`bench.model.OpResult`, shared with the volume benchmark, so both
result files read the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.datagen import human_size
from bench.model import (
    BTRFS_SNAPSHOT_CLI,
    BTRFSUTIL_SNAPSHOT,
    CP_REFLINK,
    FLAT_NOISE_MS,
    FLAT_RATIO,
    RESTORE_NEW,
    RESTORE_OVER,
    OpResult,
    median,
)
from bench.vm_guest import DiskReport

# snapkeep, through the services (in-process)
TAKE_QUIESCED = "take, quiesced"
TAKE_PLAIN = "take, not quiesced"
SNAPKEEP_OPS = (TAKE_QUIESCED, TAKE_PLAIN, RESTORE_OVER, RESTORE_NEW)

# what an operator could do instead, on the same running VM
VIRSH_EXTERNAL = "virsh snapshot-create-as --disk-only --quiesce --atomic --no-metadata"
VIRSH_INTERNAL = "virsh snapshot-create-as (internal)"
AGENT_FREEZE_THAW = "agent freeze + thaw"
PAUSE_RESUME = "pause + resume"
VIRSH_NOOP = "virsh domstate"
ALTERNATIVE_OPS = (
    VIRSH_EXTERNAL,
    VIRSH_INTERNAL,
    AGENT_FREEZE_THAW,
    PAUSE_RESUME,
    BTRFS_SNAPSHOT_CLI,
    BTRFSUTIL_SNAPSHOT,
    CP_REFLINK,
    VIRSH_NOOP,
)

# side measurements of one sample (OpResult.side_ms keys)
QUIESCE_WINDOW = "quiesce_window_ms"
PAUSED_WINDOW = "paused_window_ms"
REVERT = "revert: blockcommit --active --pivot"
FREEZE = "agent freeze"
THAW = "agent thaw"
PAUSE = "pause"
RESUME = "resume"
# the parts of a take, in the order they happen; "catalog and rest" is what the wall time has beyond them
TAKE_PARTS = (
    "syncfs before holds",
    "intent: freeze",
    FREEZE,
    "syncfs after quiesce",
    "intent: pause",
    PAUSE,
    "pool.capture",
    RESUME,
    THAW,
    "pool.seal",
    "catalog and rest",
)
# what each window holds beyond the parts named in it (intent file removal, bookkeeping)
WINDOW_REST = "frozen window: rest"
PAUSED_REST = "paused window: rest"

# the bare filesystem operation on the VM's dataset, per filesystem
BARE = {"btrfs": BTRFS_SNAPSHOT_CLI, "xfs": CP_REFLINK}

# targets (issue 3): paused window < 20 ms; quiesced freeze-to-thaw < 1.3x the agent's own freeze + thaw;
# both flat from the smallest disk to the largest (flat as in bench.report.is_flat)
PAUSED_TARGET_MS = 20.0
QUIESCE_RATIO_TARGET = 1.3


def size_label(size: int) -> str:
    return human_size(size)


@dataclass
class SizeResult:
    """Everything measured on the VM with one data-disk size, on one filesystem."""

    size: int
    vm_name: str
    disk: DiskReport
    boot_s: float
    ops: dict[str, OpResult] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return size_label(self.size)

    def op(self, name: str, group: str) -> OpResult:
        return self.ops.setdefault(name, OpResult(name, group))

    def samples(self, name: str, side: str | None = None) -> list[float]:
        """The samples of an operation, or of one of its side measurements."""
        result = self.ops.get(name)
        if result is None:
            return []
        return result.samples_ms if side is None else result.side_ms.get(side, [])

    def median(self, name: str, side: str | None = None) -> float:
        return median(self.samples(name, side))

    def as_dict(self) -> dict[str, object]:
        return {
            "size_bytes": self.size,
            "label": self.label,
            "vm_name": self.vm_name,
            "disk": self.disk.as_dict(),
            "boot_s": round(self.boot_s, 3),
            "ops": {name: result.as_dict() for name, result in self.ops.items()},
            "not_applicable": self.not_applicable,
            "notes": self.notes,
        }


@dataclass
class FsRun:
    """One filesystem's run: the pool it was made on and each VM size measured there."""

    fstype: str
    image_size: str
    sizes: list[SizeResult] = field(default_factory=list)

    @property
    def bare(self) -> str:
        return BARE[self.fstype]

    def as_dict(self) -> dict[str, object]:
        return {
            "fstype": self.fstype,
            "image_size": self.image_size,
            "bare_operation": self.bare,
            "sizes": [s.as_dict() for s in self.sizes],
        }


@dataclass(frozen=True)
class Verdict:
    """One target checked on one filesystem (and size): PASS/FAIL and the numbers behind it."""

    target: str
    scope: str
    passed: bool | None  # None: could not be checked (no samples, one size only)
    detail: str

    @property
    def word(self) -> str:
        return {True: "PASS", False: "FAIL", None: "N/A "}[self.passed]

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "scope": self.scope, "result": self.word.strip(), "detail": self.detail}


def targets_description() -> dict[str, object]:
    return {
        "paused_window_max_ms": PAUSED_TARGET_MS,
        "quiesce_window_max_ratio_to_agent_freeze_thaw": QUIESCE_RATIO_TARGET,
        "flat_over_disk_size": {"max_ratio": FLAT_RATIO, "or_within_ms": FLAT_NOISE_MS},
        "judged_on": "medians of the recorded samples",
    }


def finite(*values: float) -> bool:
    return all(not math.isnan(v) for v in values)
