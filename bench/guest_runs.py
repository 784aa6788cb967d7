"""What the benchmarks of running guests (``vm_snapshots``, ``system_snapshots``) share around their
measurements: the machine they ran on, libvirtd and the test guest for the run, and an entry point that
says when a run was interrupted."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from bench.report import machine_info
from bench.volume_snapshots import signals_deferred
from snapkeep.hypervisor.daemons import StartedDaemons, ensure_libvirtd, stop_daemons
from snapkeep.testguest import GuestImage, build_test_guest

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def host_info() -> dict[str, object]:
    """The machine as the volume benchmark describes it, plus the virtualisation stack and the load."""
    info = machine_info(PROJECT_ROOT)
    for key, argv in (("libvirt", ["virsh", "--version"]), ("qemu", ["qemu-system-x86_64", "--version"])):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        info[key] = (done.stdout.strip().splitlines() or ["unavailable"])[0]
    info["loadavg_at_start"] = os.getloadavg()
    return info


@contextmanager
def guest_image(console: Console) -> Iterator[GuestImage]:
    """The test guest, with libvirtd running for the run: started here if it was not (and stopped again at
    the end, by the pids started, even on Ctrl-C)."""
    daemons = StartedDaemons()
    try:
        daemons = ensure_libvirtd()
        if daemons.started:
            console.print(f"started {', '.join(daemons.pids)} (stopped again at the end)")
        yield build_test_guest()
    finally:
        with signals_deferred():
            stop_daemons(daemons)


def run(main: Callable[[], int]) -> int:
    """Entry point: an interrupted run says so and exits 130, after every clean-up has run."""
    try:
        return main()
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc or 'Ctrl-C'}); VMs, domains, mounts and daemons cleaned up", file=sys.stderr)
        return 130
