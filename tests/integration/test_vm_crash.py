"""The service killed with SIGKILL between freezing a guest and thawing it: after a restart the guest is
thawed and running. Real ``snapkeep serve``, real libvirtd, real guest agent."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from snapkeep.errors import SnapkeepError
from snapkeep.hypervisor.libvirt_host import LibvirtHost
from snapkeep.testguest import build_test_guest, make_data_disk
from tests.conftest import Mounted, Server, make_traversable_tmp, mount_fs, start_server, stop_server, unmount_fs
from tests.integration.test_volume_capture import writes_within


def wait_for(condition: object, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g} s")
        time.sleep(step)


@contextlib.contextmanager
def serving_on(fstype: str) -> Iterator[tuple[Mounted, str]]:
    """A fresh filesystem for a pool and a data directory for the service, both gone afterwards."""
    mounted = mount_fs(fstype, "20G")
    data_dir = make_traversable_tmp("snapkeep-crash-")
    try:
        yield mounted, data_dir
    finally:
        unmount_fs(mounted)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def served(libvirtd: None) -> Iterator[tuple[Mounted, str]]:
    with serving_on("btrfs") as served:
        yield served


@pytest.fixture(params=["btrfs", "xfs"])
def served_each(request: pytest.FixtureRequest, libvirtd: None) -> Iterator[tuple[Mounted, str]]:
    """On each driver: on XFS the volumes of a system take are frozen while its guests are paused."""
    with serving_on(request.param) as served:
        yield served


def test_sigkill_between_freeze_and_thaw_then_restart_thaws(served: tuple[Mounted, str]) -> None:
    mounted, data_dir = served
    pool_dir = mounted.new_dir("pool")
    image = build_test_guest()
    host = LibvirtHost()
    server: Server = start_server(data_dir, pool_dir)
    name = "crash-guest"
    domain: str | None = None
    try:
        api = server.client()
        vm = api.post(
            "/api/v1/vms",
            json={"name": name, "memory": "256M", "disks": ["128M"], "kernel": image.kernel, "initrd": image.initrd,
                  "cmdline": image.cmdline, "agent_timeout": 10},
        ).json()  # fmt: skip
        make_data_disk(vm["disks"][0]["path"], 128 << 20)
        domain = str(vm["domain"])
        assert api.post(f"/api/v1/vms/{name}/start", params={"wait": 30}).json()["status"] == "succeeded"
        wait_for(lambda: api.get(f"/api/v1/vms/{name}").json()["agent_answers"], 60, "the guest agent answering")

        run_dir = os.path.join(data_dir, "run")
        for attempt in range(5):
            api.post("/api/v1/snapshots", json={"vm": name, "name": f"killed-{attempt}", "quiesce": True})
            wait_for(lambda: glob.glob(os.path.join(run_dir, "guest-freeze-*.json")), 10, "the freeze intent", 0.0005)
            time.sleep(0.01)  # the freeze request is on its way to the agent; the thaw is ~45 ms away
            os.kill(server.process.pid, signal.SIGSTOP)
            with contextlib.suppress(pytest.fail.Exception):
                wait_for(lambda: host.frozen(domain, 2.0), 3, "the freeze")
            if host.frozen(domain, 2.0):
                os.kill(server.process.pid, signal.SIGKILL)
                server.process.wait()
                break
            os.kill(server.process.pid, signal.SIGCONT)
            time.sleep(1.0)
        else:
            pytest.fail("never caught the service between freeze and thaw in 5 tries")

        assert host.frozen(domain, 2.0), "the kill should have left the guest frozen"
        server = start_server(data_dir, pool_dir)
        api = server.client()
        assert not host.frozen(domain, 5.0), "the restarted service did not thaw the guest"
        assert api.get(f"/api/v1/vms/{name}").json()["state"] == "running"
        assert glob.glob(os.path.join(run_dir, "*guest-*.json")) == []
        snaps = api.get("/api/v1/snapshots", params={"vm": name}).json()
        assert all(s["status"] in ("ready", "failed") for s in snaps)
    finally:
        if server.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                server.client().delete(f"/api/v1/vms/{name}", params={"force": True, "wait": 30})
        stop_server(server)
        for step in (host.power_off, host.undefine):
            with contextlib.suppress(SnapkeepError):
                if domain is not None:
                    step(domain)
        host.close()


def test_sigkill_while_a_system_snapshot_holds_its_guests_paused_then_restart(
    served_each: tuple[Mounted, str],
) -> None:
    """A system take killed with every guest paused (and, on XFS, every volume frozen): after the restart the
    guests run, the volumes take writes, the intents that named them are gone, nothing is half-made in the
    pool, and the snapshot is not ready (failed, or absent) and has no data."""
    mounted, data_dir = served_each
    pool_dir = mounted.new_dir("pool")
    image = build_test_guest()
    host = LibvirtHost()
    server: Server = start_server(data_dir, pool_dir)
    names = ["crash-sys-a", "crash-sys-b"]
    domains: list[str] = []
    try:
        api = server.client()
        for name in names:
            vm = api.post(
                "/api/v1/vms",
                json={"name": name, "memory": "256M", "disks": ["128M"], "kernel": image.kernel,
                      "initrd": image.initrd, "cmdline": image.cmdline},
            ).json()  # fmt: skip
            make_data_disk(vm["disks"][0]["path"], 128 << 20)
            domains.append(str(vm["domain"]))
            assert api.post(f"/api/v1/vms/{name}/start", params={"wait": 30}).json()["status"] == "succeeded"
        volumes = [  # a few volumes: a longer capture inside the paused window
            str(api.post("/api/v1/volumes", json={"name": f"crash-vol-{i}", "size_limit": "32M"}).json()["path"])
            for i in range(4)
        ]

        run_dir = os.path.join(data_dir, "run")
        attempt = 0
        for attempt in range(8):
            api.post("/api/v1/snapshots", json={"system": True, "name": f"killed-{attempt}"})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(host.state(d) == "paused" for d in domains):
                pass  # libvirt's word, asked as fast as it answers: the pause lasts tens of milliseconds
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait()
            if any(host.state(d) == "paused" for d in domains):
                break  # killed with a guest paused: nothing else will resume it
            server = start_server(data_dir, pool_dir)  # too late (or too early): again
            api = server.client()
        else:
            pytest.fail("never caught the service with a guest paused in 8 tries")

        server = start_server(data_dir, pool_dir)
        api = server.client()
        assert [host.state(d) for d in domains] == ["running", "running"], "the restart did not resume the guests"
        assert glob.glob(os.path.join(run_dir, "*.json")) == []
        assert os.listdir(os.path.join(pool_dir, "staging")) == []
        snaps = api.get("/api/v1/snapshots", params={"system": True}).json()
        assert all(s["status"] in ("ready", "failed") for s in snaps)
        killed = [s for s in snaps if s["name"] == f"killed-{attempt}"]
        assert all(s["status"] == "failed" for s in killed), killed
        assert all(not os.path.exists(os.path.join(pool_dir, "snapshots", s["id"])) for s in killed)
        assert all(writes_within(os.path.join(path, "after-restart"), 10) for path in volumes), "left frozen"
    finally:
        if server.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                for name in names:
                    server.client().delete(f"/api/v1/vms/{name}", params={"force": True, "wait": 30})
        stop_server(server)
        for domain in domains:
            for step in (host.power_off, host.undefine):
                with contextlib.suppress(SnapkeepError):
                    step(domain)
        host.close()
