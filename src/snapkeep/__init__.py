"""snapkeep: instant point-in-time snapshots and restores for KVM/libvirt hosts."""

__version__ = "0.1.0"
