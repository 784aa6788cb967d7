"""What a benchmark run records: operation names, samples, and the statistics reported from them."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.datagen import DataReport, VolumeSpec

# snapkeep operations (in-process unless named otherwise)
CAPTURE = "capture"
CAPTURE_SEAL = "capture+seal"
TAKE_SERVICE = "take (service)"
TAKE_API = "take (HTTP API)"
RESTORE_OVER = "restore over source"
RESTORE_OVER_PRE = "restore over source + pre-restore"
RESTORE_NEW = "restore as new"
DELETE_SERVICE = "delete (service)"
SPACE_SERVICE = "space (service)"
SNAPKEEP_OPS = (
    CAPTURE,
    CAPTURE_SEAL,
    TAKE_SERVICE,
    TAKE_API,
    RESTORE_OVER,
    RESTORE_OVER_PRE,
    RESTORE_NEW,
    DELETE_SERVICE,
    SPACE_SERVICE,
)

# what an operator would run by hand
BTRFS_SNAPSHOT_CLI = "btrfs subvolume snapshot -r"
BTRFSUTIL_SNAPSHOT = "btrfsutil.create_snapshot"
CP_REFLINK = "cp -a --reflink=always"
BTRFS_DELETE_CLI = "btrfs subvolume delete"
RM_RF = "rm -rf"
BARE_OPS = (BTRFS_SNAPSHOT_CLI, BTRFSUTIL_SNAPSHOT, CP_REFLINK, BTRFS_DELETE_CLI, RM_RF)

# the bare operation snapkeep's capture is compared with, per filesystem
BASELINE = {"btrfs": BTRFS_SNAPSHOT_CLI, "xfs": CP_REFLINK}

# targets the tables flag
CAPTURE_RATIO_TARGET = 1.5
API_TAKE_TARGET_MS = 50.0
FLAT_RATIO = 1.5
FLAT_NOISE_MS = 1.0


def failures(labelled: Iterable[tuple[str, Mapping[str, OpResult]]]) -> list[str]:
    """Every operation that failed somewhere (noted and skipped there while the run went on), as
    ``"<where>: <operation>: <note>"``; a run with any is not a good run (the smoke check exits 1)."""
    return [
        f"{where}: {name}: {note}"
        for where, ops in labelled
        for name, op in ops.items()
        for note in op.notes
        if note.startswith("FAILED")
    ]


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def p90(samples: list[float]) -> float:
    """90th percentile, interpolated between order statistics (equals the maximum for one sample)."""
    if len(samples) < 2:
        return samples[0] if samples else float("nan")
    return statistics.quantiles(samples, n=10, method="inclusive")[-1]


@dataclass
class OpResult:
    """Every sample of one operation on one volume, in milliseconds, plus per-sample side measurements."""

    op: str
    group: str
    samples_ms: list[float] = field(default_factory=list)
    side_ms: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return median(self.samples_ms)

    @property
    def p90(self) -> float:
        return p90(self.samples_ms)

    def add_side(self, name: str, value_ms: float) -> None:
        self.side_ms.setdefault(name, []).append(value_ms)

    @classmethod
    def from_dict(cls, op: str, d: dict[str, Any]) -> OpResult:
        side = {name: list(v["samples_ms"]) for name, v in d.get("side_ms", {}).items()}
        return cls(op, d["group"], list(d["samples_ms"]), side, list(d.get("notes", [])))

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "median_ms": round(self.median, 4),
            "p90_ms": round(self.p90, 4),
            "samples_ms": [round(v, 4) for v in self.samples_ms],
            "side_ms": {
                name: {
                    "median_ms": round(median(vals), 4),
                    "p90_ms": round(p90(vals), 4),
                    "samples_ms": [round(v, 4) for v in vals],
                }
                for name, vals in self.side_ms.items()
            },
            "notes": self.notes,
        }


@dataclass
class VolumeResult:
    """All operations measured on one volume of the matrix."""

    spec: VolumeSpec
    data: DataReport
    server_data: DataReport
    ops: dict[str, OpResult] = field(default_factory=dict)

    def op(self, name: str, group: str) -> OpResult:
        return self.ops.setdefault(name, OpResult(name, group))

    def median(self, name: str) -> float:
        result = self.ops.get(name)
        return result.median if result else float("nan")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VolumeResult:
        ops = {name: OpResult.from_dict(name, op) for name, op in d["ops"].items()}
        spec = VolumeSpec(d["total_bytes"], d["files"])
        return cls(spec, DataReport(**d["data"]), DataReport(**d["server_data"]), ops)

    def as_dict(self) -> dict[str, object]:
        return {
            "total_bytes": self.spec.total_bytes,
            "files": self.spec.files,
            "label": self.spec.label,
            "data": self.data.as_dict(),
            "server_data": self.server_data.as_dict(),
            "ops": {name: result.as_dict() for name, result in self.ops.items()},
        }


@dataclass
class FsResult:
    """One filesystem's run: how it was made and every volume measured on it."""

    fstype: str
    image_size: str
    server_launcher: str
    volumes: list[VolumeResult] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FsResult:
        volumes = [VolumeResult.from_dict(v) for v in d["volumes"]]
        return cls(d["fstype"], d["image_size"], d["server_launcher"], volumes)

    def as_dict(self) -> dict[str, object]:
        return {
            "fstype": self.fstype,
            "image_size": self.image_size,
            "server_launcher": self.server_launcher,
            "baseline": BASELINE[self.fstype],
            "volumes": [v.as_dict() for v in self.volumes],
        }
