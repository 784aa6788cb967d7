"""What the system-snapshot benchmark records, the targets it judges, and how it prints and saves them.

One :class:`LevelResult` per system size (VMs defined and running, volumes, extra data per volume) and
filesystem; samples are :class:`bench.model.OpResult`, as in the other benchmarks, so the result files read
the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from bench.datagen import human_size
from bench.model import OpResult, median, p90
from bench.report import fmt_ms, is_flat

# snapkeep, through the services (in-process)
TAKE = "system take"  # right after a change to the system (a setting): the take reads the whole system
TAKE_AGAIN = "system take again, nothing changed"  # right after the one before: it reuses what that one read
RESTORE_SYSTEM = "restore entire system"
RESTORE_VM_NEW = "restore one VM as new"
# what an operator would do instead, on the same guests and datasets
OPERATOR = "operator: pause all, snapshot each dataset, resume all"
PAUSE_RESUME = "pause + resume all running guests"
DATASET_SNAPSHOTS = "snapshot each dataset"
OPERATOR_RESTORE = "operator: power off running guests, put each dataset back from its snapshot, start them"

# side measurements of one sample (OpResult.side_ms keys)
PAUSED_WINDOW = "paused_window_ms"
PAUSES = "pauses"
RESUMES = "resumes"
SNAPSHOTS = "dataset snapshots"
POWER_OFFS = "power offs"
SWAPS = "dataset swaps"
STARTS = "starts"

# targets (issue 8)
PAUSED_BASE_MS = 50.0
PAUSED_PER_VM_MS = 2.0
RATIO_TARGET = 1.5

BARE = {"btrfs": "btrfs subvolume snapshot -r", "xfs": "cp -a --reflink=always"}


@dataclass(frozen=True)
class Level:
    """One system size: VMs defined (the first ``running`` of them running), volumes, and data added to each
    volume beyond the base (the point that shows a take does not grow with data)."""

    vms: int
    running: int
    volumes: int
    extra_bytes: int = 0

    @property
    def label(self) -> str:
        extra = f", +{human_size(self.extra_bytes)}/volume" if self.extra_bytes else ""
        vms = f"{self.vms} VM{'s' if self.vms != 1 else ''}"
        volumes = f"{self.volumes} volume{'s' if self.volumes != 1 else ''}"
        return f"{vms} ({self.running} running), {volumes}{extra}"

    @property
    def paused_target_ms(self) -> float:
        return PAUSED_BASE_MS + PAUSED_PER_VM_MS * self.running


@dataclass
class LevelResult:
    """Everything measured on one system size, on one filesystem."""

    level: Level
    datasets: int
    volume_bytes: int  # apparent bytes in all volumes
    setup_s: float
    ops: dict[str, OpResult] = field(default_factory=dict)
    not_measured: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def op(self, name: str, group: str) -> OpResult:
        return self.ops.setdefault(name, OpResult(name, group))

    def samples(self, name: str, side: str | None = None) -> list[float]:
        result = self.ops.get(name)
        if result is None:
            return []
        return result.samples_ms if side is None else result.side_ms.get(side, [])

    def median(self, name: str, side: str | None = None) -> float:
        return median(self.samples(name, side))

    def as_dict(self) -> dict[str, object]:
        return {
            "vms": self.level.vms,
            "running": self.level.running,
            "volumes": self.level.volumes,
            "extra_bytes_per_volume": self.level.extra_bytes,
            "label": self.level.label,
            "datasets": self.datasets,
            "volume_apparent_bytes": self.volume_bytes,
            "setup_s": round(self.setup_s, 3),
            "ops": {name: result.as_dict() for name, result in self.ops.items()},
            "not_measured": self.not_measured,
            "notes": self.notes,
        }


@dataclass
class FsRun:
    fstype: str
    image_size: str
    levels: list[LevelResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "fstype": self.fstype,
            "image_size": self.image_size,
            "bare_dataset_snapshot": BARE[self.fstype],
            "levels": [level.as_dict() for level in self.levels],
        }


@dataclass(frozen=True)
class Verdict:
    target: str
    scope: str
    passed: bool | None  # None: not measured
    detail: str

    @property
    def word(self) -> str:
        return {True: "PASS", False: "FAIL", None: "N/A"}[self.passed]

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "scope": self.scope, "result": self.word, "detail": self.detail}


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")


def fmt_ratio(value: float) -> str:
    return "-" if value != value else f"{value:.2f}x"


# --- targets ---------------------------------------------------------------------------------------------


def paused_verdicts(fs: FsRun) -> list[Verdict]:
    verdicts = []
    for lv in fs.levels:
        target = lv.level.paused_target_ms
        values = lv.samples(TAKE, PAUSED_WINDOW)
        name = f"paused window < {PAUSED_BASE_MS:.0f} ms + {PAUSED_PER_VM_MS:.0f} ms x {lv.level.running} running"
        if not values:
            verdicts.append(Verdict(name, f"{fs.fstype}, {lv.level.label}", None, "no samples"))
            continue
        med = median(values)
        detail = f"median {fmt_ms(med)} ms, p90 {fmt_ms(p90(values))} ms (target {target:.0f} ms)"
        verdicts.append(Verdict(name, f"{fs.fstype}, {lv.level.label}", med < target, detail))
    return verdicts


def ratio_verdicts(fs: FsRun) -> list[Verdict]:
    """A take within 1.5x of the operator's pauses + per-dataset snapshots + resumes; a whole-system restore
    within 1.5x of the operator's power-offs + per-dataset swaps + starts."""
    verdicts = []
    for op, operator, what in (
        (TAKE, OPERATOR, "pauses + per-dataset snapshots"),
        (TAKE_AGAIN, OPERATOR, "pauses + per-dataset snapshots"),
        (RESTORE_SYSTEM, OPERATOR_RESTORE, "power-offs + per-dataset swaps + starts"),
    ):
        name = f"{op} < {RATIO_TARGET}x operator's {what}"
        for lv in fs.levels:
            scope = f"{fs.fstype}, {lv.level.label}"
            value, floor = lv.median(op), lv.median(operator)
            if op in lv.not_measured or value != value or floor != floor:
                verdicts.append(Verdict(name, scope, None, lv.not_measured.get(op, "no samples")))
                continue
            r = ratio(value, floor)
            detail = f"{fmt_ms(value)} ms / {fmt_ms(floor)} ms = {fmt_ratio(r)}"
            verdicts.append(Verdict(name, scope, r < RATIO_TARGET, detail))
    return verdicts


