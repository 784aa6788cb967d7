"""Printing and saving benchmark results: tables per filesystem, target flags, JSON with every sample."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.model import (
    API_TAKE_TARGET_MS,
    BARE_OPS,
    BASELINE,
    BTRFSUTIL_SNAPSHOT,
    CAPTURE,
    CAPTURE_RATIO_TARGET,
    CAPTURE_SEAL,
    FLAT_NOISE_MS,
    FLAT_RATIO,
    SNAPKEEP_OPS,
    TAKE_API,
    TAKE_SERVICE,
    FsResult,
    VolumeResult,
    median,
)

SHORT = {
    "capture": "capture",
    "capture+seal": "capture+seal",
    "take (service)": "take svc",
    "take (HTTP API)": "take API",
    "restore over source": "restore over",
    "restore over source + pre-restore": "restore over+pre",
    "restore as new": "restore new",
    "delete (service)": "delete svc",
    "space (service)": "space svc",
    "btrfs subvolume snapshot -r": "btrfs snap -r",
    "btrfsutil.create_snapshot": "btrfsutil snap",
    "cp -a --reflink=always": "cp --reflink",
    "btrfs subvolume delete": "btrfs subvol del",
    "rm -rf": "rm -rf",
}
TAKE_PARTS = (
    "pool.prepare_capture",
    "volume freeze",
    "pool.capture",
    "volume thaw",
    "pool.seal",
    "seal: syncfs",
    "catalog and rest",
)
API_PARTS = ("job run (server clock)", "HTTP and job overhead")


def make_console() -> Console:
    """A console that does not wrap the wide tables when the output goes to a file."""
    return Console(width=None if sys.stdout.isatty() else 220, highlight=False)


def fmt_ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def cell(volume: VolumeResult, op: str) -> str:
    result = volume.ops.get(op)
    return f"{fmt_ms(result.median)} / {fmt_ms(result.p90)}" if result and result.samples_ms else "-"


def ratio_cell(numerator: float, denominator: float, target: float | None) -> str:
    """``1.12x ok`` against a target; just ``1.12x`` for ratios shown for information."""
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return "-"
    ratio = numerator / denominator
    if target is None:
        return f"{ratio:.2f}x"
    return f"{ratio:.2f}x {'ok' if ratio <= target else 'MISS'}"


def api_cell(volume: VolumeResult) -> str:
    value = volume.median(TAKE_API)
    if math.isnan(value):
        return "-"
    return f"{fmt_ms(value)} {'ok' if value < API_TAKE_TARGET_MS else 'MISS'}"


def snapkeep_table(fs: FsResult) -> Table:
    table = Table(title=f"{fs.fstype}: snapkeep operations, ms (median / p90)", title_justify="left")
    table.add_column("volume")
    for op in SNAPKEEP_OPS:
        table.add_column(SHORT[op], justify="right")
    for volume in fs.volumes:
        table.add_row(volume.spec.label, *(cell(volume, op) for op in SNAPKEEP_OPS))
    return table


def bare_ops_of(fs: FsResult) -> list[str]:
    return [op for op in BARE_OPS if any(op in v.ops for v in fs.volumes)]


def targets_line(fs: FsResult) -> str:
    return (
        f"{fs.fstype} targets: capture <= {CAPTURE_RATIO_TARGET}x '{BASELINE[fs.fstype]}'; "
        f"whole take through the API < {API_TAKE_TARGET_MS:.0f} ms"
        + ("; both flat in data size" if fs.fstype == "btrfs" else "")
    )


def bare_table(fs: FsResult) -> Table:
    """Bare operations, then snapkeep's capture over the baseline (and, on btrfs, over the same ioctl
    called in-process, which shows what snapkeep adds beyond the snapshot itself)."""
    baseline = BASELINE[fs.fstype]
    table = Table(title=f"{fs.fstype}: bare operations, ms (median / p90), and ratios", title_justify="left")
    table.add_column("volume")
    ops = bare_ops_of(fs)
    for op in ops:
        table.add_column(SHORT[op], justify="right")
    headers = ["capture / bare", "capture+seal / bare", "take API (median)"]
    in_process = BTRFSUTIL_SNAPSHOT in ops
    if in_process:
        headers.insert(2, "capture / btrfsutil")
    for header in headers:
        table.add_column(header, justify="right")
    for volume in fs.volumes:
        base = volume.median(baseline)
        ratios = [
            ratio_cell(volume.median(CAPTURE), base, CAPTURE_RATIO_TARGET),
            ratio_cell(volume.median(CAPTURE_SEAL), base, CAPTURE_RATIO_TARGET),
        ]
        if in_process:
            ratios.append(ratio_cell(volume.median(CAPTURE), volume.median(BTRFSUTIL_SNAPSHOT), None))
        table.add_row(volume.spec.label, *(cell(volume, op) for op in ops), *ratios, api_cell(volume))
    return table


def side_median(volume: VolumeResult, op: str, part: str) -> float:
    result = volume.ops.get(op)
    return median(result.side_ms.get(part, [])) if result else float("nan")


def breakdown_table(fs: FsResult) -> Table:
    table = Table(
        title=f"{fs.fstype}: where a take's time goes, ms (medians of per-sample parts)", title_justify="left"
    )
    table.add_column("volume")
    table.add_column("take svc", justify="right")
    for part in TAKE_PARTS:
        table.add_column(part, justify="right")
    table.add_column("take API", justify="right")
    for part in API_PARTS:
        table.add_column(part, justify="right")
    for volume in fs.volumes:
        table.add_row(
            volume.spec.label,
            fmt_ms(volume.median(TAKE_SERVICE)),
            *(fmt_ms(side_median(volume, TAKE_SERVICE, p)) for p in TAKE_PARTS),
            fmt_ms(volume.median(TAKE_API)),
            *(fmt_ms(side_median(volume, TAKE_API, p)) for p in API_PARTS),
        )
    return table


def data_lines(fs: FsResult) -> list[str]:
    lines = [f"{fs.fstype}: how each volume's data was made (server pool got identical bytes):"]
    for volume in fs.volumes:
        d = volume.data
        lines.append(f"  {volume.spec.label}: {d.method}; {d.directories} dir(s), made in {d.seconds:.1f} s")
    return lines


def is_flat(values: Sequence[float]) -> tuple[bool, float]:
    """Flat = largest median within ``FLAT_RATIO`` of the smallest, or within ``FLAT_NOISE_MS`` of it
    (kept for ``bench.vm_report``, which imports it)."""
    low, high = min(values), max(values)
    ratio = high / low if low > 0 else float("inf")
    return (ratio <= FLAT_RATIO or high - low <= FLAT_NOISE_MS), ratio


def flat_verdict(values: Sequence[float]) -> tuple[str, float]:
    """Flat = largest median within ``FLAT_RATIO`` of the smallest, or (below a few ms, where one page of
    extra metadata already moves the ratio) within ``FLAT_NOISE_MS`` of it; the verdict says which."""
    flat, ratio = is_flat(values)
    low, high = min(values), max(values)
    if ratio <= FLAT_RATIO:
        return "flat ok", ratio
    if flat:
        return f"flat ok (ratio over {FLAT_RATIO}x but spread {high - low:.2f} ms <= {FLAT_NOISE_MS} ms)", ratio
    return "NOT flat", ratio


def series(fs: FsResult, by: str) -> list[VolumeResult]:
    """Volumes varying in data size at the smallest file count, or in file count at the smallest size."""
    if not fs.volumes:
        return []
    if by == "size":
        files = min(v.spec.files for v in fs.volumes)
        picked = [v for v in fs.volumes if v.spec.files == files]
        return sorted(picked, key=lambda v: v.spec.total_bytes)
    size = min(v.spec.total_bytes for v in fs.volumes)
    picked = [v for v in fs.volumes if v.spec.total_bytes == size]
    return sorted(picked, key=lambda v: v.spec.files)


def flatness_lines(fs: FsResult) -> list[str]:
    """Whether capture and API take stay flat as data grows (the target on btrfs) and as files grow."""
    lines = []
    target = " (target)" if fs.fstype == "btrfs" else " (information; no target on XFS)"
    for by, what in (("size", "data size"), ("files", "file count")):
        vols = series(fs, by)
        if len(vols) < 2:
            continue
        for op in (CAPTURE, CAPTURE_SEAL, TAKE_API):
            values = [v.median(op) for v in vols]
            if any(math.isnan(x) for x in values):
                continue
            verdict, ratio = flat_verdict(values)
            points = " -> ".join(f"{fmt_ms(x)}" for x in values)
            suffix = target if by == "size" else " (information)"
            lines.append(
                f"  {op} over {what} ({vols[0].spec.label} .. {vols[-1].spec.label}): "
                f"{points} ms; max/min {ratio:.2f}x: {verdict}{suffix}"
            )
    return [f"{fs.fstype}: flatness (medians):", *lines] if lines else []


def print_results(console: Console, results: Sequence[FsResult]) -> None:
    for fs in results:
        console.print()
        for line in data_lines(fs):
            console.print(line)
        console.print(targets_line(fs))
        console.print(snapkeep_table(fs))
        console.print(bare_table(fs))
        console.print(breakdown_table(fs))
        for line in flatness_lines(fs):
            console.print(line)


def _command_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        with open("/proc/meminfo") as f:
            return f.readline().split(":", 1)[1].strip()
    except (OSError, IndexError):
        return "unknown"


def machine_info(project_root: str) -> dict[str, object]:
    """Enough about the host and the code to tell whether two result files are comparable."""
    git = ["git", "-C", project_root]
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_total": _mem_total(),
        "python": sys.version.split()[0],
        "btrfs_progs": _command_line(["btrfs", "--version"]),
        "xfsprogs": _command_line(["mkfs.xfs", "-V"]),
        "coreutils_cp": _command_line(["cp", "--version"]),
        "git_commit": _command_line([*git, "rev-parse", "HEAD"]),
        "git_uncommitted_files": len(
            subprocess.run(
                [*git, "status", "--porcelain"], capture_output=True, text=True, check=False
            ).stdout.splitlines()
        ),
    }


def load_json(path: str) -> tuple[dict[str, Any], list[FsResult]]:
    """A results file written by :func:`write_json`, to print its tables again without measuring."""
    with open(path) as f:
        document: dict[str, Any] = json.load(f)
    return document, [FsResult.from_dict(fs) for fs in document["results"]]


def write_json(path: str, machine: dict[str, object], params: dict[str, object], results: Sequence[FsResult]) -> None:
    """Write the results atomically, so an interrupted run never leaves a truncated file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    document = {
        "benchmark": "volume_snapshots",
        "machine": machine,
        "parameters": params,
        "targets": {
            "capture_vs_bare_max_ratio": CAPTURE_RATIO_TARGET,
            "api_take_max_ms": API_TAKE_TARGET_MS,
            "flat_in_data_size_on_btrfs": {"max_ratio": FLAT_RATIO, "noise_ms": FLAT_NOISE_MS},
            "baseline": BASELINE,
        },
        "results": [fs.as_dict() for fs in results],
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
