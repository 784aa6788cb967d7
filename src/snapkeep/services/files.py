"""Single-file restores: browse a snapshot read-only and copy chosen files or folders back into a volume.

Paths are relative to the volume's root and are bytes underneath (names need not be UTF-8); they are
checked here (no ``..``, not absolute, within the kernel's limits) and then resolved only through
directory descriptors by :mod:`snapkeep.storage.filerestore`, which never follows a symlink inside a
volume, so a user swapping folders for symlinks meanwhile cannot redirect a read or a write. The copy is
built in a private folder beside its destination and swapped in atomically, so a full disk leaves the old
file whole. An extract that replaces something is an in-place restore: a pre-restore snapshot of the
destination volume is taken first, so it can be undone (extracting back out of that snapshot).

A file or folder restored to its own place (the same path in the volume it was taken from) replaces what is
there: that is what the restore is for. Sent anywhere else, the destination is a name the caller gave, and
something already there is a :class:`NameClash` (SPEC §3: "a clash is a clear error, not an overwrite")
unless the caller asked to replace it (``replace``; the web UI's confirmation page asks).

Special files (FIFOs, sockets, devices) are listed by browse but never opened: extracting one by name is
refused, and inside an extracted folder they are skipped and counted in the result (``skipped_special``):
root recreating device nodes inside a share would hand its users those devices.

Before an extract makes its private folder it records where in an intent file
(``<run dir>/extract-<op>.json``), and the folder's identity once it is made; a crash leaves the file, and
:func:`clear_interrupted_extracts` (run by the reconciler at start-up) removes what the extract left,
without walking the volume, from that folder only (users can give its name to another).

Downloads are bounded (:meth:`Files.download`): per caller, and in snapshots mounted for them at once
(browsing and extracting are brief, so they are not refused; they share a mounted snapshot too).

Browsing needs any role, extracting an operator (the table in :mod:`snapkeep.services`); the snapshot and
the destination volume are looked up in the caller's scope, so one outside it is :class:`NotFound`.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import uuid
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta

from snapkeep.catalog.db import Database
from snapkeep.engine.intents import Intent, IntentKind, Intents
from snapkeep.errors import InvalidInput, InvalidPath, NameClash, PoolFull, SnapkeepError
from snapkeep.model import relpath
from snapkeep.model.manifest import ManifestObject
from snapkeep.model.paging import Page, Window, page_of
from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import FileEntry, Job, Snapshot, SnapshotKind, SubjectType, Volume
from snapkeep.model.units import format_size
from snapkeep.services.audit import Audit
from snapkeep.services.download_slots import DownloadSlots
from snapkeep.services.guards import Claim, exclusive, shared
from snapkeep.services.jobs import JobRunner, Progress
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.space import CLONE_ALLOWANCE, SpaceRule
from snapkeep.services.volumes import Volumes
from snapkeep.storage import filerestore, tarstream
from snapkeep.storage.pool import INTERNAL_NAMES, Pool

log = logging.getLogger(__name__)

PathArg = str | bytes
"""A path relative to a volume's root: bytes, or text as Python holds file names (``os.fsencode``)."""


def parts_of(path: PathArg) -> tuple[bytes, ...]:
    return relpath.split(os.fsencode(path) if isinstance(path, str) else path)


def _shown(parts: tuple[bytes, ...]) -> str:
    return relpath.shown(b"/".join(parts))


@dataclass(frozen=True)
class ExtractPlan:
    snap_id: str
    dataset: str  # the snapshot's dataset holding the source
    source: tuple[bytes, ...]
    volume: Volume
    dest: tuple[bytes, ...]
    replaces: bool = False  # something is at the destination now: the extract replaces it