def data_verdicts(fs: FsRun) -> list[Verdict]:
    """Same objects, more data per volume: a take (and a whole restore) must not grow."""
    verdicts = []
    for more in (lv for lv in fs.levels if lv.level.extra_bytes):
        base = next(
            (
                lv
                for lv in fs.levels
                if not lv.level.extra_bytes and (lv.level.vms, lv.level.volumes) == (more.level.vms, more.level.volumes)
            ),
            None,
        )
        if base is None:
            continue
        for op in (TAKE, RESTORE_SYSTEM):
            scope = f"{fs.fstype}, {base.level.label} -> {more.level.label}"
            name = f"{op} flat in data size"
            values = [base.median(op), more.median(op)]
            if any(v != v for v in values):
                verdicts.append(Verdict(name, scope, None, more.not_measured.get(op, "no samples")))
                continue
            flat, r = is_flat(values)
            detail = f"{fmt_ms(values[0])} -> {fmt_ms(values[1])} ms ({fmt_ratio(r)} max/min)"
            verdicts.append(Verdict(name, scope, flat, detail))
    return verdicts


def verdicts_of(fs: FsRun) -> list[Verdict]:
    return [*paused_verdicts(fs), *ratio_verdicts(fs), *data_verdicts(fs)]


# --- output ----------------------------------------------------------------------------------------------

COLUMNS = (
    ("system", "left"),
    ("datasets", "right"),
    ("take", "right"),
    ("paused window", "right"),
    ("paused target", "right"),
    ("operator: pause + snapshots + resume", "right"),
    ("take / operator", "right"),
    ("take again, nothing changed", "right"),
    ("again / operator", "right"),
    ("pause + resume alone", "right"),
    ("snapshots alone", "right"),
    ("restore entire system", "right"),
    ("operator: power off + swap datasets + start", "right"),
    ("restore / operator", "right"),
    ("restore one VM as new", "right"),
)


