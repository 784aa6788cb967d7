"""The storage pool: one directory on a copy-on-write filesystem holding datasets and their snapshots.

Layout (written down in docs/format.md)::

    <pool>/snapkeep-pool.json          format_version and driver
    <pool>/datasets/<dataset>          live data of one VM or volume (subvolume or directory)
    <pool>/snapshots/<id>/data/<ds>    frozen copy of each dataset in snapshot <id>
    <pool>/snapshots/<id>/manifest.json  what the snapshot holds (the catalog can be rebuilt from it)
    <pool>/staging/<op>/               work in progress; whatever is here at start-up is garbage
    <pool>/trash/<op>/                 data a restore replaced, queued to be freed in the background

A snapshot exists in the pool only once its directory has been renamed from ``staging/`` into
``snapshots/``: data first, manifest second, rename last. Restores build the new dataset in
``staging/`` and swap it in with one ``renameat2(RENAME_EXCHANGE)``.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

from snapkeep.durable import fsync_dir, write_durably
from snapkeep.errors import NotFound, PoolError, PoolFull
from snapkeep.model.types import Space
from snapkeep.storage import tree
from snapkeep.storage.detect import choose_driver
from snapkeep.storage.drivers import Driver
from snapkeep.storage.linux import FIEMAP_EXTENT_SHARED, exchange, extents, reflink, syncfs

FORMAT_VERSION = 1
POOL_FILE = "snapkeep-pool.json"
MANIFEST = "manifest.json"


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn the kernel's ``OSError`` into snapkeep's errors, naming what was being done."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise PoolFull(f"{action}: the pool is full ({exc.strerror})") from exc
        raise PoolError(f"{action}: {exc.strerror or exc}", errno=exc.errno) from exc


class Pool:
    def __init__(self, root: str, driver: Driver) -> None:
        self.root = root
        self.driver = driver

    @classmethod
    def open(cls, root: str, allow_slow_copy: bool = False) -> Pool:
        """Open (creating its layout if new) the pool at ``root``; refuses unsupported filesystems."""
        os.makedirs(root, mode=0o755, exist_ok=True)
        driver = choose_driver(root, allow_slow_copy)
        pool = cls(root, driver)
        pool._init_layout()
        return pool

    def _init_layout(self) -> None:
        for sub in ("datasets", "snapshots", "staging", "trash"):
            os.makedirs(os.path.join(self.root, sub), mode=0o755, exist_ok=True)
        marker = os.path.join(self.root, POOL_FILE)
        if os.path.exists(marker):
            with open(marker) as f:
                info = json.load(f)
            if info.get("format_version") != FORMAT_VERSION:
                raise PoolError(
                    f"pool at {self.root} has format_version {info.get('format_version')}; "
                    f"this snapkeep reads version {FORMAT_VERSION} only"
                )
            return
        write_durably(marker, json.dumps({"format_version": FORMAT_VERSION, "driver": self.driver.name}))

    # --- paths -------------------------------------------------------------------------------------
    def dataset_path(self, dataset: str) -> str:
        return os.path.join(self.root, "datasets", dataset)

    def snapshot_dir(self, snap_id: str) -> str:
        return os.path.join(self.root, "snapshots", snap_id)

    def snapshot_data_path(self, snap_id: str, dataset: str) -> str:
        path = os.path.join(self.snapshot_dir(snap_id), "data", dataset)
        if not os.path.lexists(path):
            raise NotFound(f"snapshot {snap_id} holds no dataset {dataset} in the pool", snapshot=snap_id)
        return path

    def dataset_tree(self, dataset: str) -> str:
        """The directory where a dataset's live files are (what NAS users see of a volume)."""
        return self.dataset_path(dataset)

    def snapshot_tree(self, snap_id: str, dataset: str) -> AbstractContextManager[str]:
        """The directory holding a snapshot's read-only copy of ``dataset``, valid inside the ``with``."""
        return nullcontext(self.snapshot_data_path(snap_id, dataset))

    def staging_dir(self, op_id: str) -> str:
        return os.path.join(self.root, "staging", op_id)

    # --- datasets ----------------------------------------------------------------------------------
    def create_dataset(self, dataset: str) -> str:
        path = self.dataset_path(dataset)
        with translated(f"creating dataset {dataset}"):
            self.driver.make_dataset(path)
            os.chmod(path, 0o755)
        return path

    def destroy_dataset(self, dataset: str) -> None:
        with translated(f"destroying dataset {dataset}"):
            self.driver.remove_dataset(self.dataset_path(dataset))

    def create_sparse_file(self, dataset: str, name: str, size: int) -> str:
        """A new raw sparse file (a VM disk) of ``size`` bytes in ``dataset``: no data is written."""
        path = os.path.join(self.dataset_path(dataset), name)
        with translated(f"creating {name} in {dataset}"):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
        return path

    def set_size_limit(self, dataset: str, limit: int) -> None:
        """Enforce ``limit`` bytes on a dataset (a no-op where ``driver.limits_enforced`` is False)."""
        with translated(f"setting the size limit of {dataset}"):
            self.driver.set_size_limit(self.dataset_path(dataset), limit)

    def list_datasets(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.root, "datasets")))

    # --- snapshots ---------------------------------------------------------------------------------
    def capture(self, snap_id: str, datasets: Sequence[str]) -> None:
        """Freeze a copy of each dataset into ``staging/<snap_id>``: the step inside the quiesce window."""
        data_dir = os.path.join(self.staging_dir(snap_id), "data")
        with translated(f"capturing snapshot {snap_id}"):
            os.makedirs(data_dir, mode=0o755)
            for dataset in datasets:
                self.driver.frozen_copy(self.dataset_path(dataset), os.path.join(data_dir, dataset))

    def seal(self, snap_id: str, manifest: bytes) -> None:
        """Write the manifest beside the data, flush, and publish the snapshot with one rename."""
        staged = self.staging_dir(snap_id)
        with translated(f"sealing snapshot {snap_id}"):
            write_durably(os.path.join(staged, MANIFEST), manifest.decode())
            syncfs(self.root)
            os.rename(staged, self.snapshot_dir(snap_id))
            fsync_dir(os.path.join(self.root, "snapshots"))

    def discard(self, op_id: str) -> None:
        """Remove whatever an operation left in ``staging/<op_id>`` (idempotent)."""
        self._remove_holder(self.staging_dir(op_id), f"discarding {op_id}")

    def delete_snapshot(self, snap_id: str) -> None:
        """Remove a snapshot: unpublish it first (rename into staging), then free its data."""
        published = self.snapshot_dir(snap_id)
        if not os.path.lexists(published):
            return
        doomed = self.staging_dir(f"delete-{snap_id}")
        with translated(f"deleting snapshot {snap_id}"):
            os.rename(published, doomed)
        self._remove_holder(doomed, f"deleting snapshot {snap_id}")

    def _remove_holder(self, holder: str, action: str) -> None:
        data_dir = os.path.join(holder, "data")
        with translated(action):
            if os.path.isdir(data_dir):
                for name in os.listdir(data_dir):
                    self.driver.remove_dataset(os.path.join(data_dir, name))
            tree.remove_tree(holder)

    def has_snapshot(self, snap_id: str) -> bool:
        return os.path.isfile(os.path.join(self.snapshot_dir(snap_id), MANIFEST))

    def read_manifest(self, snap_id: str) -> bytes:
        with (
            translated(f"reading the manifest of snapshot {snap_id}"),
            open(os.path.join(self.snapshot_dir(snap_id), MANIFEST), "rb") as f,
        ):
            return f.read()

    def list_snapshots(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.root, "snapshots")))

    def list_staging(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.root, "staging")))

    # --- restores and clones -----------------------------------------------------------------------
    def restore_dataset(self, snap_id: str, dataset: str, op_id: str) -> None:
        """Replace ``dataset`` by its copy in ``snap_id``: build aside, swap atomically, free the old."""
        self.swap_in_snapshot(snap_id, dataset, op_id)
        self.discard(op_id)

    def swap_in_snapshot(self, snap_id: str, dataset: str, op_id: str) -> None:
        """Replace ``dataset`` by its copy in ``snap_id``, keeping the replaced data in ``staging/<op_id>`` so
        that :meth:`swap_back` can undo it until :meth:`discard` frees it."""
        source = self.snapshot_data_path(snap_id, dataset)
        staged_dir = self.staging_dir(op_id)
        staged = os.path.join(staged_dir, "data", dataset)
        try:
            with translated(f"restoring {dataset} from snapshot {snap_id}"):
                os.makedirs(os.path.dirname(staged), mode=0o755)
                self.driver.writable_copy(source, staged)
                exchange(staged, self.dataset_path(dataset))
        except BaseException:
            self.discard(op_id)  # before the exchange: only the new copy, never the live data
            raise

    def retire(self, op_id: str) -> None:
        """Queue what ``staging/<op_id>`` holds (the data a restore replaced) to be freed later, with one
        rename into ``trash/``: freeing costs time per file, and the restore is done without it.

        Not flushed: a crash that loses the rename leaves the data in ``staging/``, which the start-up
        reconciler removes, so nothing leaks either way; flushing would cost the restore a log force
        (140-230 ms on XFS after cloning 20,000 files)."""
        with translated(f"queueing the data replaced by {op_id} to be freed"):
            os.rename(self.staging_dir(op_id), os.path.join(self.root, "trash", op_id))

    def list_retired(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.root, "trash")))

    def free_retired(self) -> list[str]:
        """Free everything queued in ``trash/`` (idempotent; what a crash left is freed by the next call)."""
        freed = []
        for op_id in self.list_retired():
            self._remove_holder(os.path.join(self.root, "trash", op_id), f"freeing the data replaced by {op_id}")
            freed.append(op_id)
        return freed

    def swap_back(self, dataset: str, op_id: str) -> None:
        """Undo :meth:`swap_in_snapshot`: the replaced data goes back in place atomically."""
        with translated(f"putting {dataset} back as it was"):
            exchange(os.path.join(self.staging_dir(op_id), "data", dataset), self.dataset_path(dataset))
        self.discard(op_id)

    def clone_dataset(self, snap_id: str, dataset: str, new_dataset: str) -> str:
        """A new writable dataset holding the snapshot's copy of ``dataset``."""
        target = self.dataset_path(new_dataset)
        if os.path.lexists(target):
            raise PoolError(f"dataset {new_dataset} already exists; refusing to clone over it")
        with translated(f"cloning {dataset} from snapshot {snap_id}"):
            try:
                self.driver.writable_copy(self.snapshot_data_path(snap_id, dataset), target)
            except BaseException:
                self.driver.remove_dataset(target)
                raise
        return target

    def copy_tree(self, src: str, dst: str) -> None:
        """Copy a file or tree within the pool (reflink, or bytes in slow mode); nothing left on failure."""
        copier = tree.copy_bytes if self.driver.slow else reflink
        with translated(f"copying {os.path.basename(src)}"):
            tree.clone_tree(src, dst, copier)

    def put_in_place(self, staged: str, dest: str) -> None:
        """Move ``staged`` to ``dest`` atomically, replacing whatever ``dest`` held (then freed)."""
        with translated(f"replacing {os.path.basename(dest)}"):
            try:
                if os.path.lexists(dest):
                    exchange(staged, dest)
                    tree.remove_tree(staged)
                else:
                    os.rename(staged, dest)
            except BaseException:
                tree.remove_tree(staged)
                raise

    # --- accounting --------------------------------------------------------------------------------
    def space(self, snap_id: str) -> Space:
        """Bytes of the snapshot's file extents that are shared (with its source or other copies) or not.

        Uses FIEMAP's SHARED flag on every file: no quota groups, so nothing rescans the filesystem.
        Costs one ioctl per file and per 128 extents, so callers run it outside the snapshot window.
        """
        exclusive = shared = 0
        with translated(f"measuring snapshot {snap_id}"):
            for path in _regular_files(os.path.join(self.snapshot_dir(snap_id), "data")):
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    for length, flags in extents(fd):
                        if flags & FIEMAP_EXTENT_SHARED:
                            shared += length
                        else:
                            exclusive += length
                finally:
                    os.close(fd)
        return Space(exclusive_bytes=exclusive, shared_bytes=shared)

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize


def _regular_files(top: str) -> Iterator[str]:
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                yield path
