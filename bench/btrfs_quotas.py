"""Benchmark: what btrfs quotas cost, none vs full qgroups vs simple quotas (squota), and what they count.

Run from the project root::

    .venv/bin/python -m bench.btrfs_quotas            # 20,000 files, 3 rounds
    .venv/bin/python -m bench.btrfs_quotas --smoke    # 500 files, 1 round (what CI runs)

For each mode a fresh sparse btrfs image is loop-mounted (and always unmounted). A volume (subvolume) is
filled with small files of real bytes, then it measures:

- **enable**: turning quotas on over that data, until the counters are exact (full qgroups rescan every
  extent; squota only counts from now on);
- **take**: a read-only snapshot, after ``--churn`` files were rewritten (so each snapshot differs);
- **write**: rewriting ``--churn`` files and committing (``syncfs``): the backref accounting of full
  qgroups is paid at commit;
- **delete**: deleting every snapshot and waiting for the cleaner to drop them, while another volume's
  writer appends 4 KiB and fsyncs every 10 ms (its worst fsync is reported: what a stall costs others);

and what the volume's qgroup counts (``referenced``) against what the volume holds, after a snapshot and
a rewrite of every file (squota keeps charging the volume for the old extents the snapshot holds) and in a
writable snapshot of the volume (what a restore puts in place; squota charges it almost nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import btrfsutil

from bench.volume_snapshots import wait_btrfs_cleaner
from snapkeep.storage import btrfs_quota, loopfs

MODES = ("none", "full", "simple")


@contextmanager
def loop_btrfs(size: str) -> Iterator[str]:
    top = tempfile.mkdtemp(prefix="snapkeep-qbench-")
    image, mnt = os.path.join(top, "fs.img"), os.path.join(top, "mnt")
    loopfs.make_filesystem(image, size, "btrfs")
    loopfs.mount_loop(image, mnt)
    try:
        yield mnt
    finally:
        loopfs.unmount(mnt)
        os.unlink(image)
        os.rmdir(mnt)
        os.rmdir(top)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def settle(mnt: str) -> None:
    wait_btrfs_cleaner(mnt)


@contextmanager
def fsync_probe(mnt: str) -> Iterator[list[float]]:
    """Another volume's writer while the block runs: 4 KiB + fsync every 10 ms; yields its latencies (ms)."""
    other = os.path.join(mnt, "probe")
    if not os.path.exists(other):
        btrfsutil.create_subvolume(other)
    latencies: list[float] = [0.0]
    stop = threading.Event()

    def write() -> None:
        fd = os.open(os.path.join(other, "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            while not stop.wait(0.01):
                latencies.append(timed(lambda: (os.write(fd, b"x" * 4096), os.fsync(fd))))
        finally:
            os.close(fd)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        yield latencies
    finally:
        stop.set()
        thread.join()


def fill(volume: str, files: int, size: int, rng: random.Random) -> None:
    for i in range(files):
        with open(os.path.join(volume, f"f{i:06d}"), "wb") as f:
            f.write(rng.randbytes(size))


def rewrite(volume: str, names: list[str], size: int, rng: random.Random) -> None:
    for name in names:
        with open(os.path.join(volume, name), "r+b") as f:
            f.write(rng.randbytes(size))


def enable(mnt: str, mode: str) -> None:
    if mode == "none":
        return
    btrfs_quota.enable(mnt, simple=mode == "simple")
    if mode == "full":
        btrfs_quota.wait_for_rescan(mnt)


def referenced(mnt: str, path: str) -> int | None:
    if btrfs_quota.mode(mnt) is btrfs_quota.QuotaMode.OFF:
        return None
    btrfsutil.sync(mnt)
    return btrfs_quota.qgroup_counter(mnt, btrfsutil.subvolume_id(path), "referenced")


def measure(mode: str, args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(1)
    out: dict[str, object] = {"mode": mode}
    with loop_btrfs(args.image_size) as mnt:
        volume = os.path.join(mnt, "volume")
        btrfsutil.create_subvolume(volume)
        fill(volume, args.files, args.file_bytes, rng)
        settle(mnt)
        out["enable_ms"] = round(timed(lambda: enable(mnt, mode)), 1)
        names = sorted(os.listdir(volume))
        takes, writes, deletes, fsync_worst = [], [], [], []
        for rnd in range(args.rounds):
            snaps = []
            for i in range(args.snapshots):
                churn = rng.sample(names, args.churn)
                settle(mnt)
                writes.append(timed(lambda: (rewrite(volume, churn, args.file_bytes, rng), os.sync())))  # noqa: B023
                snap = os.path.join(mnt, f"snap-{rnd}-{i}")
                settle(mnt)
                takes.append(timed(lambda: btrfsutil.create_snapshot(volume, snap, read_only=True)))  # noqa: B023
                snaps.append(snap)
            settle(mnt)
            with fsync_probe(mnt) as stalls:
                deletes.append(timed(lambda: ([btrfsutil.delete_subvolume(s) for s in snaps], settle(mnt))))  # noqa: B023
            fsync_worst.append(max(stalls))
        out["take_ms_median"] = round(statistics.median(takes), 2)
        out["write_ms_median"] = round(statistics.median(writes), 1)
        out["delete_all_ms_median"] = round(statistics.median(deletes), 1)
        out["fsync_worst_ms_during_delete"] = round(max(fsync_worst), 1)
        # what is counted, on a volume made after quotas were on (squota ignores older extents)
        fresh = os.path.join(mnt, "fresh")
        btrfsutil.create_subvolume(fresh)
        fill(fresh, args.files, args.file_bytes, rng)
        out["volume_data_bytes"] = args.files * args.file_bytes
        out["referenced_of_volume"] = referenced(mnt, fresh)
        snap = os.path.join(mnt, "held")
        btrfsutil.create_snapshot(fresh, snap, read_only=True)
        rewrite(fresh, sorted(os.listdir(fresh)), args.file_bytes, rng)
        out["referenced_after_snapshot_and_full_rewrite"] = referenced(mnt, fresh)
        clone = os.path.join(mnt, "restored")
        btrfsutil.create_snapshot(snap, clone, read_only=False)
        out["referenced_of_writable_snapshot"] = referenced(mnt, clone)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.btrfs_quotas", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="one small size, one round (CI)")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--file-bytes", type=int, default=16 * 1024, help="over 2 KiB, or btrfs inlines them")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--snapshots", type=int, default=10, help="snapshots per round, deleted together")
    parser.add_argument("--churn", type=int, default=1_000, help="files rewritten before each snapshot")
    parser.add_argument("--image-size", default="8G")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, in order: {', '.join(MODES)}")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.files, args.rounds, args.snapshots, args.churn = 500, 1, 2, 50
    modes = args.modes.split(",")
    if not set(modes) <= set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    results = [measure(mode, args) for mode in modes]
    text = json.dumps({"files": args.files, "file_bytes": args.file_bytes, "results": results}, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
