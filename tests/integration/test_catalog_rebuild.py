"""The catalog rebuilt from the pool alone after it was lost (SPEC §2), on real btrfs and XFS pools with
real libvirt domains.

A system with a tenant and its sub-tenant, networks, settings, tagged volumes with files, two VMs, and
users and profiles of the system and of the tenant (assigned to the system, the tenant and volumes) is
captured by a system snapshot, a tenant snapshot, a VM snapshot and volume snapshots; a volume is renamed
after the system snapshot (and captured again), another is made and never captured. Then the catalog file
is deleted. The service refuses to start on the empty catalog over that pool; the rebuild brings back every
object with its id and configuration (the renamed volume under its newest name), every snapshot as taken,
and leaves the volume it cannot name in the pool, reported. The rebuilt catalog works: a file comes back
byte for byte out of a volume snapshot, the VM restores over itself out of its snapshot, and its libvirt
domain is the one it had. A second rebuild is refused, changing nothing.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from snapkeep.catalog.db import Database, make_engine
from snapkeep.catalog.stores import Unit
from snapkeep.config import Settings
from snapkeep.errors import CatalogInUse, CatalogLost
from snapkeep.model.principal import SYSTEM, Role
from snapkeep.model.profile import Frequency, Period, SubjectOfProfile
from snapkeep.model.types import Snapshot
from snapkeep.model.vmspec import VMState
from snapkeep.services.catalog_rebuild import catalog_is_empty, check_not_lost
from snapkeep.services.container import Services
from snapkeep.services.pool_binding import BOUND_TO
from snapkeep.services.snapshots import TakeRequest
from snapkeep.services.subjects import RestoreOptions
from snapkeep.storage.pool import POOL_ID, Pool, read_marker
from snapkeep.testguest import GuestImage
from tests.conftest import Mounted, make_traversable_tmp, mount_fs, start_server, stop_server, unmount_fs
from tests.integration.test_system_restore import data, disk, shape, write
from tests.integration.test_vm_snapshots import _discard_vms, digest, image
from tests.integration.test_vm_tenants import make_vm

__all__ = ["image"]  # fixtures used here

MiB = 1 << 20


class Host:
    """A pool on its own filesystem and the services on it, which the test replaces (the catalog lost)."""

    def __init__(self, fstype: str) -> None:
        self.mounted = mount_fs(fstype, "20G")
        self.data_dir = make_traversable_tmp("snapkeep-rebuild-data-")
        self.settings = Settings(data_dir=self.data_dir, pool_dir=self.mounted.new_dir("pool"), sweep_interval=3600)
        self.svc = self._build()

    def _build(self) -> Services:
        return Services.build(self.settings, Pool.open(self.settings.pool_path))

    def lose_the_catalog(self) -> None:
        """The service stops and its catalog file is gone; a new service starts on an empty one."""
        self.svc.close()
        for path in glob.glob(os.path.join(self.data_dir, "catalog.db*")):
            os.unlink(path)
        self.svc = self._build()

    def close(self) -> None:
        _discard_vms(self.svc)
        self.svc.close()
        unmount_fs(self.mounted)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(params=["btrfs", "xfs"])
def host(request: pytest.FixtureRequest, libvirtd: None) -> Iterator[Host]:
    made = Host(request.param)
    try:
        yield made
    finally:
        made.close()


def virsh(svc: Services, *args: str) -> None:
    subprocess.run(["virsh", "-q", "-c", svc.settings.libvirt_uri, *args], check=True, capture_output=True)


def take(svc: Services, subject_type: str, ref: str, name: str, **options: object) -> Snapshot:
    return svc.snapshots.take(TakeRequest(ref=ref, subject_type=subject_type, name=name, **options), who=SYSTEM)


def as_taken(snap: Snapshot) -> tuple[object, ...]:
    """What a snapshot's row says that its manifest records (not its measured size or capture windows)."""
    return (
        snap.id,
        snap.kind,
        snap.subject_type,
        snap.subject_id,
        snap.subject_name,
        snap.owner_tenant_id,
        snap.name,
        snap.description,
        snap.created_at,
        snap.expires_at,
        snap.origin,
        snap.quiesce_requested,
        snap.quiesced,
        snap.immutable,
        snap.private,
        snap.status,
    )


