"""Builds every service from the settings, once, for the API process (and tests)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.config import Settings
from snapkeep.model.timespec import utcnow
from snapkeep.services.audit import Audit
from snapkeep.services.files import Files
from snapkeep.services.jobs import JobRunner
from snapkeep.services.reconcile import ReconcileReport, reconcile
from snapkeep.services.restores import Restores
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.subjects import VolumeSubjects
from snapkeep.services.tokens import Tokens
from snapkeep.services.volumes import Volumes
from snapkeep.storage.pool import Pool


@dataclass
class Services:
    settings: Settings
    db: Database
    pool: Pool
    clock: Callable[[], datetime]
    audit: Audit
    jobs: JobRunner
    tokens: Tokens
    volumes: Volumes
    snapshots: Snapshots
    restores: Restores
    files: Files

    @classmethod
    def build(cls, settings: Settings, pool: Pool, clock: Callable[[], datetime] = utcnow) -> Services:
        os.makedirs(settings.data_dir, mode=0o755, exist_ok=True)
        os.makedirs(settings.run_dir, mode=0o700, exist_ok=True)
        engine = make_engine(settings.catalog_url)
        migrate(engine)
        db = Database(engine)
        audit = Audit(db, clock)
        kinds = [VolumeSubjects(pool, settings.quiesce_timeout, settings.run_dir)]
        snapshots = Snapshots(
            db, pool, audit, clock, kinds, cooloff=timedelta(days=settings.immutable_cooloff_days)
        )
        volumes = Volumes(db, pool, audit, clock)
        restores = Restores(
            db,
            pool,
            audit,
            volumes,
            snapshots,
            clock,
            pre_restore_keep=timedelta(days=settings.pre_restore_keep_days),
        )
        return cls(
            settings=settings,
            db=db,
            pool=pool,
            clock=clock,
            audit=audit,
            jobs=JobRunner(db, clock, settings.job_workers),
            tokens=Tokens(db, clock),
            volumes=volumes,
            snapshots=snapshots,
            restores=restores,
            files=Files(db, pool, audit, volumes, snapshots),
        )

    def reconcile(self) -> ReconcileReport:
        return reconcile(self.db, self.pool, self.settings.run_dir, self.clock)

    def close(self) -> None:
        self.jobs.shutdown()
        self.db.engine.dispose()
