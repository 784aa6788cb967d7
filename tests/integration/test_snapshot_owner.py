"""SPEC §2: a snapshot has an owner scope. The API, the CLI and the web UI show it as the caller sees it: the
system, a tenant's path from the caller's top, or "parent" for a parent's snapshot exposed to the caller,
whose owner the caller may not learn. Real pool and services, through the API's own rendering."""

from __future__ import annotations

import pytest

from snapkeep.api.snapshots import public
from snapkeep.model.principal import SYSTEM, Principal, Role
from snapkeep.model.types import Snapshot
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest

pytestmark = pytest.mark.parametrize("fs", ["btrfs"], indirect=True)  # catalog work: the driver plays no part

MiB = 1 << 20


def take(svc: Services, who: Principal, ref: str, subject_type: str, name: str) -> Snapshot:
    request = TakeRequest(ref=ref, subject_type=subject_type, name=name, private=False if ref == "system" else None)
    return svc.snapshots.take(request, who=who)


def test_each_caller_sees_the_owner_scope_it_may_know(services: Services, libvirtd: None) -> None:
    svc = services
    acme = svc.tenants.create(SYSTEM, "acme").tenant.id
    dev = svc.tenants.create(SYSTEM, "dev", parent="acme").tenant.id
    volume = svc.volumes.create("files", 8 * MiB, tenant=dev, who=SYSTEM)
    acme_op, dev_op = Principal("acme-op", Role.OPERATOR, acme), Principal("dev-op", Role.OPERATOR, dev)
    whole = take(svc, SYSTEM, "system", "system", "whole")
    acmes_own = take(svc, acme_op, "system", "system", "acmes-own")
    files = take(svc, SYSTEM, volume.id, "volume", "files")

    def owner(snap: Snapshot, who: Principal) -> str:
        return public(svc, who, svc.snapshots.get(snap.id, who)).owner

    assert [owner(s, SYSTEM) for s in (whole, acmes_own, files)] == ["system", "tenant:acme", "tenant:acme/dev"]
    assert [owner(s, acme_op) for s in (whole, acmes_own, files)] == ["parent", "tenant:acme", "tenant:acme/dev"]
    assert [owner(s, dev_op) for s in (acmes_own, files)] == ["parent", "tenant:dev"]  # acme's name stays unknown
    # a job's result (its job is dev's, the owner of the volume) is shown from dev's scope, naming nothing above
    assert svc.snapshots.as_json(files, dev)["owner"] == "tenant:dev"
