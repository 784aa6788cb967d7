"""Builds every service from the settings, once, for the API process (and tests)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from snapkeep.catalog.db import Database, make_engine, migrate
from snapkeep.config import Settings
from snapkeep.engine.intents import Intents
from snapkeep.engine.recovery import Released, release_recorded
from snapkeep.hypervisor import Hypervisor
from snapkeep.hypervisor.libvirt_host import LibvirtHost
from snapkeep.model.timespec import utcnow
from snapkeep.model.units import MiB
from snapkeep.services.audit import Audit
from snapkeep.services.catalog_rebuild import CatalogRebuild
from snapkeep.services.clones import Clones
from snapkeep.services.download_slots import DownloadSlots
from snapkeep.services.files import Files
from snapkeep.services.freeing import Freeing
from snapkeep.services.guards import Guards
from snapkeep.services.imports import Imports
from snapkeep.services.jobs import JobRunner
from snapkeep.services.logins import Logins
from snapkeep.services.networks import Networks
from snapkeep.services.profiles import Profiles
from snapkeep.services.reconcile import ReconcileReport, reconcile
from snapkeep.services.restores import Restores
from snapkeep.services.scheduled import ScheduledTakes
from snapkeep.services.settings import SettingDocs
from snapkeep.services.snapshots import Snapshots
from snapkeep.services.space import SpaceRule
from snapkeep.services.subjects import SubjectKind
from snapkeep.services.subjects.rebuild import Rebuild
from snapkeep.services.subjects.system import SystemKind, TenantKind
from snapkeep.services.subjects.tenant_copy import TenantCopy
from snapkeep.services.subjects.vm import VmKind
from snapkeep.services.subjects.volume import VolumeKind
from snapkeep.services.tags import Tags
from snapkeep.services.tenants import Tenants
from snapkeep.services.tokens import Tokens
from snapkeep.services.users import Users
from snapkeep.services.vms import VMs
from snapkeep.services.volumes import Volumes
from snapkeep.storage.pool import Pool


def open_catalog(settings: Settings) -> Database:
    """The catalog at the settings' URL, brought to the newest schema."""
    engine = make_engine(settings.catalog_url)
    migrate(engine)
    return Database(engine)


