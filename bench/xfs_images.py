"""Benchmark: the costs of XFS volumes as image files (issue 6, item 4), on a loop-mounted XFS made here.

    .venv/bin/python -m bench.xfs_images [--files 1000,100000] [--volumes 50] [--repeat 5] [--out FILE]
    .venv/bin/python -m bench.xfs_images --smoke     # 100 files, 3 volumes, one round (what CI runs)

Prints medians (ms) of: a take through the service at each file count (and its frozen window) against what
an operator would run by hand on the same image (``fsfreeze -f``, ``cp --reflink=always`` of the image,
``fsfreeze -u``), loop devices per volume, the clone of a fragmented image, a create (and its mkfs),
mounting every volume at start-up, and a browse mount; writes them as JSON (default
bench/results/xfs_images.json; a temporary file with --smoke).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable

from snapkeep.model.principal import SYSTEM
from snapkeep.services.snapshots import TakeRequest
from snapkeep.storage import images
from snapkeep.storage.linux import extents
from snapkeep.storage.pool import Pool
from snapkeep.storage.tree import clone_file
from tests.conftest import build_services, make_traversable_tmp, mount_fs, unmount_fs


def ms(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


RESULTS: dict[str, float] = {}


def median(samples: list[float], key: str = "") -> str:
    """The samples' median as a line of the table (and, under ``key``, in the JSON results)."""
    if key:
        RESULTS[key] = round(statistics.median(samples), 2)
    return f"{statistics.median(samples):8.1f} ms (min {min(samples):.1f}, max {max(samples):.1f}, n={len(samples)})"


def bare_take(vol_path: str, image: str, dst: str) -> None:
    """The operator's own point-in-time copy of an image volume: freeze, clone the image, thaw."""
    subprocess.run(["fsfreeze", "-f", vol_path], check=True)
    try:
        subprocess.run(["cp", "--reflink=always", image, dst], check=True)
    finally:
        subprocess.run(["fsfreeze", "-u", vol_path], check=True)


def loop_devices(root: str) -> int:
    out = subprocess.run(["losetup", "-l", "-n", "-O", "BACK-FILE"], capture_output=True, text=True, check=True)
    return sum(1 for line in out.stdout.splitlines() if line.strip().startswith(root))


