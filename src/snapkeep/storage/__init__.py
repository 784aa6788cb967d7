"""Storage pool on btrfs or XFS-with-reflink; the only layer that touches the pool's filesystem."""
