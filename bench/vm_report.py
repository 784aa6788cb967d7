"""Printing and saving the VM benchmark: one table per disk size with ratios, where the windows go, the
targets with PASS/FAIL, and JSON with every sample.

Formatting helpers (``fmt_ms``, ``is_flat``, the console, the machine description) come from
:mod:`bench.report`, so both benchmarks print and judge alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from bench.model import BTRFSUTIL_SNAPSHOT, FLAT_NOISE_MS, FLAT_RATIO, RESTORE_NEW, RESTORE_OVER, p90
from bench.model import median as median_of
from bench.report import fmt_ms, is_flat
from bench.vm_model import (
    AGENT_FREEZE_THAW,
    FREEZE,
    PAUSE,
    PAUSE_RESUME,
    PAUSED_REST,
    PAUSED_TARGET_MS,
    PAUSED_WINDOW,
    QUIESCE_RATIO_TARGET,
    QUIESCE_WINDOW,
    RESUME,
    REVERT,
    TAKE_PARTS,
    TAKE_PLAIN,
    TAKE_QUIESCED,
    THAW,
    VIRSH_EXTERNAL,
    VIRSH_INTERNAL,
    VIRSH_NOOP,
    WINDOW_REST,
    FsRun,
    SizeResult,
    Verdict,
    finite,
    targets_description,
)


@dataclass(frozen=True)
class Row:
    """One line of a size table: an operation or one of its side measurements."""

    label: str
    op: str
    side: str | None = None
    target: str = ""  # filled in per size by target_cell


def size_rows(fs: FsRun) -> list[Row]:
    """The rows of every size table, in reading order: snapkeep first, then what it is compared with."""
    return [
        Row("snapkeep take, quiesced (wall)", TAKE_QUIESCED),
        Row("  frozen window (quiesce_window_ms)", TAKE_QUIESCED, QUIESCE_WINDOW, "quiesce"),
        Row("  paused window (paused_window_ms)", TAKE_QUIESCED, PAUSED_WINDOW, "paused"),
        Row("snapkeep take, not quiesced (wall)", TAKE_PLAIN),
        Row("  paused window (paused_window_ms)", TAKE_PLAIN, PAUSED_WINDOW, "paused"),
        Row("snapkeep restore over source (VM off, no pre-restore)", RESTORE_OVER),
        Row("snapkeep restore as new", RESTORE_NEW),
        Row("virsh --disk-only --quiesce --atomic (external overlay)", VIRSH_EXTERNAL),
        Row("  its revert, untimed above: blockcommit --active --pivot", VIRSH_EXTERNAL, REVERT),
        Row("virsh snapshot-create-as, internal", VIRSH_INTERNAL),
        Row("agent freeze + thaw (floor of a quiesced take)", AGENT_FREEZE_THAW),
        Row("  agent freeze", AGENT_FREEZE_THAW, FREEZE),
        Row("  agent thaw", AGENT_FREEZE_THAW, THAW),
        Row("pause + resume (floor of the paused window)", PAUSE_RESUME),
        Row("  pause", PAUSE_RESUME, PAUSE),
        Row("  resume", PAUSE_RESUME, RESUME),
        Row(f"bare: {fs.bare} of the VM's dataset", fs.bare),
        *([Row("bare, in-process: btrfsutil.create_snapshot", BTRFSUTIL_SNAPSHOT)] if fs.fstype == "btrfs" else []),
        Row("virsh domstate (virsh start-up + connect, no work)", VIRSH_NOOP),
    ]


def ratio(numerator: float, denominator: float) -> str:
    if not finite(numerator, denominator) or denominator <= 0:
        return "-"
    return f"{numerator / denominator:.2f}x"


def target_cell(size: SizeResult, row: Row) -> str:
    """``< 20 ms: PASS`` / ``< 1.3x: 1.21x PASS`` on the rows a target applies to."""
    value = size.median(row.op, row.side)
    if not row.target or not finite(value):
        return ""
    if row.target == "paused":
        return f"< {PAUSED_TARGET_MS:.0f} ms: {'PASS' if value < PAUSED_TARGET_MS else 'FAIL'}"
    floor = size.median(AGENT_FREEZE_THAW)
    if not finite(floor) or floor <= 0:
        return "-"
    r = value / floor
    return f"< {QUIESCE_RATIO_TARGET}x: {r:.3f}x {'PASS' if r < QUIESCE_RATIO_TARGET else 'FAIL'}"


def size_table(fs: FsRun, size: SizeResult, repeat: int) -> Table:
    disk = size.disk
    table = Table(
        title=(
            f"{fs.fstype}, {size.label} data disk ({fmt_bytes(disk.allocated_bytes)} allocated), running TCG guest; "
            f"ms, median / p90 of {repeat}"
        ),
        title_justify="left",
    )
    for header, justify in (
        ("operation", "left"),
        ("median", "right"),
        ("p90", "right"),
        ("/ freeze+thaw", "right"),
        ("/ pause+resume", "right"),
        ("/ bare", "right"),
        ("target / note", "left"),
    ):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    floor_q, floor_p, bare = size.median(AGENT_FREEZE_THAW), size.median(PAUSE_RESUME), size.median(fs.bare)
    for row in size_rows(fs):
        if row.side is None and row.op in size.not_applicable:
            table.add_row(row.label, "n/a", "", "", "", "", size.not_applicable[row.op].split(" (")[0])
            continue
        values = size.samples(row.op, row.side)
        if not values:
            table.add_row(row.label, "-", "-", "", "", "", "")
            continue
        med = median_of(values)
        table.add_row(
            row.label,
            fmt_ms(med),
            fmt_ms(p90(values)),
            ratio(med, floor_q),
            ratio(med, floor_p),
            ratio(med, bare),
            target_cell(size, row),
        )
    return table


def fmt_bytes(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"


SHORT = {
    "syncfs before holds": "syncfs",
    "catalog and rest": "catalog+rest",
    "pool.capture": "capture",
    "pool.seal": "seal",
}


def breakdown_table(fs: FsRun) -> Table:
    """Where a take's time goes, part by part, so the dominant cost of each window is visible."""
    table = Table(
        title=(
            f"{fs.fstype}: where a take's time goes, ms (medians of per-sample parts; the parts in time order, "
            "'rest' = what a window holds beyond its named parts)"
        ),
        title_justify="left",
    )
    table.add_column("disk / take")
    table.add_column("wall", justify="right")
    for part in TAKE_PARTS:
        table.add_column(SHORT.get(part, part), justify="right")
    for header in ("frozen window", "frozen: rest", "paused window", "paused: rest"):
        table.add_column(header, justify="right")
    for size in fs.sizes:
        for op, short in ((TAKE_QUIESCED, "quiesced"), (TAKE_PLAIN, "not quiesced")):
            if not size.samples(op):
                continue
            windows = (QUIESCE_WINDOW, WINDOW_REST, PAUSED_WINDOW, PAUSED_REST)
            table.add_row(
                f"{size.label} {short}",
                fmt_ms(size.median(op)),
                *(fmt_ms(size.median(op, part)) for part in TAKE_PARTS),
                *(fmt_ms(size.median(op, w)) for w in windows),
            )
    return table


