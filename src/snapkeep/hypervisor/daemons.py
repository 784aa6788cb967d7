"""Make sure libvirtd and virtlogd run, on hosts (and CI containers) without systemd.

Whoever starts them may stop them again, and only those: ``ensure_libvirtd`` returns the pids of the
daemons it started itself (read from their pid files), and ``stop_daemons`` signals exactly those pids,
so a libvirtd that was already running, or one started by another process, is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

from snapkeep.errors import HypervisorUnavailable

PID_FILES = {"virtlogd": "/run/virtlogd.pid", "libvirtd": "/run/libvirtd.pid"}


@dataclass(frozen=True)
class StartedDaemons:
    """The daemons one ``ensure_libvirtd`` call started: name -> pid (empty if all were running)."""

    pids: dict[str, int] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        return bool(self.pids)


def _run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run one daemon command; a missing binary means the packages are not installed."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise HypervisorUnavailable(
            f"{argv[0]} is not installed (Debian packages libvirt-daemon-system libvirt-clients; run scripts/setup)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise HypervisorUnavailable(f"{argv[0]} did not answer within {timeout:g} s") from exc


def libvirtd_answers(uri: str = "qemu:///system") -> bool:
    return _run(["virsh", "-c", uri, "version"], timeout=15).returncode == 0


def _running_pid(name: str) -> int | None:
    """The pid in ``name``'s pid file if that process is alive and really is ``name``."""
    try:
        with open(PID_FILES[name]) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/comm") as f:
            return pid if f.read().strip() == name else None
    except (OSError, ValueError):
        return None


def _start(name: str) -> int:
    done = _run([name, "-d"])
    deadline = time.monotonic() + 10
    while (pid := _running_pid(name)) is None:
        if time.monotonic() > deadline:
            raise HypervisorUnavailable(f"{name} -d did not start: {done.stderr.strip() or done.returncode}")
        time.sleep(0.05)
    return pid


def ensure_libvirtd(uri: str = "qemu:///system", timeout: float = 30) -> StartedDaemons:
    """Start virtlogd and libvirtd (daemonised, as root) unless ``uri`` already answers.

    Returns the daemons this call started, so the caller can stop exactly those with ``stop_daemons``.
    """
    if libvirtd_answers(uri):
        return StartedDaemons()
    pids: dict[str, int] = {}
    try:
        for name in ("virtlogd", "libvirtd"):
            if _running_pid(name) is None:
                pids[name] = _start(name)
        deadline = time.monotonic() + timeout
        while not libvirtd_answers(uri):
            if time.monotonic() > deadline:
                raise HypervisorUnavailable(f"libvirtd did not answer at {uri} within {timeout:g} s")
            time.sleep(0.1)
    except BaseException:
        stop_daemons(StartedDaemons(pids))
        raise
    return StartedDaemons(pids)


def _alive(pid: int, name: str) -> bool:
    """Whether ``pid`` is still that daemon (not a zombie, not a recycled pid)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            comm, rest = f.read().split(" (", 1)[1].rsplit(")", 1)
        return comm == name and rest.split()[0] != "Z"
    except (OSError, IndexError, ValueError):
        return False


def _has_running_domains(uri: str = "qemu:///system") -> bool:
    try:
        done = _run(["virsh", "-c", uri, "list", "--name"], timeout=10)
    except HypervisorUnavailable:
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def stop_daemons(started: StartedDaemons, timeout: float = 15) -> None:
    """SIGTERM the daemons ``ensure_libvirtd`` started (libvirtd first), SIGKILL what outlives ``timeout``.

    Running guests are not stopped by this: QEMU processes outlive libvirtd. So a libvirtd that still has
    running domains (someone else's, started since) is left running, and virtlogd with it.
    """
    if started.pids and _has_running_domains():
        return
    for name in ("libvirtd", "virtlogd"):
        pid = started.pids.get(name)
        if pid is None or not _alive(pid, name):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid, name):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            time.sleep(0.05)


if __name__ == "__main__":
    started = ensure_libvirtd()
    print(f"libvirtd {'started' if started.started else 'already running'}")
