"""Scheduled snapshots on real time, through a real ``snapkeep serve``, real libvirtd and a real guest agent.

One module-wide service (its scheduler looking every 0.25 s, its expiry sweep every 5 s), one running test
guest (quiesced through its agent; agent timeout 5 s) and one volume are shared by the tests; each test
makes its own profile of 1-minute interval periods and deletes it (detached) at the end. Slots are whole
minutes of the wall clock, so each test waits for one to three of them:

- a 1-minute period takes quiesced snapshots of the volume and the VM each minute, named after their slot
  and attributed to their period, and a period kept 1 minute (minimum 0) sees its snapshots swept;
- a ``kill -9`` while a scheduled take holds the guest frozen: after the restart the guest is thawed before
  the schedule runs on, the schedule is intact and the next slot takes its snapshot. The killed service runs
  with a fault switch (tests/faults/sitecustomize.py) that waits a few seconds after each real freeze, so
  the kill always lands in the frozen window: catching the ~50 ms window by luck costs a minute a try;
- a guest whose agent does not answer waits out its timeout in its own worker: the volume due at the same
  minute is taken at once. The scheduler looks every 0.25 s here (1 s by default) so that its own tick does
  not eat the second the volume's snapshot is allowed after its slot.

A restart after downtime (``skip_missed`` both ways) is tested in-process (test_profiles.py): the service's
own clock cannot be moved, and a real downtime long enough to count as missed is over five minutes.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import pytest

from snapkeep.errors import SnapkeepError, VMStateConflict
from snapkeep.hypervisor.libvirt_host import LibvirtHost
from snapkeep.testguest import build_test_guest, make_data_disk
from tests.conftest import Mounted, Server, make_traversable_tmp, mount_fs, start_server, stop_server, unmount_fs

AGENT_TIMEOUT = 5.0  # the VM's: a slow agent costs its take this long, and no other subject's
SERVE_ENV = {"SNAPKEEP_SCHEDULE_TICK": "0.25", "SNAPKEEP_SWEEP_INTERVAL": "5"}
BOOT_TIMEOUT = 90.0
MINUTE = timedelta(minutes=1)
HOLD_FROZEN = 5.0  # the fault switch's wait between a real freeze and the rest of the take
FAULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "faults")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, step: float = 0.2) -> Any:
    """The first true value of ``condition()`` within ``timeout`` seconds; fails the test otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g} s")
        time.sleep(step)


def sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


def slot_name(period: str, slot: datetime) -> str:
    """The scheduled name of ``slot`` in a UTC profile, written out plainly (not the scheduler's function)."""
    return f"{period}_{slot:%Y%m%d}_{slot:%H%M}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Rig:
    """The module's service, guest and volume; ``server`` changes when a test restarts the service."""

    mounted: Mounted
    data_dir: str
    pool_dir: str
    server: Server
    host: LibvirtHost
    vm: str = "sched-guest"
    volume: str = "sched-docs"
    domain: str = ""

    def api(self) -> httpx.Client:
        return self.server.client()

    def start(self, **extra: str) -> None:
        """Start the service (after a kill, or to change its environment: ``extra``)."""
        with pytest.MonkeyPatch.context() as env:  # start_server passes its own environment on
            for key, value in {**SERVE_ENV, **extra}.items():
                env.setenv(key, value)
            self.server = start_server(self.data_dir, self.pool_dir)

    def restart(self, **extra: str) -> None:
        stop_server(self.server)
        self.start(**extra)

    def frozen(self) -> bool:
        return self.host.frozen(self.domain, 5.0)

    def thawed(self) -> bool:
        """Whether the guest runs with its filesystems thawed (its agent says so); not while it is paused."""
        try:
            return not self.host.frozen(self.domain, 5.0)
        except VMStateConflict:  # paused (a take's capture): its agent cannot answer now
            return False

    def guest_writes(self, path: str) -> bool:
        """Whether a file written (and synced) inside the guest, through its agent, can be read back: a frozen
        filesystem blocks the write."""
        marker = f"written at {time.time()}"
        self.host.guest_exec(self.domain, ["/bin/sh", "-c", f"echo '{marker}' > {path} && sync"], 5.0)

        def written() -> bool:
            try:
                return self.host.read_guest_file(self.domain, path, 5.0) == f"{marker}\n".encode()
            except SnapkeepError:  # not there yet
                return False

        with contextlib.suppress(pytest.fail.Exception):
            wait_for(written, 10, "the guest's write")
        return written()

    def new_intents(self, before: set[str]) -> set[str]:
        return set(self.intents()) - before

    def intents(self) -> list[str]:
        """The guest holds (freeze or pause) recorded in the service's run directory."""
        return sorted(glob.glob(os.path.join(self.data_dir, "run", "*guest-*.json")))