def own(svc: Services) -> dict[str, Any]:
    """Every user and profile, the system's own and the tenants', and every profile assignment."""
    with svc.db.unit() as uow:
        owners = frozenset({None, *(t.id for t in uow.tenants.visible())})
        return {
            "users": sorted(
                (u.id, u.name, u.password_hash, u.role, u.tenant_id or "") for u in uow.users.in_tenants(owners)
            ),
            "profiles": sorted((p.id, p.name, p.owner_tenant_id or "", p.periods) for p in uow.profiles.list()),
            "assigned": sorted((str(a.subject_type), a.subject_id, a.profile_id) for a in uow.assignments.list()),
        }


def build_system(svc: Services, image: GuestImage) -> dict[str, Snapshot]:
    svc.tenants.create(SYSTEM, "acme", description="a customer", tags=["prod"])
    svc.tenants.create(SYSTEM, "dev", parent="acme")
    svc.networks.create(SYSTEM, "lan", "10.233.1.0/24", tenant="acme")
    svc.networks.create(SYSTEM, "backbone", "10.233.2.0/24")
    svc.settings_docs.patch(SYSTEM, {"colour": "blue"})
    svc.settings_docs.patch(SYSTEM, {"retention": {"days": 7}}, tenant="acme")
    volumes = {}
    for name, tenant in (("files", None), ("shared", "acme"), ("scratch", "acme/dev")):
        volumes[name] = volume = svc.volumes.create(name, 64 * MiB, tenant=tenant, tags=["nas"], who=SYSTEM)
        write(os.path.join(volume.path, "report.txt"), f"{name} as captured\n".encode() * 500)
    svc.users.create(SYSTEM, "acme-ann", "a long enough password", Role.OPERATOR, tenant="acme")
    svc.users.create(SYSTEM, "olga", "a long enough password", Role.ADMIN)  # the system's own
    nightly = Period(name="nightly", frequency=Frequency.DAILY, hour=2)
    acme_nightly = svc.profiles.create("acme-nightly", SYSTEM, periods=(nightly,), tenant="acme").profile
    svc.profiles.assign(acme_nightly.id, SubjectOfProfile.TENANT, "acme", SYSTEM)
    svc.profiles.assign(acme_nightly.id, SubjectOfProfile.VOLUME, volumes["scratch"].id, SYSTEM)  # in acme/dev
    ours = svc.profiles.create("ours", SYSTEM, periods=(Period(name="hourly", frequency=Frequency.HOURLY),)).profile
    svc.profiles.assign(ours.id, SubjectOfProfile.SYSTEM, "system", SYSTEM)
    svc.profiles.assign(ours.id, SubjectOfProfile.VOLUME, volumes["files"].id, SYSTEM)
    make_vm(svc, image, "web", None, ["backbone"])
    app = make_vm(svc, image, "app", "acme", ["lan"])
    # made by an early version: its domain is named after the VM, not after its id
    legacy = f"app-{app.id[:8]}"
    virsh(svc, "domrename", app.domain, legacy)
    with svc.db.unit() as uow:
        uow.vms.update(app.id, domain_name=legacy)
    return {
        "system": take(svc, "system", "system", "nightly", description="everything", expires_at=None),
        "tenant": take(svc, "tenant", "acme", "acme-weekly"),
        "vm": take(svc, "vm", "web", "before-upgrade", immutable=True),
        "volume": take(svc, "volume", "files", "before"),
    }


