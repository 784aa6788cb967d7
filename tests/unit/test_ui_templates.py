"""Pages whose objects the integration tests cannot make cheaply (a VM needs libvirt, a held and locked
snapshot needs a schedule and time), rendered from their templates with such objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from snapkeep.model.principal import Principal, Role
from snapkeep.model.types import VM, QuiescePolicy, SnapshotStatus
from snapkeep.ui.rows import SnapshotRow
from snapkeep.ui.subject_snapshots import SubjectSnapshots
from snapkeep.ui.templating import NAV, environment
from tests.unit.test_catalog_pages import snapshot

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ADMIN = Principal("admin", Role.ADMIN, None)


def _render(template: str, **context: Any) -> str:
    return environment.get_template(template).render(who=ADMIN, csrf="token", nav=NAV, path="/vms", **context)


def _vm() -> VM:
    config = {
        "vcpus": 2,
        "memory_mib": 512,
        "kernel": "/boot/vmlinuz",
        "initrd": None,
        "cmdline": "console=ttyS0",
        "disks": [{"file": "disk0.raw", "size": 1 << 30, "serial": "sk-0", "target": "vda"}],
        "nics": [
            {"mac": "52:54:00:00:00:01", "network": "user", "network_id": "net-1"},
            {"mac": "52:54:00:00:00:02", "network": "user", "network_id": None},
        ],
    }
    return VM(
        "vm-1", "web", "", "vms/vm-1", "/pool/vms/vm-1", "uuid", "snapkeep-vm-1", config, QuiescePolicy.FALLBACK, 10.0,
        T0, "running", owner_tenant_id="t-1", tags=("prod",),
    )  # fmt: skip


def test_a_vm_page_shows_its_configuration_and_snapshots() -> None:
    vm = _vm()
    held = snapshot(T0, name="nightly-1", status=SnapshotStatus.HELD, immutable=True, expires_at=T0)
    row = SnapshotRow(held, None, True, "2d 3h", "tenant:acme")
    html = _render(
        "vms/detail.html",
        vm=vm,
        networks={"net-1": "lan"},
        owners={"t-1": "acme"},
        subject_type="vm",
        subject=vm,
        snapshots=SubjectSnapshots([row], "/snapshots?subject_type=vm&subject=vm-1"),
    )
    for shown in ("VM web", "512 MiB", "vda", "1.0 GiB", ">lan</a>", "52:54:00:00:00:02", ">acme</a>", "prod"):
        assert shown in html, shown
    assert "/boot/vmlinuz" not in html, "no host path on a page"
    for shown in ("nightly-1", "held", "overdue 2d 3h", "locked", "All snapshots of this vm"):
        assert shown in html, shown


def test_the_vm_list() -> None:
    html = _render("vms/list.html", vms=[_vm()], owners={}, next_url="/vms?cursor=abc")
    assert 'href="/vms/vm-1">web</a>' in html and "running" in html and 'href="/vms?cursor=abc"' in html


def test_a_snapshot_unlocked_and_cooling_off() -> None:
    snap = snapshot(T0, immutable=True, unlocked_at=T0)
    cooling = SnapshotRow(snap, T0 + timedelta(days=7), False, None, "tenant:acme/dev")
    html = _render("snapshots/detail.html", row=cooling, subject_type="snapshot", snapshot=snap, owned=True)
    assert "no longer (unlocked 2026-03-01 12:00:00 UTC)" in html
    assert "tenant acme/dev" in html  # its owner scope
    assert "/unlock" not in html  # unlocked already
    locked = SnapshotRow(snapshot(T0, immutable=True), None, True, None, "parent")
    html = _render("snapshots/detail.html", row=locked, subject_type="snapshot", snapshot=locked.snap, owned=True)
    assert "until unlocked" in html
    assert f'href="/snapshots/{locked.snap.id}/unlock"' in html and "/delete" not in html  # not while locked
    html = _render("snapshots/detail.html", row=locked, subject_type="snapshot", snapshot=locked.snap, owned=False)
    assert "/unlock" not in html  # a parent's exposed snapshot is its parent's to unlock
    assert "your parent (exposed to you)" in html