@pytest.fixture(scope="module")
def rig(libvirtd: None) -> Iterator[Rig]:
    mounted = mount_fs("btrfs", "20G")
    data_dir = make_traversable_tmp("snapkeep-sched-")
    host = LibvirtHost()
    rig = Rig(mounted, data_dir, mounted.new_dir("pool"), None, host)  # type: ignore[arg-type]
    try:
        image = build_test_guest()
        rig.start()
        with rig.api() as api:
            vm = api.post(
                "/api/v1/vms",
                json={"name": rig.vm, "memory": "256M", "disks": ["128M"], "kernel": image.kernel,
                      "initrd": image.initrd, "cmdline": image.cmdline, "agent_timeout": AGENT_TIMEOUT},
            ).json()  # fmt: skip
            make_data_disk(vm["disks"][0]["path"], 128 << 20)
            rig.domain = str(vm["domain"])
            assert api.post(f"/api/v1/vms/{rig.vm}/start", params={"wait": 30}).json()["status"] == "succeeded"
            wait_for(lambda: api.get(f"/api/v1/vms/{rig.vm}").json()["agent_answers"], BOOT_TIMEOUT, "the agent")
            assert api.post("/api/v1/volumes", json={"name": rig.volume, "size_limit": "64M"}).status_code == 201
        yield rig
    finally:
        if rig.server is not None and rig.server.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError), rig.api() as api:
                api.delete(f"/api/v1/vms/{rig.vm}", params={"force": True, "wait": 30})
            stop_server(rig.server)
        for step in (host.power_off, host.undefine):
            with contextlib.suppress(SnapkeepError):
                if rig.domain:
                    step(rig.domain)
        host.close()
        unmount_fs(mounted)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def profile(
    rig: Rig, name: str, periods: list[dict[str, Any]], subjects: list[tuple[str, str]]
) -> Iterator[dict[str, str]]:
    """A UTC profile with ``periods``, assigned to ``subjects`` ((type, name) pairs); yields its period ids
    by name, and deletes it (detached) afterwards: the snapshots it took stay."""
    with rig.api() as api:
        made = api.post("/api/v1/profiles", json={"name": name, "timezone": "UTC", "periods": periods})
        assert made.status_code == 201, made.text
        for subject_type, subject in subjects:
            done = api.post(
                f"/api/v1/profiles/{name}/assignments", json={"subject_type": subject_type, "subject": subject}
            )
            assert done.status_code == 201, done.text
    try:
        yield {p["name"]: p["id"] for p in made.json()["periods"]}
    finally:
        with contextlib.suppress(httpx.HTTPError), rig.api() as api:  # a test that failed with the service down
            api.delete(f"/api/v1/profiles/{name}", params={"detach": True})


def schedule(api: httpx.Client, subject: str) -> list[dict[str, Any]]:
    """The scheduler's entries of one subject (``snapkeep scheduler status``)."""
    return [e for e in api.get("/api/v1/scheduler").json() if e["subject_name"] == subject]