def test_the_catalog_comes_back_from_the_pool_alone(host: Host, image: GuestImage) -> None:
    svc = host.svc
    snaps = build_system(svc, image)
    files = svc.volumes.get("files", SYSTEM)
    svc.volumes.update(files.id, name="files-renamed", who=SYSTEM)  # after the system snapshot: captured again
    take(svc, "volume", files.id, "after-rename", expires_at=svc.clock() + timedelta(days=7))
    uncaptured = svc.volumes.create("uncaptured", 16 * MiB, who=SYSTEM)
    web = svc.vms.get("web", who=SYSTEM)
    with svc.db.unit() as uow:
        taken = sorted(as_taken(s) for s in uow.snapshots.list())
    expected = shape(svc)
    expected["volumes"] = [v for v in expected["volumes"] if v.id != uncaptured.id]
    expected_own = own(svc)
    expected_data = {k: v for k, v in data(svc).items() if k != "volume:uncaptured"}
    web_disk = digest(disk(web))

    host.lose_the_catalog()
    svc = host.svc
    virsh(svc, "undefine", web.domain)  # and web's domain with it (the pool moved to a new host, say)
    with pytest.raises(CatalogLost, match="--rebuild-catalog"):
        check_not_lost(svc.db, svc.pool)  # what `serve` checks first: the scheduler would snapshot nothing

    summary = svc.catalog_rebuild.run()

    with svc.db.unit() as uow:  # bound to its pool with the rows (a rebuild cut short after them is of this pool)
        assert uow.meta.get(BOUND_TO) == svc.pool.identity != ""
    assert summary["unknown_datasets"] == [uncaptured.dataset]  # never captured: left in the pool, named
    assert summary["defined_again"] == ["web"]
    left = ("orphan_snapshots", "unreadable_snapshots", "renamed", "problems", "restored_since_newest_snapshot")
    assert [key for key in left if summary[key]] == []
    assert shape(svc) == expected  # every object with its id, configuration (app's old domain), settings, tags
    assert own(svc) == expected_own  # the users (password hashes), the profiles and what they are assigned to
    with svc.db.unit() as uow:
        assert sorted(as_taken(s) for s in uow.snapshots.list()) == taken
    assert data(svc) == expected_data  # the data never moved
    check_not_lost(svc.db, svc.pool)

    # it works: a file out of a volume snapshot, byte for byte; the VM over itself, on its own domain
    files = svc.volumes.get("files-renamed", SYSTEM)
    report = os.path.join(files.path, "report.txt")
    write(report, b"overwritten after the rebuild\n")
    svc.files.extract(snaps["volume"].id, "report.txt", who=SYSTEM)
    with open(report, "rb") as f:
        assert f.read() == b"files as captured\n" * 500
    web = svc.vms.get("web", who=SYSTEM)
    assert web.state == VMState.SHUTOFF and svc.host.spec(web.domain).uuid == web.domain_uuid
    with open(disk(web), "r+b") as f:
        f.write(b"\xff" * 4096)
    svc.restores.over_source(snaps["vm"].id, RestoreOptions(pre_restore=False), SYSTEM)
    assert digest(disk(web)) == web_disk

    before = shape(svc)
    with pytest.raises(CatalogInUse):
        svc.catalog_rebuild.run()
    assert shape(svc) == before


def test_serve_refuses_a_lost_catalog_and_rebuilds_it_when_asked(fs: Mounted) -> None:
    """The real command: `serve` over a pool whose catalog is gone exits naming --rebuild-catalog, having
    changed nothing; `serve --rebuild-catalog` rebuilds it and serves what the pool holds."""
    data_dir = make_traversable_tmp("snapkeep-rebuild-serve-")
    pool_dir = fs.new_dir("rebuild-pool")
    server = start_server(data_dir, pool_dir)
    try:
        with server.client() as api:
            made = api.post("/api/v1/volumes", json={"name": "kept", "size_limit": "64M"})
            assert made.status_code == 201, made.text
            taken = api.post("/api/v1/snapshots", params={"wait": 30}, json={"volume": "kept", "name": "s1"})
            assert taken.json()["status"] == "succeeded", taken.text
        stop_server(server)
        for path in glob.glob(os.path.join(data_dir, "catalog.db*")):
            os.unlink(path)

        with pytest.raises(RuntimeError, match="--rebuild-catalog"):
            start_server(data_dir, pool_dir)
        assert _empty_catalog(data_dir)  # refused before the scheduler, the reconciler or anything ran
        assert _bound_to(data_dir) is None  # and free to be pointed at the right pool

        server = start_server(data_dir, pool_dir, options=("--rebuild-catalog",))
        with server.client() as api:
            assert [v["name"] for v in api.get("/api/v1/volumes").json()] == ["kept"]
            assert [s["name"] for s in api.get("/api/v1/snapshots").json()] == ["s1"]
        assert "catalog rebuilt from the pool" in Path(data_dir, "serve.log").read_text()
        marker = read_marker(pool_dir)
        assert marker is not None and _bound_to(data_dir) == marker[POOL_ID]  # the rebuilt catalog is the pool's
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)


def _empty_catalog(data_dir: str) -> bool:
    with _catalog(data_dir) as uow:
        return catalog_is_empty(uow)


def _bound_to(data_dir: str) -> str | None:
    """The pool id the catalog in ``data_dir`` is bound to (services/pool_binding.py)."""
    with _catalog(data_dir) as uow:
        return uow.meta.get(BOUND_TO)


@contextmanager
def _catalog(data_dir: str) -> Iterator[Unit]:
    """A unit of the catalog a service on ``data_dir`` uses, opened by the test (the service stopped)."""
    engine = make_engine(Settings(data_dir=data_dir).catalog_url)
    try:
        with Database(engine).unit() as uow:
            yield uow
    finally:
        engine.dispose()
