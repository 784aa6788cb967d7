"""A tiny real Linux guest for tests and the demo: Debian's cloud kernel, busybox and the host's qemu-ga.

Its init mounts the data disk (/dev/vda, ext4) at /data, runs the guest agent, appends an increasing
counter to /data/counter every 50 ms (mirroring each value into the first sector of a second disk, if the
VM has one) and powers off cleanly on ACPI power button or `guest-shutdown`.
``build_test_guest()`` builds and caches the kernel and initramfs; ``disk`` makes and inspects data disks.
"""

from snapkeep.testguest.builder import DEFAULT_CACHE_DIR, GuestImage, build_test_guest
from snapkeep.testguest.disk import (
    FsckResult,
    counter_is_intact,
    fsck,
    make_data_disk,
    parse_counter,
    read_counter,
    read_file,
    read_mirror,
)

__all__ = [
    "DEFAULT_CACHE_DIR",
    "FsckResult",
    "GuestImage",
    "build_test_guest",
    "counter_is_intact",
    "fsck",
    "make_data_disk",
    "parse_counter",
    "read_counter",
    "read_file",
    "read_mirror",
]