@dataclass
class Services:
    settings: Settings
    db: Database
    pool: Pool
    clock: Callable[[], datetime]
    audit: Audit
    jobs: JobRunner
    tokens: Tokens
    users: Users
    logins: Logins
    volumes: Volumes
    snapshots: Snapshots
    restores: Restores
    imports: Imports
    files: Files
    host: Hypervisor
    vms: VMs
    clones: Clones
    guards: Guards
    freeing: Freeing
    intents: Intents
    networks: Networks
    tenants: Tenants
    settings_docs: SettingDocs
    tags: Tags
    rebuild: Rebuild
    copies: TenantCopy
    profiles: Profiles
    scheduled: ScheduledTakes
    catalog_rebuild: CatalogRebuild

    @classmethod
    def build(
        cls,
        settings: Settings,
        pool: Pool,
        clock: Callable[[], datetime] = utcnow,
        host: Hypervisor | None = None,
        db: Database | None = None,
    ) -> Services:
        """Every service, on the catalog ``db`` (else the settings' one, opened here); the hypervisor
        connects to libvirt lazily, on the first VM operation."""
        os.makedirs(settings.data_dir, mode=0o755, exist_ok=True)
        os.makedirs(settings.run_dir, mode=0o700, exist_ok=True)
        os.makedirs(settings.log_dir, mode=0o755, exist_ok=True)
        host = host or LibvirtHost(settings.libvirt_uri)
        if db is None:
            db = open_catalog(settings)
        audit = Audit(db, clock)
        intents = Intents(settings.run_dir)
        guards = Guards(clock)
        freeing = Freeing(pool)
        jobs = JobRunner(db, clock, settings.job_workers, settings.scheduled_workers)
        volumes = Volumes(db, pool, audit, clock, jobs)
        vms = VMs(db, pool, audit, clock, host, settings.log_dir, guards, jobs)
        profiles = Profiles(db, audit, clock, settings.profile_warn_at)
        volume_kind = VolumeKind(
            pool, db, audit, volumes, freeing, intents, profiles.put_back, quiesce_timeout=settings.quiesce_timeout
        )
        vm_kind = VmKind(host, pool, db, audit, vms, freeing, intents, profiles.put_back)
        subtree_kinds = (
            SystemKind(host, pool, vm_kind, volume_kind, intents),
            TenantKind(host, pool, vm_kind, volume_kind, intents),
        )
        kinds: list[SubjectKind] = [volume_kind, vm_kind, *subtree_kinds]
        cooloff = timedelta(days=settings.immutable_cooloff_days)
        snapshots = Snapshots(db, pool, audit, clock, kinds, cooloff=cooloff, guards=guards, jobs=jobs)
        keep = timedelta(days=settings.pre_restore_keep_days)
        space = SpaceRule(pool.free_bytes, settings.restore_min_free_mib * MiB)
        by_type = {kind.type.value: kind for kind in kinds}
        restores = Restores(snapshots, by_type, jobs, clock, pre_restore_keep=keep, space=space)
        networks = Networks(db, host, audit, clock)
        tenants = Tenants(db, audit, clock, guards, jobs, vms, volumes, snapshots, networks)
        rebuild = Rebuild(
            db,
            pool,
            host,
            audit,
            guards,
            intents,
            freeing,
            (vms, volumes, networks, tenants, snapshots),
            (vm_kind, volume_kind),
            profiles.put_back,
        )
        copies = TenantCopy(db, pool, audit, vms, volumes, networks, tenants, intents)
        for kind in subtree_kinds:
            kind.use(rebuild, copies)
        return cls(
            settings=settings,
            db=db,
            pool=pool,
            clock=clock,
            audit=audit,
            jobs=jobs,
            tokens=Tokens(db, clock),
            users=Users(db, audit, clock),
            logins=Logins(
                db,
                audit,
                clock,
                idle=timedelta(minutes=settings.session_idle_minutes),
                lifetime=timedelta(hours=settings.session_hours),
            ),
            volumes=volumes,
            snapshots=snapshots,
            restores=restores,
            imports=Imports(db, pool, audit, snapshots, jobs, clock),
            files=Files(
                db,
                pool,
                audit,
                volumes,
                snapshots,
                intents,
                jobs,
                DownloadSlots(settings.downloads_per_caller),
                snapshot_mounts=settings.snapshot_mounts,
                pre_restore_keep=keep,
                space=space,
            ),
            host=host,
            vms=vms,
            clones=Clones(db, vms, snapshots, restores, jobs, clock),
            guards=guards,
            freeing=freeing,
            intents=intents,
            networks=networks,
            tenants=tenants,
            settings_docs=SettingDocs(db, audit),
            tags=Tags(db, audit),
            rebuild=rebuild,
            copies=copies,
            profiles=profiles,
            scheduled=ScheduledTakes(db, snapshots, jobs, audit, clock),
            catalog_rebuild=CatalogRebuild(db, pool, audit, clock, vms, profiles.put_back),
        )

    def release_pending(self) -> Released:
        """Retry the releases (thaws, resumes) a capture could not get through; the scheduler calls it."""
        return release_recorded(self.intents, self.pool, self.host, pending_only=True)

    def reconcile(self) -> ReconcileReport:
        report = reconcile(self.db, self.pool, self.host, self.intents, self.clock)
        report.rebuilds_completed = self.rebuild.resume()  # after the guests are released, before requests
        report.copies_undone = self.copies.undo_interrupted()
        with self.db.unit() as uow:  # scheduled takes a stop cut short come due again (their slot is kept)
            uow.schedule.release_running()
        self.freeing.wake()  # what a crash left queued is freed in the background
        return report

    def close(self) -> None:
        self.jobs.shutdown()
        self.freeing.close()
        self.db.engine.dispose()
