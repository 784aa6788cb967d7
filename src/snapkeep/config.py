"""Settings, loaded once at the edge (``serve`` / CLI) and passed down; the core never reads os.environ."""

from __future__ import annotations

import os

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from snapkeep import defaults


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SNAPKEEP_")

    data_dir: str = defaults.DATA_DIR
    listen: str = defaults.LISTEN
    database_url: str | None = None
    pool_dir: str | None = None
    pool_image_size: str = "20G"
    allow_slow_copy: bool = False
    size_limits: bool = True  # false: no btrfs quota groups (their cost is in docs/format.md), no limits
    expedite_freeze: bool = True  # false: a volume's freeze waits out normal RCU grace periods (storage/rcu.py)
    immutable_cooloff_days: float = 7.0
    pre_restore_keep_days: float = 7.0
    restore_min_free_mib: int = 256  # a restore must leave the pool this much free beyond its own estimate
    quiesce_timeout: float = 10.0
    sweep_interval: float = 60.0
    job_workers: int = 2
    scheduled_workers: int = 4  # subjects whose scheduled snapshots are taken at the same time
    schedule_tick: float = 1.0  # seconds between two looks for due scheduled snapshots
    install_profiles: bool = True  # the installed profiles at a catalog's first start (System Snapshots assigned)
    profile_warn_at: int = 200  # a profile keeping more snapshots per subject warns at save time
    libvirt_uri: str = "qemu:///system"
    session_idle_minutes: float = 30.0  # a web UI session without a request for this long has ended
    session_hours: float = 12.0  # and any session ends after this long
    # Downloads out of snapshots (files.py, storage/snapshot_mounts.py): each holds its snapshot open (an XFS
    # pool's image mounted, one mount shared by its readers) until its client has read it or gone.
    downloads_per_caller: int = Field(4, ge=1)  # open downloads one user or token may hold at once
    snapshot_mounts: int = Field(16, ge=1)  # snapshot images mounted for downloads at once (XFS pools)
    download_stall_seconds: float = Field(60.0, gt=0)  # a download whose client takes no chunk for this long ends
    tls_cert: str | None = None  # with tls_key: serve HTTPS (session cookies are then Secure)
    tls_key: str | None = None
    # Reverse proxies whose X-Forwarded-For/-Proto are believed ("127.0.0.1", comma-separated); none by default,
    # since from anyone else the header would choose the address that login limits and the audit log use.
    trusted_proxies: str = ""

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen must be HOST:PORT, got {value!r}")
        return value

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{os.path.join(self.data_dir, 'catalog.db')}"

    @property
    def pool_path(self) -> str:
        return self.pool_dir or os.path.join(self.data_dir, "pool")

    @property
    def run_dir(self) -> str:
        """Intent files of the dangerous path (writers stopped, guests frozen) live here."""
        return os.path.join(self.data_dir, "run")

    @property
    def log_dir(self) -> str:
        """Serial console logs of the VMs."""
        return os.path.join(self.data_dir, "logs")

    @property
    def token_file(self) -> str:
        return defaults.admin_token_file(self.data_dir)

    @property
    def admin_password_file(self) -> str:
        """The first admin user's password, written at a catalog's first start."""
        return os.path.join(self.data_dir, "admin.password")

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)