def write_files(top: str, count: int) -> None:
    for d in range(max(1, count // 1000)):
        os.makedirs(os.path.join(top, f"d{d}"), exist_ok=True)
        for i in range(min(count, 1000)):
            with open(os.path.join(top, f"d{d}", f"f{i}"), "w") as f:
                f.write(f"{d}/{i}\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.xfs_images", description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="1000,100000")
    parser.add_argument("--volumes", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--random-writes", type=int, default=200_000, help="4 KiB writes that fragment an image")
    parser.add_argument("--smoke", action="store_true", help="100 files, 3 volumes, one round (CI)")
    parser.add_argument("--out", help="JSON results")
    args = parser.parse_args()
    if args.smoke:
        args.files, args.volumes, args.repeat, args.random_writes = "100", 3, 1, 2_000
    out = args.out or (
        tempfile.mkstemp(prefix="xfs_images-", suffix=".json")[1] if args.smoke else "bench/results/xfs_images.json"
    )
    fs = mount_fs("xfs", "40G")
    try:
        pool = Pool.open(fs.new_dir("pool"))
        svc = build_services(make_traversable_tmp("snapkeep-bench-"), pool)
        try:
            for count in (int(c) for c in args.files.split(",")):
                vol = svc.volumes.create(f"files-{count}", 10 << 30, who=SYSTEM)
                write_files(vol.path, count)
                takes, windows = [], []
                for r in range(args.repeat + 1):
                    os.sync()
                    started = time.perf_counter()
                    snap = svc.snapshots.take(TakeRequest(ref=vol.id, name=f"t{r}"), who=SYSTEM)
                    if r:  # the first one is a warm-up
                        takes.append((time.perf_counter() - started) * 1000)
                        windows.append(snap.paused_window_ms or 0.0)
                print(f"take, {count:>7} files:        {median(takes, f'take ms, {count} files')}")
                print(f"  frozen window:             {median(windows, f'frozen window ms, {count} files')}")
                bare = []
                for r in range(args.repeat):
                    os.sync()  # as before each take: back to back, a freeze skips its RCU waits (storage/rcu.py)
                    dst = os.path.join(pool.root, "staging", f"bare-{count}-{r}.xfs")
                    bare.append(ms(lambda d=dst, v=vol.path: bare_take(v, images.image_of(v), d)))
                    os.unlink(dst)
                print(f"  bare fsfreeze + cp --reflink + unfreeze: {median(bare, f'bare take ms, {count} files')}")
                RESULTS[f"take / bare, {count} files"] = round(statistics.median(takes) / statistics.median(bare), 2)
                print(f"loop devices, this volume:   {loop_devices(vol.path)}")
                with pool.snapshot_tree(snap.id, vol.dataset):
                    print(f"  while one snapshot is browsed: {loop_devices(pool.root)} in the pool")
                browse = []
                for _ in range(args.repeat):
                    cm = pool.snapshot_tree(snap.id, vol.dataset)
                    started = time.perf_counter()
                    with cm as root:
                        os.listdir(root)
                    browse.append((time.perf_counter() - started) * 1000)
                print(f"browse (mount, list, unmount): {median(browse, f'browse ms, {count} files')}")

            # a written 1 GiB file, a snapshot, then 4 KiB random writes: each one unshares a piece of the
            # image from the snapshot's clone, as on a database or VM-disk volume that has snapshots
            frag = svc.volumes.create("fragmented", 10 << 30, who=SYSTEM)
            target = os.path.join(frag.path, "random.bin")
            with open(target, "wb") as f:
                for _ in range(4 if args.smoke else 256):
                    f.write(os.urandom(4 << 20))
            os.sync()
            svc.snapshots.take(TakeRequest(ref=frag.id, name="before-random-writes"), who=SYSTEM)
            fd = os.open(target, os.O_WRONLY)
            block = os.urandom(4096)
            for i in range(args.random_writes):
                os.pwrite(fd, block, ((i * 7919) % (1 << 18)) * 4096)
                if i % 20_000 == 0:
                    os.fsync(fd)
            os.fsync(fd)
            os.close(fd)
            os.sync()
            image = images.image_of(frag.path)
            with open(image, "rb") as f:
                count = sum(1 for _ in extents(f.fileno()))
            clones = []
            for r in range(args.repeat):
                dst = os.path.join(pool.root, "staging", f"frag-clone-{r}")
                clones.append(ms(lambda d=dst: clone_file(image, d)))
                os.unlink(dst)
            RESULTS["fragmented image extents"] = count
            print(f"clone of an image with {count} extents: {median(clones, 'fragmented clone ms')}")
            frag_takes, frag_windows = [], []
            for r in range(3):
                started = time.perf_counter()
                snap = svc.snapshots.take(TakeRequest(ref=frag.id, name=f"f{r}"), who=SYSTEM)
                frag_takes.append((time.perf_counter() - started) * 1000)
                frag_windows.append(snap.paused_window_ms or 0.0)
            print(f"take of that volume:         {median(frag_takes, 'fragmented take ms')}")
            print(f"  frozen window:             {median(frag_windows, 'fragmented frozen window ms')}")

            creates = [
                ms(lambda i=i: svc.volumes.create(f"many-{i}", 1 << 30, who=SYSTEM)) for i in range(args.volumes)
            ]
            print(f"volume create (mkfs, mount, limit): {median(creates, 'volume create ms')}")
            mkfs = []
            for i in range(args.repeat):
                path = os.path.join(pool.root, "staging", f"mkfs-{i}.xfs")
                mkfs.append(ms(lambda p=path: images.make(p)))
                os.unlink(path)
            print(f"  of which mkfs.xfs:         {median(mkfs, 'mkfs ms')}")
            datasets = [d for d in pool.list_datasets() if pool.is_image_volume(d)]
            for d in datasets:
                images.unmount(pool.dataset_path(d))
            started = time.perf_counter()
            Pool.open(pool.root)
            total = (time.perf_counter() - started) * 1000
            print(f"start-up mount of {len(datasets)} volumes: {total:8.1f} ms ({total / len(datasets):.1f} ms each)")
            RESULTS["start-up mount ms per volume"] = round(total / len(datasets), 2)
            empty = datasets[-min(10, args.volumes) :]
            used = sum(os.stat(images.image_of(pool.dataset_path(d))).st_blocks * 512 for d in empty) / len(empty)
            print(f"pool space of an empty volume: {used / (1 << 20):.1f} MiB")
            RESULTS["pool MiB per empty volume"] = round(used / (1 << 20), 1)
        finally:
            svc.close()
    finally:
        unmount_fs(fs)
    with open(out, "w") as f:
        json.dump({"args": vars(args), "results": RESULTS}, f, indent=2)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