# --- targets -----------------------------------------------------------------------------------------


def paused_verdicts(fs: FsRun) -> list[Verdict]:
    verdicts = []
    for size in fs.sizes:
        for op in (TAKE_QUIESCED, TAKE_PLAIN):
            values = size.samples(op, PAUSED_WINDOW)
            scope = f"{fs.fstype}, {size.label}, {op}"
            if not values:
                verdicts.append(Verdict("paused window < 20 ms", scope, None, "no samples"))
                continue
            med = median_of(values)
            verdicts.append(
                Verdict(
                    f"paused window < {PAUSED_TARGET_MS:.0f} ms",
                    scope,
                    med < PAUSED_TARGET_MS,
                    f"median {fmt_ms(med)} ms, p90 {fmt_ms(p90(values))} ms",
                )
            )
    return verdicts


def quiesce_verdicts(fs: FsRun) -> list[Verdict]:
    verdicts = []
    name = f"frozen window < {QUIESCE_RATIO_TARGET}x agent freeze + thaw"
    for size in fs.sizes:
        window, floor = size.median(TAKE_QUIESCED, QUIESCE_WINDOW), size.median(AGENT_FREEZE_THAW)
        scope = f"{fs.fstype}, {size.label}"
        if not finite(window, floor) or floor <= 0:
            verdicts.append(Verdict(name, scope, None, "no samples"))
            continue
        r = window / floor
        verdicts.append(
            Verdict(
                name,
                scope,
                r < QUIESCE_RATIO_TARGET,
                f"window median {fmt_ms(window)} ms / freeze+thaw median {fmt_ms(floor)} ms = {r:.3f}x "
                f"(window p90 {fmt_ms(p90(size.samples(TAKE_QUIESCED, QUIESCE_WINDOW)))} ms)",
            )
        )
    return verdicts


