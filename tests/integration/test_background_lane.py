"""Background work never holds up foreground work (issue 6, defect 12).

Space measurements (a FIEMAP walk over every file of a snapshot) run in the background lane. Here they are
blocked (a fault switch on the service in this process) and queued in numbers, while more takes than there
are foreground job workers go through the real HTTP API, served by uvicorn in this process on a real pool:
every take must finish while the measurements are still blocked, no take queues a measurement of its own,
and the measurements run, one at a time at the lowest priority, once released.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from snapkeep.api.app import create_app
from snapkeep.model.principal import Principal
from snapkeep.model.types import Snapshot
from snapkeep.services.container import Services
from tests.conftest import SERVE_START_TIMEOUT, free_port

RELEASE_TIMEOUT = 120  # only bounds a broken test; nothing below measures speed


@pytest.fixture
def api(services: Services) -> Iterator[httpx.Client]:
    """The real API app over HTTP, in this process, on the ``services`` the test can put faults into."""
    token_file = os.path.join(services.settings.data_dir, "admin.token")
    services.tokens.ensure_admin_file(token_file)
    with open(token_file) as f:
        token = f.read().strip()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVE_START_TIMEOUT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=90)
    try:
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(30)


class BlockedMeasurements:
    """A fault switch: every space measurement waits until released, and records how it ran."""

    def __init__(self, services: Services) -> None:
        self._measure = services.snapshots.measure_space
        self.release = threading.Event()
        self.first_started = threading.Event()
        self.running = 0
        self.most_at_once = 0
        self.niceness: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, snap_id: str, *, who: Principal) -> Snapshot:
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.first_started.set()
        try:
            assert self.release.wait(RELEASE_TIMEOUT), "the test never released the measurements"
            return self._measure(snap_id, who=who)
        finally:
            with self._lock:
                self.running -= 1


def take(api: httpx.Client, volume: str, name: str) -> dict[str, Any]:
    answer = api.post("/api/v1/snapshots", params={"wait": 60}, json={"volume": volume, "name": name})
    assert answer.status_code == 202, answer.text
    job: dict[str, Any] = answer.json()
    return job


def test_takes_never_wait_behind_space_measurements(
    services: Services, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = BlockedMeasurements(services)
    monkeypatch.setattr(services.snapshots, "measure_space", blocked)
    try:
        check_takes_while_blocked(services, api, blocked)
    finally:
        blocked.release.set()  # a failed check must not leave job threads waiting


def check_takes_while_blocked(services: Services, api: httpx.Client, blocked: BlockedMeasurements) -> None:
    created = api.post("/api/v1/volumes", json={"name": "busy", "size_limit": "1G"})
    assert created.status_code == 201, created.text
    with open(os.path.join(created.json()["path"], "data.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
    workers = services.settings.job_workers

    measured = [take(api, "busy", f"measured-{n}") for n in range(workers + 1)]
    assert all(job["status"] == "succeeded" for job in measured), measured
    space_jobs = []
    for job in measured:  # more measurements than foreground workers: a shared lane would be full
        answer = api.post(f"/api/v1/snapshots/{job['result']['snapshot']['id']}/space")
        assert answer.status_code == 202, answer.text
        space_jobs.append(answer.json())
    assert blocked.first_started.wait(RELEASE_TIMEOUT), "no measurement started"
    again = api.post(f"/api/v1/snapshots/{measured[-1]['result']['snapshot']['id']}/space").json()
    assert again["id"] == space_jobs[-1]["id"], "a second request for a queued measurement queued another"

    for n in range(2 * workers + 1):
        job = take(api, "busy", f"while-blocked-{n}")
        assert job["status"] == "succeeded", f"take {n} did not finish while measurements were blocked: {job}"
    assert not blocked.release.is_set() and blocked.running == 1
    jobs = api.get("/api/v1/jobs").json()
    assert {j["id"] for j in jobs if j["kind"] == "snapshot.space"} == {j["id"] for j in space_jobs}
    assert sorted(j["status"] for j in jobs if j["kind"] == "snapshot.space").count("queued") == workers

    blocked.release.set()
    for job in space_jobs:
        finished = api.get(f"/api/v1/jobs/{job['id']}", params={"wait": 60}).json()
        assert finished["status"] == "succeeded", finished
    assert blocked.most_at_once == 1 and set(blocked.niceness) == {19}
    snaps = {s["name"]: s for s in api.get("/api/v1/snapshots", params={"volume": "busy"}).json()}
    assert all(snaps[f"measured-{n}"]["shared_bytes"] >= 1 << 20 for n in range(workers + 1))
    assert all(snaps[f"while-blocked-{n}"]["shared_bytes"] is None for n in range(2 * workers + 1))