def taken(api: httpx.Client, subject_type: str, subject: str, period_id: str) -> dict[str, dict[str, Any]]:
    """The snapshots one period took of one subject, by name."""
    found = api.get("/api/v1/snapshots", params={subject_type: subject, "period": period_id, "limit": 500})
    assert found.status_code == 200, found.text
    return {s["name"]: s for s in found.json()}


def ready(
    api: httpx.Client, subject_type: str, subject: str, period_id: str, name: str, timeout: float
) -> dict[str, Any]:
    """The snapshot ``name`` of the period on the subject, once it is ready."""

    def found() -> dict[str, Any] | None:
        snap = taken(api, subject_type, subject, period_id).get(name)
        return snap if snap is not None and snap["status"] == "ready" else None

    return wait_for(found, timeout, f"{subject}'s snapshot {name}", step=0.05)  # type: ignore[no-any-return]


def moved_on(api: httpx.Client, subject: str, slot: datetime) -> bool:
    """Whether the subject's entries wait for a slot after ``slot`` (and none is running)."""
    entries = schedule(api, subject)
    return bool(entries) and all(not e["running"] and e["next_run"] and at(e["next_run"]) > slot for e in entries)


def gone(api: httpx.Client, snap_id: str) -> bool:
    return api.get(f"/api/v1/snapshots/{snap_id}").status_code == 404


def first_slot(api: httpx.Client, subject: str) -> datetime:
    """The next slot of a subject whose periods all run each minute: the same for all of them."""
    runs = {e["next_run"] for e in wait_for(lambda: schedule(api, subject), 10, f"{subject} on the schedule")}
    assert len(runs) == 1, runs
    slot = at(runs.pop())
    assert slot.second == 0 and slot.microsecond == 0, "a 1-minute interval runs on whole minutes"
    return slot


def test_a_one_minute_period_on_a_volume_and_a_running_vm_in_real_time(rig: Rig) -> None:
    """About 2.5 minutes of wall time: three slots on each subject; the brief period's first snapshots are
    swept once a minute has passed, its newest stays."""
    periods = [
        {"name": "minutely", "frequency": "interval", "interval_minutes": 1, "retention": "1h", "quiesce": True},
        {"name": "brief", "frequency": "interval", "interval_minutes": 1, "retention": "1m", "min_snapshots": 0,
         "quiesce": True},
    ]  # fmt: skip
    subjects = [("volume", rig.volume), ("vm", rig.vm)]
    with profile(rig, "realtime", periods, subjects) as period_ids, rig.api() as api:
        first = first_slot(api, rig.vm)
        assert first_slot(api, rig.volume) == first and first - datetime.now(UTC) <= MINUTE
        slots = [first, first + MINUTE, first + 2 * MINUTE]
        names = [slot_name("minutely", slot) for slot in slots]

        def brief_of_first_slot() -> list[dict[str, Any]]:
            found = [
                taken(api, kind, name, period_ids["brief"]).get(slot_name("brief", first)) for kind, name in subjects
            ]
            return [s for s in found if s is not None and s["status"] == "ready"]

        sleep_until(first)
        brief = wait_for(lambda: len(found := brief_of_first_slot()) == 2 and found, 60, "the first slot")
        last = slots[-1]
        sleep_until(last)
        for kind, name in subjects:
            ready(api, kind, name, period_ids["minutely"], names[-1], 90)

        for kind, name in subjects:
            minutely = taken(api, kind, name, period_ids["minutely"])
            assert sorted(minutely) == names, f"{name}: one snapshot per slot, named after it"
            for slot, snap_name in zip(slots, names, strict=True):
                snap = minutely[snap_name]
                created = at(snap["created_at"])
                assert snap["status"] == "ready" and snap["origin"] == "realtime/minutely"
                assert snap["period_id"] == period_ids["minutely"] and snap["kind"] == kind
                assert slot <= created < slot + MINUTE, f"{snap_name} taken at {created}"
                assert at(snap["expires_at"]) - created == timedelta(hours=1)
                assert snap["quiesce_requested"] and snap["quiesced"], f"{snap_name}: {snap['quiesce_note']}"
                assert snap["quiesce_note"] is None
            if kind == "vm":
                assert all(s["paused_window_ms"] is not None for s in minutely.values())
            late = [
                round((at(minutely[n]["created_at"]) - slot).total_seconds(), 3)
                for slot, n in zip(slots, names, strict=True)
            ]
            print(f"{kind}: created after their slots by {late} s")

        # a brief snapshot expires a minute after it was taken; the sweep (every 5 s) deletes it, unheld
        for snap in brief:
            wait_for(partial(gone, api, snap["id"]), 30, f"the sweep of {snap['name']} of {snap['subject_name']}")
        for kind, name in subjects:
            left = taken(api, kind, name, period_ids["brief"])
            assert slot_name("brief", first) not in left
            assert slot_name("brief", last) in left, "the newest brief snapshot has not expired yet"
        assert not rig.frozen() and rig.intents() == []