def cell(lv: LevelResult, op: str, side: str | None = None) -> str:
    if side is None and op in lv.not_measured:
        return "not measured"
    values = lv.samples(op, side)
    return f"{fmt_ms(median(values))} / {fmt_ms(p90(values))}" if values else "-"


def level_table(fs: FsRun, repeat: int) -> Table:
    table = Table(
        title=f"{fs.fstype}: system snapshots, ms, median / p90 of {repeat}; bare = {BARE[fs.fstype]} per dataset",
        title_justify="left",
    )
    for header, justify in COLUMNS:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for lv in fs.levels:
        operator = lv.median(OPERATOR)
        table.add_row(
            lv.level.label,
            str(lv.datasets),
            cell(lv, TAKE),
            cell(lv, TAKE, PAUSED_WINDOW),
            f"< {lv.level.paused_target_ms:.0f}",
            cell(lv, OPERATOR),
            fmt_ratio(ratio(lv.median(TAKE), operator)),
            cell(lv, TAKE_AGAIN),
            fmt_ratio(ratio(lv.median(TAKE_AGAIN), operator)),
            cell(lv, PAUSE_RESUME),
            cell(lv, DATASET_SNAPSHOTS),
            cell(lv, RESTORE_SYSTEM),
            cell(lv, OPERATOR_RESTORE),
            fmt_ratio(ratio(lv.median(RESTORE_SYSTEM), lv.median(OPERATOR_RESTORE))),
            cell(lv, RESTORE_VM_NEW),
        )
    return table


def parts_table(fs: FsRun) -> Table:
    """Where a take's time goes (the code's own step timings), so the dominant cost is visible."""
    parts: list[str] = []
    for lv in fs.levels:
        for name in lv.ops.get(TAKE, OpResult(TAKE, "")).side_ms:
            if name not in parts and name != PAUSED_WINDOW:
                parts.append(name)
    table = Table(title=f"{fs.fstype}: parts of a system take, ms (medians)", title_justify="left")
    table.add_column("system")
    for name in parts:
        table.add_column(name, justify="right")
    for lv in fs.levels:
        table.add_row(lv.level.label, *(fmt_ms(lv.median(TAKE, name)) for name in parts))
    return table


def print_results(console: Console, runs: Sequence[FsRun], repeat: int, machine: dict[str, object]) -> None:
    console.print(
        f"host: {machine.get('cpu_count')} CPUs ({machine.get('cpu_model')}), {machine.get('libvirt')}; "
        f"load average at start {machine.get('loadavg_at_start')}, at end {machine.get('loadavg_at_end')}"
    )
    for fs in runs:
        console.print()
        for lv in fs.levels:
            for op, why in lv.not_measured.items():
                console.print(f"  {fs.fstype}, {lv.level.label}: {op}: {why}")
            for note in lv.notes:
                console.print(f"  {fs.fstype}, {lv.level.label}: note: {note}")
        console.print(level_table(fs, repeat))
        console.print(parts_table(fs))
    console.print()
    console.print("[bold]targets[/bold] (medians)")
    for fs in runs:
        for verdict in verdicts_of(fs):
            colour = {"PASS": "green", "FAIL": "red"}.get(verdict.word, "yellow")
            console.print(f"  [{colour}]{verdict.word}[/{colour}] {verdict.target} ({verdict.scope}): {verdict.detail}")


def targets_description() -> dict[str, object]:
    return {
        "paused_window_max_ms": f"{PAUSED_BASE_MS:g} + {PAUSED_PER_VM_MS:g} x running VMs",
        "take_and_restore_max_ratio_to_operator": RATIO_TARGET,
        "operator_take": OPERATOR,
        "operator_restore": OPERATOR_RESTORE,
        "flat_in_data_size": "bench.report.is_flat on the medians (same objects, more data per volume)",
        "judged_on": "medians of the recorded samples",
    }


def write_json(path: str, machine: dict[str, object], params: dict[str, object], runs: Sequence[FsRun]) -> None:
    """Write the results atomically, so an interrupted run never leaves a truncated file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    document = {
        "benchmark": "system_snapshots",
        "machine": machine,
        "parameters": params,
        "targets": targets_description(),
        "verdicts": [v.as_dict() for fs in runs for v in verdicts_of(fs)],
        "results": [fs.as_dict() for fs in runs],
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