class Download:
    """A file or folder being read out of a snapshot: its entry, and its bytes a chunk at a time
    (:meth:`chunks`, once): a file's own, a folder's as a tar archive (:mod:`snapkeep.storage.tarstream`,
    whose length is known only at its end). :meth:`close` stops the reading where it is (the descriptors a
    folder's archive holds go at once: a server never closes the iterator it was reading) and lets the
    snapshot go; reading to the end closes it too."""

    CHUNK = 1 << 20

    def __init__(self, entry: FileEntry, fd: int, held: ExitStack) -> None:
        self.entry = entry
        self._fd = fd
        self._held = held
        self._reading: Generator[bytes, None, None] | None = None

    @property
    def is_folder(self) -> bool:
        return self.entry.type == "dir"

    def chunks(self) -> Iterator[bytes]:
        self._reading = self._read()
        return self._reading

    def _read(self) -> Generator[bytes, None, None]:
        try:
            if self.is_folder:
                yield from tarstream.folder_archive(self._fd, os.fsencode(self.entry.name))
            else:
                while chunk := os.read(self._fd, self.CHUNK):
                    yield chunk
        finally:
            self._held.close()

    def close(self) -> None:
        if self._reading is not None:
            with contextlib.suppress(ValueError):  # being read on another thread now: it ends by itself
                self._reading.close()
        self._held.close()  # idempotent: the callbacks run once