def test_kill_9_while_a_scheduled_snapshot_holds_the_guest_frozen(rig: Rig) -> None:
    """The service runs with a fault switch (tests/faults/sitecustomize.py) that waits 5 s after each real
    freeze, so the kill lands while the guest is frozen every time, not by luck in a 50 ms window."""
    rig.restart(
        SKTEST_HOLD_FROZEN=str(HOLD_FROZEN),
        PYTHONPATH=os.pathsep.join(filter(None, [FAULTS, os.environ.get("PYTHONPATH")])),
    )
    periods = [{"name": "often", "frequency": "interval", "interval_minutes": 1, "retention": "1h", "quiesce": True}]
    try:
        with profile(rig, "crashing", periods, [("vm", rig.vm)]) as period_ids:
            api = rig.api()
            slot = first_slot(api, rig.vm)
            before = set(rig.intents())
            sleep_until(slot - timedelta(seconds=1))
            wait_for(partial(rig.new_intents, before), 30, "the scheduled take's freeze intent", step=0.01)
            wait_for(rig.frozen, HOLD_FROZEN, "the scheduled take's freeze", step=0.05)
            os.kill(rig.server.process.pid, signal.SIGKILL)
            rig.server.process.wait()
            killed = slot_name("often", slot)
            assert rig.frozen() and rig.intents(), "the kill should have left the guest frozen, its intent recorded"

            rig.start()
            api = rig.api()
            # Thawed by the restart itself, before the schedule ran on: the retake of the killed slot comes at
            # once and would fail its freeze on a frozen guest (then thaw it, but without quiescing).
            wait_for(rig.thawed, 5, "the thaw after the restart")
            wait_for(lambda: rig.intents() == [], 10, "the freeze intent's removal")

            def settled() -> list[dict[str, Any]]:
                """Until the scheduler's first pass after the start, the entry still shows the killed slot as
                due (not running): settled is when the retake is done and the next slot is set."""
                entries = schedule(api, rig.vm)
                done = entries and not entries[0]["running"] and entries[0]["next_run"]
                return entries if done and at(entries[0]["next_run"]) > slot else []

            [entry] = wait_for(settled, 60, "the schedule after the restart")
            # The retake froze the guest again (for the fault switch's seconds); once it is done, the guest works.
            assert rig.guest_writes(f"/data/after-kill-{os.getpid()}"), "the guest cannot write after the restart"
            assert entry["period"] == "often" and entry["failures"] == 0, entry
            snaps = taken(api, "vm", rig.vm, period_ids["often"])
            assert killed in snaps, "the killed slot is taken again after the restart"
            assert snaps[killed]["status"] == "ready" and snaps[killed]["quiesced"], snaps[killed]
            assert all(s["status"] in ("ready", "failed") for s in snaps.values())
            interrupted = [
                j for j in api.get("/api/v1/jobs", params={"limit": 50}).json()
                if j["kind"] == "snapshot.scheduled" and j["status"] == "failed" and "interrupted" in j["message"]
            ]  # fmt: skip
            assert interrupted, "the killed job shows as interrupted"

            upcoming = at(entry["next_run"])
            sleep_until(upcoming)
            following = slot_name("often", upcoming)
            snap = ready(api, "vm", rig.vm, period_ids["often"], following, 60)
            assert snap["quiesced"] and snap["origin"] == "crashing/often"
            assert not rig.frozen()
            api.close()
    finally:
        if rig.server.process.poll() is not None or "SKTEST_HOLD_FROZEN" in rig.server.env:
            rig.restart()  # the tests after this one get the service as the module started it


