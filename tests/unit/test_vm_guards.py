"""A VM start racing a restore of the same VM, through the API routes, with a fake hypervisor that stops
inside the restore on demand: the start is refused ``busy`` synchronously, and runs after the restore.

The guard table itself is tested in test_guards.py; the real-server races in
tests/integration/test_guards.py. The pool here is a slow-copy pool on the test's temporary directory."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from snapkeep.api.app import create_app
from snapkeep.config import Settings
from snapkeep.hypervisor.base import Guest, GuestByName
from snapkeep.model.network import NetworkSpec
from snapkeep.model.principal import SYSTEM
from snapkeep.model.vmspec import VMSpec, VMState
from snapkeep.services.container import Services
from snapkeep.services.snapshots import TakeRequest
from snapkeep.storage.pool import Pool


class FakeHost:
    """Just enough of a hypervisor; ``hold`` names a call that stops until ``go`` is set."""

    def __init__(self) -> None:
        self.domains: dict[str, tuple[VMSpec, VMState]] = {}
        self.networks: dict[str, NetworkSpec] = {}
        self.events: list[str] = []
        self.hold: str | None = None
        self.holding, self.go = threading.Event(), threading.Event()

    def _call(self, what: str, name: str) -> None:
        self.events.append(f"{what} {name}")
        if self.hold == what:
            self.holding.set()
            self.go.wait(30)

    def define(self, spec: VMSpec) -> None:
        self._call("define", spec.name)
        state = self.domains[spec.name][1] if spec.name in self.domains else VMState.SHUTOFF
        self.domains[spec.name] = (spec, state)

    def undefine(self, name: str) -> None:
        self._call("undefine", name)
        self.domains.pop(name, None)

    def exists(self, name: str) -> bool:
        return name in self.domains

    def unreachable_reason(self, path: str) -> str | None:
        return None  # a fake QEMU reaches every pool

    def spec(self, name: str) -> VMSpec:
        return self.domains[name][0]

    def state(self, name: str) -> VMState:
        return self.domains[name][1]

    def states(self, names: Sequence[str]) -> dict[str, VMState]:
        return {name: self.domains[name][1] for name in names if name in self.domains}

    def list_domains(self) -> list[str]:
        return sorted(self.domains)

    def _set(self, what: str, name: str, state: VMState) -> None:
        self._call(what, name)
        self.domains[name] = (self.domains[name][0], state)

    def start(self, name: str) -> None:
        self._set("start", name, VMState.RUNNING)

    def shutdown(self, name: str, timeout: float) -> None:
        self._set("shutdown", name, VMState.SHUTOFF)

    def power_off(self, name: str) -> None:
        self._set("power_off", name, VMState.SHUTOFF)

    def reset(self, name: str) -> None:
        self._call("reset", name)

    def pause(self, name: str) -> None:
        self._set("pause", name, VMState.PAUSED)

    def resume(self, name: str) -> None:
        self._set("resume", name, VMState.RUNNING)

    def guests(self, names: Sequence[str]) -> list[Guest]:
        return [GuestByName(self, name) for name in names]  # type: ignore[arg-type]

    def agent_ping(self, name: str, timeout: float) -> bool:
        return False

    def freeze(self, name: str, timeout: float) -> int:
        raise NotImplementedError

    def thaw(self, name: str, timeout: float) -> int:
        return 0

    def frozen(self, name: str, timeout: float) -> bool:
        return False

    def ensure_network(self, spec: NetworkSpec) -> None:
        self._call("ensure_network", spec.name)
        self.networks[spec.name] = spec

    def remove_network(self, name: str) -> None:
        self._call("remove_network", name)
        self.networks.pop(name, None)

    def network_exists(self, name: str) -> bool:
        return name in self.networks


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Services, FakeHost, TestClient]]:
    pool = Pool.open(str(tmp_path / "pool"), allow_slow_copy=True)
    host = FakeHost()
    settings = Settings(data_dir=str(tmp_path / "data"), pool_dir=pool.root, sweep_interval=3600)
    services = Services.build(settings, pool, host=host)
    services.tokens.ensure_admin_file(settings.token_file)
    token = Path(settings.token_file).read_text().strip()
    try:
        with TestClient(create_app(services), headers={"Authorization": f"Bearer {token}"}) as client:
            yield services, host, client
    finally:
        host.go.set()
        services.close()


def test_a_vm_start_during_a_restore_of_the_vm_is_refused_busy_then_runs_after(
    rig: tuple[Services, FakeHost, TestClient],
) -> None:
    services, host, client = rig
    vm = services.vms.create("web", vcpus=1, memory_mib=64, disk_sizes=[1 << 20], who=SYSTEM)
    snap = services.snapshots.take(TakeRequest(ref=vm.id, subject_type="vm", name="base"), who=SYSTEM)
    host.hold = "define"
    restore = client.post(f"/api/v1/snapshots/{snap.id}/restore", json={"pre_restore": False})
    assert restore.status_code == 202, restore.text
    assert host.holding.wait(10), "the restore reached the redefinition"

    start = client.post(f"/api/v1/vms/{vm.id}/start")
    assert start.status_code == 409, start.text
    error = start.json()["error"]
    assert error["code"] == "busy" and error["retryable"] is True
    assert error["details"]["operation"] == "snapshot.restore"
    assert error["details"]["job"] == restore.json()["id"]
    assert host.events[-1] == f"define {vm.domain}", "the start reached nothing"

    host.go.set()
    assert client.get(f"/api/v1/jobs/{restore.json()['id']}", params={"wait": 10}).json()["status"] == "succeeded"
    started = client.post(f"/api/v1/vms/{vm.id}/start", params={"wait": 10}).json()
    assert started["status"] == "succeeded", started
    assert host.events[-2:] == [f"define {vm.domain}", f"start {vm.domain}"]
    assert services.guards.held() == []


def test_a_restore_during_a_vm_start_is_refused_busy(rig: tuple[Services, FakeHost, TestClient]) -> None:
    services, host, client = rig
    vm = services.vms.create("db", vcpus=1, memory_mib=64, disk_sizes=[1 << 20], who=SYSTEM)
    snap = services.snapshots.take(TakeRequest(ref=vm.id, subject_type="vm", name="base"), who=SYSTEM)
    host.hold = "start"
    start = client.post(f"/api/v1/vms/{vm.id}/start")
    assert start.status_code == 202 and host.holding.wait(10)
    for body in ({"pre_restore": False, "power_off": True}, {}):
        refused = client.post(f"/api/v1/snapshots/{snap.id}/restore", json=body)
        assert refused.status_code == 409 and refused.json()["error"]["details"]["operation"] == "vm.start"
    take = client.post("/api/v1/snapshots", json={"vm": vm.id, "name": "while-starting"})
    assert take.status_code == 409 and take.json()["error"]["code"] == "busy"
    deleting = client.delete(f"/api/v1/vms/{vm.id}", params={"force": True})
    assert deleting.status_code == 409 and deleting.json()["error"]["code"] == "busy"
    host.go.set()
    assert client.get(f"/api/v1/jobs/{start.json()['id']}", params={"wait": 10}).json()["status"] == "succeeded"
    assert [e for e in host.events if e.startswith(("start", "define", "power_off"))][-1] == f"start {vm.domain}"


def test_a_clone_and_a_delete_hold_the_vm_and_give_everything_back(rig: tuple[Services, FakeHost, TestClient]) -> None:
    """The nested operations (the clone's source snapshot taken, restored as new and deleted; the VM's
    snapshots deleted with it) run inside the outer claim, and nothing is held afterwards."""
    services, host, client = rig
    vm = services.vms.create("app", vcpus=1, memory_mib=64, disk_sizes=[1 << 20], who=SYSTEM)
    services.snapshots.take(TakeRequest(ref=vm.id, subject_type="vm", name="kept"), who=SYSTEM)
    host.hold = "define"
    clone = client.post(f"/api/v1/vms/{vm.id}/clone", json={"name": "app-copy"})
    assert clone.status_code == 202 and host.holding.wait(10)
    refused = client.post(f"/api/v1/vms/{vm.id}/stop", json={"force": True})
    assert refused.status_code == 409 and refused.json()["error"]["details"]["operation"] == "vm.clone"
    host.go.set()
    assert client.get(f"/api/v1/jobs/{clone.json()['id']}", params={"wait": 10}).json()["status"] == "succeeded"
    assert [s.name for s in services.snapshots.listing(vm.id, "vm", who=SYSTEM)] == ["kept"]
    deleted = client.delete(f"/api/v1/vms/{vm.id}", params={"wait": 10}).json()
    assert deleted["status"] == "succeeded", deleted
    assert [s for s in services.snapshots.listing(who=SYSTEM) if s.subject_id == vm.id] == []
    assert services.guards.held() == []
