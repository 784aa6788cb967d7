"""``snapkeep vm`` and ``snapkeep snapshot ... --vm``, run as a real subprocess against a real service and a
real libvirtd.

No guest operating system boots here, so the file stays fast: VMs are created stopped, and the one that
is powered on runs only its firmware (no bootable disk), which is enough for the power commands and for
"restore over a running VM". Disk contents are checked byte for byte in the VMs' raw files. Booting the
test guest, quiescing it through its agent and restoring it running are the hypervisor and VM tests' job.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Server
from tests.integration.test_cli import Cli, unique

MiB = 1 << 20
MAC = re.compile(r"^52:54:00(:[0-9a-f]{2}){3}$")
DESCRIPTION = "web [bold]server[/bold] 52:54:00:ab:cd:ef"


@pytest.fixture
def cli(server: Server, libvirtd: None) -> Iterator[Cli]:
    """The CLI; every VM and volume a test leaves behind (also restored and cloned ones) is deleted, powered
    off first if it runs, even when the test failed."""
    with server.client() as api:
        vms_before = {v["id"] for v in api.get("/api/v1/vms").json()}
        volumes_before = {v["id"] for v in api.get("/api/v1/volumes").json()}
        yield Cli(server.cli_env())
        problems = []
        for kind, before, params in (
            ("vms", vms_before, {"force": "true", "wait": 30}),
            ("volumes", volumes_before, {"wait": 30}),
        ):
            for obj in api.get(f"/api/v1/{kind}").json():
                if obj["id"] not in before:
                    answer = api.delete(f"/api/v1/{kind}/{obj['id']}", params=params)
                    if answer.status_code != 202 or answer.json()["status"] != "succeeded":
                        problems.append(answer.text)
        assert not problems, problems


def datasets(server: Server) -> list[str]:
    return sorted(os.listdir(os.path.join(server.pool_dir, "datasets")))


def make_vm(cli: Cli, *args: str) -> dict[str, Any]:
    vm: dict[str, Any] = cli.json("vm", "create", unique("vm"), "--disk", "16M", "--disk", "8M", *args)
    return vm


def scribble(vm: dict[str, Any]) -> None:
    """Random bytes at the start, the middle and the end of every disk (sizes unchanged)."""
    for disk in vm["disks"]:
        with open(disk["path"], "r+b") as f:
            for offset in (0, disk["size"] // 2 + 123, disk["size"] - 4096):
                os.pwrite(f.fileno(), os.urandom(4096), offset)


def digests(vm: dict[str, Any]) -> list[str]:
    """Every disk's bytes, as a digest, in the VM's disk order."""
    return [hashlib.sha256(Path(d["path"]).read_bytes()).hexdigest() for d in vm["disks"]]


def snapshot_names(cli: Cli, vm: str) -> list[str]:
    return sorted(s["name"] for s in cli.json("snapshot", "list", "--vm", vm))


# --- create, list, show --------------------------------------------------------------------------------
def test_vm_create_list_show(cli: Cli, tmp_path: Path) -> None:
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.img"
    kernel.write_bytes(b"not booted here")
    initrd.write_bytes(b"not booted here")
    name = unique("vm")
    vm = cli.json(
        "vm", "create", name, "--vcpus", "2", "--memory", "256M", "--disk", "16M", "--disk", "8M",
        "--kernel", str(kernel), "--initrd", str(initrd), "--cmdline", "console=ttyS0 quiet", "--nics", "2",
        "--description", DESCRIPTION, "--quiesce-policy", "require", "--agent-timeout", "3",
    )  # fmt: skip
    assert vm["name"] == name and vm["state"] == "shutoff" and vm["description"] == DESCRIPTION
    assert (vm["vcpus"], vm["memory_mib"]) == (2, 256)
    assert (vm["kernel"], vm["initrd"], vm["cmdline"]) == (str(kernel), str(initrd), "console=ttyS0 quiet")
    assert (vm["quiesce_policy"], vm["agent_timeout"]) == ("require", 3.0)
    assert [(d["target"], d["size"]) for d in vm["disks"]] == [("vda", 16 * MiB), ("vdb", 8 * MiB)]
    assert len({d["serial"] for d in vm["disks"]}) == 2
    for disk in vm["disks"]:
        st = os.stat(disk["path"])
        assert st.st_size == disk["size"] and st.st_blocks * 512 < MiB, "not a sparse file of the right size"
        assert os.path.dirname(disk["path"]) == os.path.dirname(vm["disks"][0]["path"])
    assert len(vm["macs"]) == 2 and len(set(vm["macs"])) == 2
    assert all(MAC.match(mac) for mac in vm["macs"]), vm["macs"]

    shown = cli.json("vm", "show", name)
    assert shown["agent_answers"] is False  # asked, and a stopped VM's agent cannot answer
    assert cli.json("vm", "show", vm["id"]) == shown == {**vm, "agent_answers": False}
    assert vm in cli.json("vm", "list")
    details = cli.ok("vm", "show", name)
    assert all(d["path"] in details and d["serial"] in details for d in vm["disks"])
    assert all(mac in details for mac in vm["macs"])
    assert "does not answer" in details and "shutoff" in details and str(kernel) in details
    assert DESCRIPTION in details  # shown as it is: no rich markup, no emoji for ":ab:" (as in a MAC)
    table = cli.ok("vm", "list")
    assert "DISKS" in table and "MEMORY" in table
    [row] = [line for line in table.splitlines() if vm["id"] in line]
    assert name in row and "shutoff" in row and "2 (24.0 MiB)" in row and "256.0 MiB" in row

    # Defaults: one 1 GiB disk and one NIC; relative kernel paths are read from the current directory.
    plain = cli.json("vm", "create", unique("vm"))
    assert [d["size"] for d in plain["disks"]] == [1 << 30] and len(plain["macs"]) == 1
    assert plain["kernel"] is None and "firmware" in cli.ok("vm", "show", plain["id"])
    relative = os.path.relpath(kernel)
    said = cli.ok("vm", "create", unique("vm"), "--kernel", relative, "--disk", "1M")
    created = cli.json("vm", "show", said.strip().rsplit(" ", 1)[-1])
    assert created["kernel"] == str(kernel)
    missing = cli.refused("vm", "create", unique("vm"), "--kernel", str(tmp_path / "absent"), code="invalid_path",
                          exit_code=2)  # fmt: skip
    assert "absent" in missing


def refused_all(cli: Cli, cases: list[tuple[list[str], str, int]]) -> list[str]:
    """Run refusals that change nothing side by side (each is a process start); their stderr, in order."""
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda case: cli.refused(*case[0], code=case[1], exit_code=case[2]), cases))


def test_refused_input_says_why_and_changes_nothing(cli: Cli, server: Server) -> None:
    vm = make_vm(cli)["name"]
    cli.ok("snapshot", "take", "--vm", vm, "--name", "first")
    volume = cli.json("volume", "create", unique("cli"), "--size", "64M")["name"]
    cli.ok("snapshot", "take", "--volume", volume, "--name", "first")
    before = (cli.json("vm", "list"), datasets(server), snapshot_names(cli, vm))
    missing = unique("nope")
    errors = refused_all(
        cli,
        [
            *((["vm", "create", bad, "--disk", "1M"], "invalid_name", 2) for bad in ("a/b", "..", " lead")),
            (["vm", "create", unique("vm"), "--memory", "lots"], "invalid_input", 2),
            (["vm", "create", unique("vm"), "--disk", "0"], "invalid_input", 2),
            (["vm", "create", unique("vm"), "--vcpus", "0"], "invalid_input", 2),
            (["vm", "clone", vm, "--name", "a/b"], "invalid_name", 2),
            (["vm", "clone", vm, "--name", vm], "name_clash", 4),
            *((["vm", *args, missing], "not_found", 3) for args in (["show"], ["stop"], ["delete", "--yes"])),
            # Exactly one of --volume and --vm: refused before anything is asked of the service.
            (["snapshot", "take", "--volume", vm, "--vm", vm, "--name", "x"], "invalid_input", 2),
            (["snapshot", "take", "--name", "x"], "invalid_input", 2),
            *(
                (["snapshot", *args, "--volume", vm, "--vm", vm], "invalid_input", 2)
                for args in (["list"], ["show", "x"], ["delete", "x"], ["restore", "x"])
            ),
            (["snapshot", "take", "--vm", missing, "--name", "x"], "not_found", 3),
            (["snapshot", "take", "--volume", vm, "--name", "x"], "not_found", 3),  # a VM is not a volume
            (["snapshot", "take", "--vm", vm, "--name", "a/b"], "invalid_name", 2),
            (["snapshot", "take", "--vm", vm, "--name", "first"], "name_clash", 4),
            (["snapshot", "show", "first", "--volume", vm], "not_found", 3),
            (["snapshot", "show", "nope", "--vm", vm], "not_found", 3),
            *(
                (["snapshot", "restore", "first", "--vm", vm, *args], "invalid_input", 2)
                for args in (["--preserve-macs"], ["--as-new", "--power-off"], ["--new-name", "x", "--power-off"])
            ),
            *(
                (["snapshot", "restore", "first", "--volume", volume, *args], "invalid_input", 2)
                for args in (["--power-off"], ["--as-new", "--preserve-macs"])
            ),
        ],
    )
    assert all("VM name" in err for err in errors[:3])
    usage = cli.run("snapshot", "browse", "x", "--vm", vm)  # browse and extract are for volumes only
    assert usage.returncode == 2 and "--vm" in usage.stderr
    assert (cli.json("vm", "list"), datasets(server), snapshot_names(cli, vm)) == before


# --- snapshots and restores of a stopped VM ------------------------------------------------------------
def test_snapshot_restore_in_place_and_as_new(cli: Cli, server: Server) -> None:
    vm = make_vm(cli)
    name = vm["name"]
    scribble(vm)
    good = digests(vm)
    snap_name = unique("good")
    job = cli.json("snapshot", "take", "--vm", name, "--name", snap_name, "--description", "before upgrade")
    assert job["status"] == "succeeded" and job["kind"] == "snapshot.take"
    snap = job["result"]["snapshot"]
    assert (snap["subject_type"], snap["subject_id"], snap["subject_name"]) == ("vm", vm["id"], name)
    assert snap["description"] == "before upgrade" and not snap["quiesced"]
    said = cli.ok("snapshot", "take", "--vm", vm["id"], "--name", "second", "--expires", "7d")
    assert repr(name) in said and "crash-consistent" in said

    listed = cli.json("snapshot", "list", "--vm", name)
    assert sorted(s["name"] for s in listed) == sorted([snap_name, "second"])
    assert {s["id"] for s in listed} <= {s["id"] for s in cli.json("snapshot", "list")}
    assert f"vm:{name}" in cli.ok("snapshot", "list", "--vm", vm["id"])
    assert cli.json("snapshot", "show", snap_name, "--vm", name) == cli.json("snapshot", "show", snap["id"])
    shown = cli.ok("snapshot", "show", snap_name, "--vm", name)
    assert snap["id"] in shown and vm["id"] in shown and "paused window" in shown
    space = cli.json("snapshot", "space", snap_name, "--vm", name)
    assert space["status"] == "succeeded" and isinstance(space["result"]["exclusive_bytes"], int)
    assert "deleted" in cli.ok("snapshot", "delete", "second", "--vm", name)

    # In place, over the stopped VM: its disks are the snapshot's again, byte for byte.
    scribble(vm)
    damaged = digests(vm)
    assert damaged != good
    said = cli.ok("snapshot", "restore", snap_name, "--vm", name)
    assert "VM restored in place" in said and "previous state is snapshot" in said
    assert digests(vm) == good
    after = cli.json("vm", "show", name)
    assert (after["state"], after["macs"], after["domain_uuid"]) == ("shutoff", vm["macs"], vm["domain_uuid"])
    [pre_restore] = [n for n in snapshot_names(cli, name) if n.startswith("pre-restore_")]
    # ... and undone through the pre-restore snapshot, which holds the damaged disks.
    job = cli.json("snapshot", "restore", pre_restore, "--vm", name, "--no-pre-restore")
    assert job["result"]["pre_restore_snapshot_id"] is None
    assert digests(vm) == damaged
    assert [n for n in snapshot_names(cli, name) if n.startswith("pre-restore_")] == [pre_restore]

    # As a new VM: the default name, new MACs and libvirt UUID, the same disk serials and bytes.
    job = cli.json("snapshot", "restore", snap["id"], "--as-new")
    assert job["kind"] == "snapshot.restore_as_new" and job["result"]["vm"] == f"{snap_name} restored"
    copy = cli.json("vm", "show", job["result"]["vm_id"])
    assert copy["state"] == "shutoff" and copy["domain_uuid"] != vm["domain_uuid"]
    assert [d["serial"] for d in copy["disks"]] == [d["serial"] for d in vm["disks"]]
    assert set(copy["macs"]).isdisjoint(vm["macs"]) and all(MAC.match(m) for m in copy["macs"])
    assert digests(copy) == good
    chosen = unique("vm")
    said = cli.ok("snapshot", "restore", snap_name, "--vm", name, "--new-name", chosen, "--preserve-macs")
    assert f"restored as new VM {chosen!r}" in said
    kept = cli.json("vm", "show", chosen)
    assert kept["macs"] == vm["macs"] and digests(kept) == good

    # A clashing name is refused before any job starts: nothing printed as a job, nothing made.
    before = (cli.json("vm", "list"), datasets(server))
    clashes = [chosen, name, f"{snap_name} restored"]
    errors = refused_all(
        cli, [(["snapshot", "restore", snap["id"], "--new-name", c], "name_clash", 4) for c in clashes]
    )
    assert all(clash in err for clash, err in zip(clashes, errors, strict=True))
    failed = cli.run("snapshot", "restore", snap["id"], "--as-new", "--json")  # the default name is taken
    assert failed.returncode == 4 and "(name_clash)" in failed.stderr and failed.stdout == ""
    assert (cli.json("vm", "list"), datasets(server)) == before


# --- clone and delete ------------------------------------------------------------------------------------
def test_clone_and_delete(cli: Cli) -> None:
    source = make_vm(cli)
    scribble(source)
    current = digests(source)
    name = unique("vm")
    said = cli.ok("vm", "clone", source["name"], "--name", name)
    assert f"cloned as {name!r}" in said
    clone = cli.json("vm", "show", name)
    assert clone["state"] == "shutoff" and digests(clone) == current
    assert [d["serial"] for d in clone["disks"]] == [d["serial"] for d in source["disks"]]
    assert set(clone["macs"]).isdisjoint(source["macs"])
    job = cli.json("vm", "clone", source["id"], "--name", unique("vm"), "--preserve-macs")
    assert job["kind"] == "vm.clone" and job["status"] == "succeeded"
    assert cli.json("vm", "show", job["result"]["vm_id"])["macs"] == source["macs"]
    assert snapshot_names(cli, source["name"]) == []  # the clones' source snapshots are gone again

    snaps = [cli.json("snapshot", "take", "--vm", name, "--name", n)["result"]["snapshot"]["id"] for n in ("a", "b")]
    declined = cli.run("vm", "delete", name, stdin="n\n")
    assert declined.returncode != 0 and cli.json("vm", "show", name)["id"] == clone["id"]
    assert f"VM {name!r} deleted" in cli.ok("vm", "delete", name, "--yes")
    assert name in cli.refused("vm", "show", name, code="not_found", exit_code=3)
    cli.refused("snapshot", "list", "--vm", name, code="not_found", exit_code=3)
    for snap_id in snaps:
        cli.refused("snapshot", "show", snap_id, code="not_found", exit_code=3)
    assert not any(os.path.exists(d["path"]) for d in clone["disks"])
    assert clone["id"] not in [v["id"] for v in cli.json("vm", "list")]
    assert digests(source) == current  # the source is untouched by its clone's deletion
    job = cli.json("vm", "delete", source["id"], "--yes")
    assert job["kind"] == "vm.delete" and job["status"] == "succeeded"


# --- power: a VM running its firmware only -------------------------------------------------------------
def test_start_stop_and_restore_over_a_running_vm(cli: Cli) -> None:
    vm = make_vm(cli, "--agent-timeout", "1")
    name = vm["name"]
    scribble(vm)
    good = digests(vm)
    cli.ok("snapshot", "take", "--vm", name, "--name", "good")

    assert "VM is running" in cli.ok("vm", "start", name)
    assert cli.json("vm", "start", vm["id"])["result"] == {"state": "running"}  # already running: fine
    shown = cli.json("vm", "show", name)
    assert shown["state"] == "running" and shown["agent_answers"] is False  # no OS, so no agent

    # A quiesced snapshot finds no agent: `require` fails the job (and records nothing), `fallback` does not.
    err = cli.refused(
        "snapshot", "take", "--vm", name, "--name", "frozen", "--quiesce", "--quiesce-policy", "require",
        code="agent_unavailable", exit_code=8,
    )  # fmt: skip
    assert "agent" in err
    job = cli.json("snapshot", "take", "--vm", name, "--name", "fallback", "--quiesce")
    snap = job["result"]["snapshot"]
    assert snap["quiesce_requested"] and not snap["quiesced"] and snap["quiesce_note"]
    assert snap["paused_window_ms"] is not None
    assert snapshot_names(cli, name) == ["fallback", "good"]

    scribble(vm)
    damaged = digests(vm)
    err = cli.refused("snapshot", "restore", "good", "--vm", name, code="vm_state_conflict", exit_code=4)
    assert "power" in err
    cli.refused("vm", "delete", name, "--yes", code="vm_state_conflict", exit_code=4)
    assert digests(vm) == damaged and cli.json("vm", "show", name)["state"] == "running"
    assert snapshot_names(cli, name) == ["fallback", "good"]  # no pre-restore snapshot either

    said = cli.ok("snapshot", "restore", "good", "--vm", name, "--power-off")
    assert "VM restored in place" in said
    assert digests(vm) == good and cli.json("vm", "show", name)["state"] == "shutoff"

    job_id = cli.ok("vm", "start", name, "--no-wait").strip()
    assert cli.json("job", "wait", job_id)["result"] == {"state": "running"}
    # No OS answers the ACPI power button: the graceful stop times out and the command fails with it.
    cli.refused("vm", "stop", name, "--timeout", "1", code="shutdown_timeout", exit_code=1)
    assert cli.json("vm", "show", name)["state"] == "running"
    assert "VM is shutoff" in cli.ok("vm", "stop", name, "--force")
    assert cli.json("vm", "stop", name)["result"] == {"state": "shutoff"}  # already off: fine