class Files:
    def __init__(
        self,
        db: Database,
        pool: Pool,
        audit: Audit,
        volumes: Volumes,
        snapshots: Snapshots,
        intents: Intents,
        jobs: JobRunner,
        downloads: DownloadSlots,
        snapshot_mounts: int,
        pre_restore_keep: timedelta,
        space: SpaceRule,
    ) -> None:
        self._space = space
        self._pre_restore_keep = pre_restore_keep  # how long the snapshot taken before a replacing extract stays
        self._jobs = jobs
        self._downloads = downloads
        self._snapshot_mounts = snapshot_mounts  # at most this many snapshot images mounted for downloads
        self._db = db
        self._pool = pool
        self._audit = audit
        self._volumes = volumes
        self._snapshots = snapshots
        self._intents = intents

    def _source(self, snap_id: str, who: Principal, volume: str | None) -> ManifestObject:
        """The volume a snapshot holds (``volume``: which one, out of a system or tenant snapshot), if it is
        ready (VM disk images are not handed out as files)."""
        snap = self._snapshots.restorable(snap_id, who)  # outside the caller's scope: NotFound
        manifest = self._snapshots.manifest(snap_id)
        if snap.kind in (SnapshotKind.SYSTEM, SnapshotKind.TENANT):
            if volume is None:
                raise InvalidInput(f"snapshot {snap.name!r} holds many volumes; name the one to read", snapshot=snap_id)
            return manifest.member(SubjectType.VOLUME, volume, who.tenant_id)
        if snap.subject_type != SubjectType.VOLUME:
            raise InvalidInput(f"snapshot {snap_id} is of a {snap.subject_type}; only volume snapshots can be browsed")
        source = manifest.object_of(snap.subject_type, snap.subject_id)
        if volume is not None and volume not in (source.id, source.name):
            raise InvalidInput(f"snapshot {snap.name!r} is of volume {source.name!r}, not {volume!r}")
        return source

    def browse(self, snap_id: str, path: PathArg = "", *, volume: str | None = None, who: Principal) -> list[FileEntry]:
        """The entries of a folder in the snapshot (or the one entry a file path names); any role."""
        parts = _users_parts(path)
        source = self._source(snap_id, who, volume)
        with self._pool.snapshot_tree(snap_id, source.datasets[0]) as root:
            entries = filerestore.browse(root, parts, _shown(parts))
        return entries if parts else [e for e in entries if e.name not in INTERNAL_NAMES]

    def browse_page(
        self, snap_id: str, path: PathArg, window: Window, *, volume: str | None = None, who: Principal
    ) -> Page[FileEntry]:
        """:meth:`browse` a page at a time, by name. The folder is read again for each page (a snapshot's
        folder never changes, so pages stay whole); what paging bounds is the size of each answer."""
        return page_of(self.browse(snap_id, path, volume=volume, who=who), window, lambda entry: (entry.name,))

    def check_extract(
        self,
        snap_id: str,
        path: PathArg,
        *,
        to_volume: str | None = None,
        to_path: PathArg | None = None,
        volume: str | None = None,
        replace: bool = False,
        who: Principal,
    ) -> ExtractPlan:
        """Check an extract request before anything is written, so the API refuses bad ones synchronously;
        operator, as the extract (the plan tells whether a path exists in the live volume now). Something at
        a destination other than the source's own place is a :class:`NameClash` unless ``replace``. Space is
        checked by the extract itself, which measures what it brings first (:meth:`_check_space`)."""
        who.require(Role.OPERATOR)
        source_parts = _users_parts(path)
        if not source_parts:
            raise InvalidPath("name a file or folder to extract, not the whole snapshot (restore it instead)")
        dest = _users_parts(to_path) if to_path is not None else source_parts
        if not dest:
            raise InvalidPath("the destination must be a path inside the volume, not its root")
        if dest[-1].startswith(filerestore.STAGING_PREFIX):
            raise InvalidPath("names starting with .snapkeep-restore- are snapkeep's own", path=_shown(dest))
        source = self._source(snap_id, who, volume)
        with self._pool.snapshot_tree(snap_id, source.datasets[0]) as root:
            filerestore.check_source(root, source_parts, _shown(source_parts))
        target = self._volumes.get(to_volume or source.id, who)
        replaces = filerestore.check_destination(self._pool.dataset_tree(target.dataset), dest, _shown(dest))
        own_place = target.id == source.id and dest == source_parts
        if replaces and not (own_place or replace):
            raise NameClash(
                f"{_shown(dest)!r} exists in volume {target.name!r}: choose another destination, or ask to replace it",
                path=_shown(dest),
                volume=target.name,
            )
        return ExtractPlan(snap_id, source.datasets[0], source_parts, target, dest, replaces)

    def _check_space(self, plan: ExtractPlan, snapshot_first: bool) -> None:
        """Refused (:class:`PoolFull`, nothing changed) unless the extract fits, by what the source takes on
        disk (a walk of its metadata, so it is done in the job, not while a request waits):

        - under the destination volume's size limit: a copy is written while what it replaces is still
          there; a clone (btrfs) is charged as the volume's referenced bytes grow, net of what it replaces,
          which goes right after the swap (the kernel refuses no clone, so this check is what holds the limit);
        - in the pool, beyond its margin: a copy's bytes, and a dataset clone for the pre-restore snapshot."""
        with self._pool.snapshot_tree(plan.snap_id, plan.dataset) as root:
            size = filerestore.measure(root, plan.source, _shown(plan.source))
        copied = self._pool.copies_into(plan.snap_id, plan.dataset, plan.volume.dataset)
        room = self._pool.room(plan.volume.dataset)
        if room is not None:
            tree = self._pool.dataset_tree(plan.volume.dataset)
            freed = filerestore.held_at(tree, plan.dest) if plan.replaces and not copied else 0
            needed = max(0, size - freed)
            if room < needed:
                raise PoolFull(
                    f"volume {plan.volume.name!r} has {format_size(room)} left under its size limit; extracting "
                    f"{_shown(plan.source)!r} needs an estimated {format_size(needed)}: free space in the volume, "
                    "raise its limit, or extract to another volume",
                    volume=plan.volume.name,
                    room=room,
                    needed=needed,
                )
        parts = [f"{format_size(size)} copied"] if copied else ["its data cloned: nothing copied"]
        parts += [f"a pre-restore snapshot at {format_size(CLONE_ALLOWANCE)}"] if snapshot_first else []
        estimate = (size if copied else 0) + (CLONE_ALLOWANCE if snapshot_first else 0)
        self._space.require(estimate, "this file restore", ", ".join(parts))

    def download(self, snap_id: str, path: PathArg, *, volume: str | None = None, who: Principal) -> Download:
        """One file or folder of the snapshot to read (any role, like browsing): its entry and its bytes. The
        snapshot stays readable (an image volume's stays mounted, a mount shared with its other readers)
        until the download is read to its end or closed. Refused, changing nothing, while the caller has as
        many downloads open as one may (:class:`TooManyDownloads`), or when it needs a new mount and the
        host has as many snapshots mounted for downloads as allowed (:class:`SnapshotMountsFull`)."""
        parts = _users_parts(path)
        if not parts:
            raise InvalidPath("name a file or folder to download, not the whole snapshot")
        source = self._source(snap_id, who, volume)
        held = ExitStack()
        try:
            held.callback(self._downloads.take(who.name))  # given back last, once all is let go
            root = held.enter_context(self._pool.snapshot_tree(snap_id, source.datasets[0], self._snapshot_mounts))
            fd, entry = filerestore.open_file(root, parts, _shown(parts))
            held.callback(os.close, fd)  # closed before the snapshot's tree is let go
        except BaseException:
            held.close()
            raise
        return Download(entry, fd, held)

    def claim_extract(self, snap_id: str, to_volume: str | None, who: Principal, volume: str | None = None) -> Claim:
        """An extract reads the snapshot (shared) and writes into the destination volume (exclusive)."""
        snap = self._snapshots.get(snap_id, who)
        if to_volume is None:  # its own place: the snapshot's volume (read from a system one's manifest)
            own = snap.subject_type == SubjectType.VOLUME
            to_volume = snap.subject_id if own else self._source(snap_id, who, volume).id
        target = self._volumes.get(to_volume, who)
        needs = [shared("snapshot", snap.id, snap.name), exclusive("volume", target.id, target.name)]
        return self._snapshots.guards.claim("snapshot.extract", needs)

    def extract(
        self,
        snap_id: str,
        path: PathArg,
        *,
        to_volume: str | None = None,
        to_path: PathArg | None = None,
        volume: str | None = None,
        replace: bool = False,
        pre_restore: bool = True,
        who: Principal,
    ) -> dict[str, object]:
        """Copy ``path`` from the snapshot (from its ``volume``, out of a system snapshot) to ``to_path`` in
        ``to_volume`` (default: its own place in the snapshot's volume), atomically; what is there is
        replaced at its own place, elsewhere only if ``replace`` (:meth:`check_extract`), after a
        pre-restore snapshot of the volume unless ``pre_restore`` is off; operator."""
        who.require(Role.OPERATOR)
        with self.claim_extract(snap_id, to_volume, who, volume):
            return self._extract(snap_id, path, to_volume, to_path, volume, replace, pre_restore, who)

    def submit_extract(
        self,
        snap_id: str,
        path: PathArg,
        *,
        to_volume: str | None = None,
        to_path: PathArg | None = None,
        volume: str | None = None,
        replace: bool = False,
        pre_restore: bool = True,
        params: dict[str, object],
        who: Principal,
    ) -> Job:
        """:meth:`extract` as a job, refused synchronously (bad paths, a clash, busy snapshot or volume);
        ``params`` is what the job shows of the request."""
        who.require(Role.OPERATOR)
        plan = self.check_extract(
            snap_id, path, to_volume=to_volume, to_path=to_path, volume=volume, replace=replace, who=who
        )

        def run(_progress: Progress) -> dict[str, object]:
            return self.extract(
                snap_id,
                path,
                to_volume=to_volume,
                to_path=to_path,
                volume=volume,
                replace=replace,
                pre_restore=pre_restore,
                who=who,
            )

        with self.claim_extract(snap_id, to_volume, who, volume) as claim:
            owner = plan.volume.owner_tenant_id
            return self._jobs.submit("snapshot.extract", params, run, claim=claim, owner_tenant_id=owner)

    def _extract(
        self,
        snap_id: str,
        path: PathArg,
        to_volume: str | None,
        to_path: PathArg | None,
        volume: str | None,
        replace: bool,
        pre_restore: bool,
        who: Principal,
    ) -> dict[str, object]:
        plan = self.check_extract(
            snap_id, path, to_volume=to_volume, to_path=to_path, volume=volume, replace=replace, who=who
        )
        self._check_space(plan, plan.replaces and pre_restore)
        undo = self._snapshot_before(plan, who) if pre_restore else None
        op_id = uuid.uuid4().hex
        parent = b"/".join(plan.dest[:-1])
        record = {"op": op_id, "dataset": plan.volume.dataset, "parent_b64": base64.b64encode(parent).decode()}
        intent = self._intents.make(IntentKind.EXTRACT, op_id, record)

        def made(identity: filerestore.Identity) -> None:  # known before anything is put in it
            self._intents.update(intent, {**record, "staging": list(identity)})

        try:
            with self._pool.snapshot_tree(snap_id, plan.dataset) as root:
                report = filerestore.extract(
                    root,
                    plan.source,
                    self._pool.dataset_tree(plan.volume.dataset),
                    plan.dest,
                    op_id,
                    clone=self._pool.clones_files,
                    shown=(_shown(plan.source), _shown(plan.dest)),
                    replace=plan.replaces,  # only what was there when checked (and kept, unless told not to)
                    made=made,
                )
        except BaseException:
            _clear_intent(self._pool, self._intents, intent)  # normally nothing is left; else the reconciler retries
            raise
        if report.freed:
            self._intents.release(intent)
        else:
            _clear_intent(self._pool, self._intents, intent)
        shown = _shown(plan.dest)
        with self._db.unit() as uow:
            owner, snap = plan.volume.owner_tenant_id, uow.snapshots.get(snap_id)
            source = f"{snap_id}:" if snap.owner_tenant_id == owner else "a snapshot of its parent, "
            detail = f"from {source}{_shown(plan.source)}; {report.skipped_special} special file(s) skipped"
            target = f"volume:{plan.volume.name}/{shown}"
            self._audit.done(uow, who, "snapshot.extract", target, detail, owner=owner)
        done: dict[str, object] = {
            "volume": plan.volume.name,
            "path": shown,
            "skipped_special": report.skipped_special,
            "replaced": plan.replaces,  # what was there (the request's replace matters only elsewhere)
        }
        return done | ({"pre_restore_snapshot_id": undo.id} if undo else {})

    def _snapshot_before(self, plan: ExtractPlan, who: Principal) -> Snapshot | None:
        """An extract that replaces what is at its destination is an in-place restore: undoable through a
        pre-restore snapshot of the volume, taken first (SPEC §3), as the caller, unless the caller said not
        to. One that only adds takes none."""
        if not plan.replaces:
            return None
        return self._snapshots.take_pre_restore("volume", plan.volume.id, self._pre_restore_keep, who, "pre-extract")


