"""Pausing the processes that write into a NAS volume, so that a snapshot catches no write half-done.

A volume is a plain directory tree; the kernel offers no freeze for part of a filesystem (FIFREEZE
freezes the whole pool, and a btrfs snapshot or a reflink then blocks on the frozen filesystem). So
snapkeep quiesces a volume by stopping, with SIGSTOP, every process that holds a file in it open for
writing, and resuming them with SIGCONT right after the capture. A stopped process is never inside a
``write(2)``: signals stop a thread only on its way back to user space, so once every thread shows
state ``T`` each write it began has completed.

Processes that were already stopped are left alone (and not resumed). Kernel threads (nfsd) write without
file descriptors, so they are not found here at all: a volume the kernel NFS server exports is refused as
unquiescable instead (``kernel_served``), and the caller's policy decides.
"""