def flat_verdicts(fs: FsRun) -> list[Verdict]:
    """Both windows flat from the smallest disk to the largest (``is_flat``: max/min within
    ``FLAT_RATIO``, or within ``FLAT_NOISE_MS``)."""
    checks = (
        ("frozen window flat over disk size", TAKE_QUIESCED, QUIESCE_WINDOW, AGENT_FREEZE_THAW),
        ("paused window flat over disk size", TAKE_QUIESCED, PAUSED_WINDOW, PAUSE_RESUME),
        ("paused window flat over disk size", TAKE_PLAIN, PAUSED_WINDOW, PAUSE_RESUME),
    )
    verdicts = []
    sizes = sorted(fs.sizes, key=lambda s: s.size)
    for name, op, side, floor in checks:
        scope = f"{fs.fstype}, {op}"
        values = [s.median(op, side) for s in sizes]
        if len(sizes) < 2 or not finite(*values):
            verdicts.append(Verdict(name, scope, None, "needs two sizes or more (run --full)"))
            continue
        flat, r = is_flat(values)
        detail = (
            f"{series_text(sizes, values)} ms; max/min {r:.2f}x (flat: <= {FLAT_RATIO}x or within "
            f"{FLAT_NOISE_MS:g} ms); its floor, {floor}, measured alongside: "
            f"{series_text(sizes, [s.median(floor) for s in sizes])} ms"
        )
        verdicts.append(Verdict(name, scope, flat, detail))
    return verdicts


def series_text(sizes: Sequence[SizeResult], values: Sequence[float]) -> str:
    return " -> ".join(f"{s.label}: {fmt_ms(v)}" for s, v in zip(sizes, values, strict=True))


def verdicts_of(fs: FsRun) -> list[Verdict]:
    return [*paused_verdicts(fs), *quiesce_verdicts(fs), *flat_verdicts(fs)]


# --- output ------------------------------------------------------------------------------------------


def print_results(console: Console, runs: Sequence[FsRun], repeat: int, machine: dict[str, object]) -> None:
    console.print(
        f"host: {machine.get('cpu_count')} CPUs ({machine.get('cpu_model')}), libvirt {machine.get('libvirt')}, "
        f"{machine.get('qemu')}; load average at start {machine.get('loadavg_at_start')}, "
        f"at end {machine.get('loadavg_at_end')}"
    )
    for fs in runs:
        for size in fs.sizes:
            console.print()
            console.print(f"{fs.fstype} {size.label}: {size.disk.method}; booted in {size.boot_s:.1f} s")
            for note in size.notes:
                console.print(f"  note: {note}")
            for op, why in size.not_applicable.items():
                console.print(f"  {op}: {why}")
            console.print(size_table(fs, size, repeat))
        console.print()
        console.print(breakdown_table(fs))
    console.print()
    console.print("[bold]targets[/bold] (medians)")
    for fs in runs:
        for verdict in verdicts_of(fs):
            colour = {"PASS": "green", "FAIL": "red"}.get(verdict.word, "yellow")
            console.print(f"  [{colour}]{verdict.word}[/{colour}] {verdict.target} ({verdict.scope}): {verdict.detail}")


def write_json(path: str, machine: dict[str, object], params: dict[str, object], runs: Sequence[FsRun]) -> None:
    """Write the results atomically, so an interrupted run never leaves a truncated file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    document = {
        "benchmark": "vm_snapshots",
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