def test_a_guest_whose_agent_hangs_does_not_delay_a_volume_due_at_the_same_minute(rig: Rig) -> None:
    """The agent is stopped (SIGSTOP inside the guest) over the slot: the VM's take waits out its 5 s agent
    timeout and falls back (its quiesce policy) to a paused, unquiesced snapshot that says why; the volume's
    snapshot of the same slot is made within a second of the slot, while the VM's take is still waiting."""
    periods = [{"name": "same", "frequency": "interval", "interval_minutes": 1, "retention": "1h", "quiesce": True}]
    subjects = [("vm", rig.vm), ("volume", rig.volume)]
    with profile(rig, "slowpoke", periods, subjects) as period_ids, rig.api() as api:
        slot = first_slot(api, rig.vm)
        assert first_slot(api, rig.volume) == slot
        if slot - datetime.now(UTC) < timedelta(seconds=15):  # too close to stop the agent in time: the next one
            sleep_until(slot)
            for subject in (rig.vm, rig.volume):
                wait_for(partial(moved_on, api, subject, slot), 60, f"{subject}'s schedule after that slot")
            slot = first_slot(api, rig.vm)
        name = slot_name("same", slot)
        sleep_until(slot - timedelta(seconds=10))
        hang = "killall -STOP qemu-ga; sleep 22; killall -CONT qemu-ga"  # over the slot, the freeze and the thaw
        rig.host.guest_exec(rig.domain, ["/bin/sh", "-c", hang], 10.0)  # a busy TCG guest can take seconds
        wait_for(lambda: not rig.host.agent_ping(rig.domain, 0.5), 5, "the agent stopping")
        assert datetime.now(UTC) < slot, "the agent was stopped too late for the slot"

        sleep_until(slot)
        volume_snap = ready(api, "volume", rig.volume, period_ids["same"], name, 20)
        vm_meanwhile = taken(api, "vm", rig.vm, period_ids["same"]).get(name)
        late = at(volume_snap["created_at"]) - slot
        assert timedelta(0) <= late < timedelta(seconds=1), f"the volume's snapshot came {late} after its slot"
        assert vm_meanwhile is not None and vm_meanwhile["status"] == "creating", (
            "the VM's take should still be waiting for its agent when the volume's is done"
        )

        vm_snap = ready(api, "vm", rig.vm, period_ids["same"], name, 60)
        waited = datetime.now(UTC) - slot
        assert waited >= timedelta(seconds=AGENT_TIMEOUT), f"the VM's take was done {waited} after its slot"
        print(f"volume snapshot {late} after the slot; the VM's fallback snapshot ready {waited} after it")
        assert not vm_snap["quiesced"] and vm_snap["quiesce_requested"] and vm_snap["paused_window_ms"] is not None
        assert vm_snap["quiesce_note"] and "not quiesced" in vm_snap["quiesce_note"]
        assert at(vm_snap["created_at"]) - slot < timedelta(seconds=1), "the VM's take started on time too"

        # the agent comes back (22 s after it stopped); the service's pending thaw leaves the guest running
        wait_for(lambda: rig.host.agent_ping(rig.domain, 1.0), 30, "the agent answering again")
        wait_for(lambda: not rig.frozen() and rig.intents() == [], 20, "the guest thawed, no hold left")
        assert api.get(f"/api/v1/vms/{rig.vm}").json()["state"] == "running"