def _users_parts(path: PathArg) -> tuple[bytes, ...]:
    """The components of ``path``, refusing snapkeep's own folder at a volume's root (an image volume's
    size-limit reserve), which is neither browsed nor restored over."""
    parts = parts_of(path)
    if parts and os.fsdecode(parts[0]) in INTERNAL_NAMES:
        raise InvalidPath(f"{os.fsdecode(parts[0])!r} at the volume's root is snapkeep's own", path=_shown(parts))
    return parts


def clear_interrupted_extracts(pool: Pool, intents: Intents) -> list[str]:
    """Remove the private folders that extracts interrupted by a crash left in volumes (start-up)."""
    return [intent.op_id for intent in intents.listing(IntentKind.EXTRACT) if _clear_intent(pool, intents, intent)]


def _clear_intent(pool: Pool, intents: Intents, intent: Intent) -> bool:
    """Remove what the extract of ``intent`` left, then the intent; False (intent kept for the next start)
    if that failed."""
    try:
        record = intent.read()
        parent = tuple(p for p in base64.b64decode(record["parent_b64"]).split(b"/") if p)
        if record["dataset"] in pool.list_datasets():
            identity = record.get("staging")  # none: the extract ended (or crashed) before it made its folder
            tree = pool.dataset_tree(record["dataset"])
            filerestore.discard_staging(tree, parent, record["op"], None if identity is None else tuple(identity))
    except (SnapkeepError, OSError, ValueError, KeyError) as exc:
        log.warning("could not remove what the extract of %s left: %s", intent.op_id, exc)
        return False
    intents.release(intent)
    return True
