"""Find, stop and resume the writers of a directory tree (see the package docstring for why)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from snapkeep.errors import QuiesceFailed

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR
_MAX_ROUNDS = 5


@dataclass(frozen=True)
class Process:
    """A process by id and start time, so that a recycled pid is never signalled by mistake."""

    pid: int
    start_time: int


def _stat_fields(pid: int, task: int | None = None) -> list[str]:
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    with open(path) as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()


def identify(pid: int) -> Process | None:
    try:
        return Process(pid, int(_stat_fields(pid)[19]))
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None


def _alive(proc: Process) -> bool:
    return identify(proc.pid) == proc


def writers_of(trees: Sequence[str]) -> set[int]:
    """Ids of processes holding a file under one of ``trees`` open for writing (snapkeep excluded)."""
    prefixes = tuple(os.path.realpath(tree).rstrip("/") + "/" for tree in trees)
    me = os.getpid()
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if not (target + "/").startswith(prefixes):
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    flags = next(int(line.split()[1], 8) for line in info if line.startswith("flags:"))
            except (OSError, StopIteration, ValueError):
                continue
            if flags & _WRITE_FLAGS:
                found.add(pid)
                break
    return found


def _all_threads_stopped(pid: int) -> bool:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return all(_stat_fields(pid, int(t))[0] in ("T", "t") for t in tasks)
    except (FileNotFoundError, ProcessLookupError):
        return True  # it exited: it writes no more


def _stopped_already(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] in ("T", "t")
    except (FileNotFoundError, ProcessLookupError):
        return True


def pause_writers(trees: Sequence[str], timeout: float, record: Callable[[list[Process]], None]) -> list[Process]:
    """Stop every writer of ``trees`` and return them; each is handed to ``record`` (with all before it)
    before it is stopped, so that a crash leaves no stopped process unrecorded.

    Rescans until no unstopped writer is left, so a process that opened a file during the first scan
    is caught too. Raises :class:`QuiesceFailed` (after resuming whatever it stopped) when a writer
    cannot be stopped within ``timeout`` seconds.
    """
    paused: list[Process] = []
    deadline = time.monotonic() + timeout
    try:
        for _round in range(_MAX_ROUNDS):
            fresh = [
                pid for pid in writers_of(trees) if pid not in {p.pid for p in paused} and not _stopped_already(pid)
            ]
            if not fresh:
                return paused
            for pid in fresh:
                proc = identify(pid)
                if proc is None:
                    continue
                paused.append(proc)
                record(paused)
                try:
                    os.kill(pid, signal.SIGSTOP)
                except ProcessLookupError:
                    paused.remove(proc)  # it exited: it writes no more
                except PermissionError as exc:
                    raise QuiesceFailed(f"process {pid} writing to the volume may not be paused: {exc}") from exc
            for proc in paused:
                while not _all_threads_stopped(proc.pid):
                    if time.monotonic() > deadline:
                        raise QuiesceFailed(f"process {proc.pid} did not pause within {timeout:g} s")
                    time.sleep(0.0005)
        raise QuiesceFailed(f"writers of the volume kept appearing after {_MAX_ROUNDS} rounds")
    except BaseException:
        resume(paused)
        raise


def resume(processes: list[Process]) -> None:
    """SIGCONT each process that is still the one that was stopped; never raises for a gone one."""
    for proc in processes:
        if _alive(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)


NFS_EXPORT_TABLES = ("/proc/fs/nfsd/exports", "/var/lib/nfs/etab")
KSMBD_CONFIGS = ("/etc/ksmbd/ksmbd.conf",)  # what ksmbd.mountd reads by default
KSMBD_LOADED = ("/sys/module/ksmbd", "/sys/class/ksmbd-control")  # either, while the SMB server is in the kernel


def kernel_served(tree: str, tables: Sequence[str] | None = None) -> str | None:
    """The kernel NFS export covering ``tree`` (or inside it), if any: its nfsd threads write without file
    descriptors, so pausing processes cannot quiesce such a volume and snapkeep must not claim it did."""
    for table in NFS_EXPORT_TABLES if tables is None else tables:
        for line in _lines(table) or ():
            exported = line.split()[0] if line.strip() and not line.lstrip().startswith("#") else None
            if exported is not None and (found := _covering(tree, exported)) is not None:
                return found
    return None


def smb_served(tree: str, configs: Sequence[str] | None = None, loaded: Sequence[str] | None = None) -> str | None:
    """Why ``tree`` may be written by ksmbd, the in-kernel SMB server, whose threads write without file
    descriptors too: a share whose ``path`` covers it (or lies inside it), or, with ksmbd in the kernel, a
    configuration that cannot be read (then snapkeep cannot tell, and must not claim a quiesce)."""
    configs = KSMBD_CONFIGS if configs is None else configs
    if not any(os.path.exists(marker) for marker in (KSMBD_LOADED if loaded is None else loaded)):
        return None
    readable = [lines for lines in map(_lines, configs) if lines is not None]
    if not readable:
        return f"ksmbd is loaded and its shares cannot be read ({', '.join(configs)})"
    for lines in readable:
        for line in lines:
            key, sep, value = line.partition("=")
            if sep and key.strip().lower() == "path" and (found := _covering(tree, value.strip())) is not None:
                return f"ksmbd share {found}"
    return None


def _lines(path: str) -> list[str] | None:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except OSError:
        return None


def _covering(tree: str, shared: str) -> str | None:
    """``shared`` if it covers ``tree`` or lies inside it (the kernel serves it from there)."""
    target = os.path.realpath(tree).rstrip("/") + "/"
    path = os.path.realpath(shared).rstrip("/") + "/"
    return (path.rstrip("/") or "/") if target.startswith(path) or path.startswith(target) else None
