"""The ``snapkeep`` command line, run as a real subprocess against a real running service.

Every command and its options go through ``python -m snapkeep.cli.main``; the effects are checked in the
volumes' files (byte for byte), through ``--json`` output, exit codes and the ``error: ... (code)`` line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from snapkeep import __version__
from snapkeep.storage import loopfs
from tests.conftest import SERVE_START_TIMEOUT, Server, free_port, make_traversable_tmp, require

CLI = [sys.executable, "-m", "snapkeep.cli.main"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any SNAPKEEP_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPKEEP_")}
    return {**env, **extra}


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


@dataclass
class Cli:
    """The CLI pointed at one running service."""

    env: dict[str, str]

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run(self.env, *args, stdin=stdin)

    def ok(self, *args: str) -> str:
        done = self.run(*args)
        assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stderr}"
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def refused(self, *args: str, code: str, exit_code: int) -> str:
        """Run a command that must be refused; its stderr (one ``error:`` line) is returned."""
        done = self.run(*args)
        assert done.returncode == exit_code, f"{args}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        assert done.stderr.startswith("error: ") and done.stderr.rstrip().endswith(f"({code})"), done.stderr
        return done.stderr


@pytest.fixture
def cli(server: Server) -> Iterator[Cli]:
    """The CLI; every volume a test leaves behind (also those restored as new) is deleted afterwards."""
    with server.client() as api:
        before = {v["id"] for v in api.get("/api/v1/volumes").json()}
        yield Cli(server.cli_env())
        for volume in api.get("/api/v1/volumes").json():
            if volume["id"] not in before:
                answer = api.delete(f"/api/v1/volumes/{volume['id']}", params={"wait": 30})
                assert answer.status_code == 202 and answer.json()["status"] == "succeeded", answer.text


def make_volume(cli: Cli) -> dict[str, Any]:
    volume: dict[str, Any] = cli.json("volume", "create", unique("cli"), "--size", "1G")
    return volume


def write(root: str, rel: str, data: bytes) -> None:
    path = Path(root, rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def tree(root: str) -> dict[str, bytes | str]:
    """Every file (its bytes), folder and symlink under ``root``, to compare trees exactly."""
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "-> " + os.readlink(path)
            elif os.path.isdir(path):
                found[rel] = "dir"
            else:
                found[rel] = Path(path).read_bytes()
    return found


def snapshot_names(cli: Cli, volume: str) -> list[str]:
    return sorted(s["name"] for s in cli.json("snapshot", "list", "--volume", volume))


# --- volumes -----------------------------------------------------------------------------------------
def test_volume_create_list_show_update_delete(cli: Cli) -> None:
    name = unique("cli")
    vol = cli.json("volume", "create", name, "--size", "1G", "--description", "team share")
    assert vol["name"] == name and vol["size_limit"] == 1 << 30 and vol["description"] == "team share"
    assert os.path.isdir(vol["path"])

    assert name in [v["name"] for v in cli.json("volume", "list")]
    table = cli.ok("volume", "list")
    assert name in table and "1.0 GiB" in table and "SIZE LIMIT" in table
    assert cli.json("volume", "show", name) == cli.json("volume", "show", vol["id"]) == vol
    assert vol["path"] in cli.ok("volume", "show", name)

    renamed = unique("cli")
    updated = cli.json(
        "volume", "update", name, "--name", renamed, "--description", "moved", "--size", "2G",
        "--set", "quota_warn=80", "--set", "owner=ops team", "--set", "nfs=true",
    )  # fmt: skip
    assert updated["id"] == vol["id"] and updated["name"] == renamed and updated["size_limit"] == 2 << 30
    assert updated["settings"] == {"quota_warn": 80, "owner": "ops team", "nfs": True}
    again = cli.json("volume", "update", vol["id"], "--set", "nfs=false")
    assert again["settings"] == {"quota_warn": 80, "owner": "ops team", "nfs": False}
    cli.refused("volume", "update", renamed, code="invalid_input", exit_code=2)
    cli.refused("volume", "update", renamed, "--set", "novalue", code="invalid_input", exit_code=2)

    declined = cli.run("volume", "delete", renamed, stdin="n\n")
    assert declined.returncode != 0
    assert cli.json("volume", "show", renamed)["id"] == vol["id"]
    assert f"volume {renamed!r} deleted" in cli.ok("volume", "delete", renamed, "--yes")
    err = cli.refused("volume", "show", renamed, code="not_found", exit_code=3)
    assert renamed in err
    cli.refused("volume", "show", "..", code="not_found", exit_code=3)


def test_refused_input_says_why_and_changes_nothing(cli: Cli) -> None:
    before = cli.json("volume", "list")
    for bad in ["a/b", "..", "x" * 300]:
        err = cli.refused("volume", "create", bad, "--size", "1G", code="invalid_name", exit_code=2)
        assert "volume name" in err
    cli.refused("volume", "create", unique("cli"), "--size", "lots", code="invalid_input", exit_code=2)
    assert cli.json("volume", "list") == before

    vol = make_volume(cli)["name"]
    cli.ok("snapshot", "take", "--volume", vol, "--name", "first")
    for bad in ["a/b", "..", "y" * 300]:
        cli.refused("snapshot", "take", "--volume", vol, "--name", bad, code="invalid_name", exit_code=2)
    err = cli.refused("snapshot", "take", "--volume", vol, "--name", "first", code="name_clash", exit_code=4)
    assert "first" in err
    err = cli.refused(
        "snapshot", "take", "--volume", vol, "--name", "late", "--expires", "2001-01-01",
        code="invalid_expiry", exit_code=2,
    )  # fmt: skip
    assert "past" in err
    cli.refused(
        "snapshot", "take", "--volume", vol, "--name", "x", "--expires", "7d", "--never",
        code="invalid_input", exit_code=2,
    )  # fmt: skip
    cli.refused(
        "snapshot", "take", "--volume", vol, "--name", "x", "--quiesce-policy", "require",
        code="invalid_input", exit_code=2,
    )  # fmt: skip
    cli.refused("snapshot", "take", "--volume", unique("nope"), "--name", "x", code="not_found", exit_code=3)
    assert snapshot_names(cli, vol) == ["first"]
    cli.refused("snapshot", "show", "nope", "--volume", vol, code="not_found", exit_code=3)
    usage = cli.run("snapshot", "take")  # no subject: a usage error, nothing taken
    assert usage.returncode == 2 and "--volume" in usage.stderr
    assert snapshot_names(cli, vol) == ["first"]


# --- snapshots ---------------------------------------------------------------------------------------
def test_snapshot_take_list_show_space_delete(cli: Cli) -> None:
    vol = make_volume(cli)
    write(vol["path"], "data.bin", os.urandom(256 * 1024))

    job = cli.json(
        "snapshot", "take", "--volume", vol["name"], "--name", "weekly", "--description", "before upgrade",
        "--expires", "7d", "--quiesce", "--quiesce-policy", "require",
    )  # fmt: skip
    assert job["status"] == "succeeded" and job["kind"] == "snapshot.take"
    snap = job["result"]["snapshot"]
    assert snap["name"] == "weekly" and snap["description"] == "before upgrade"
    assert snap["quiesce_requested"] and snap["quiesced"] and snap["quiesce_window_ms"] is not None
    expires = datetime.fromisoformat(snap["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)

    said = cli.ok("snapshot", "take", "--volume", vol["name"], "--name", "forever", "--never")
    assert "'forever'" in said and "crash-consistent" in said
    cli.ok("snapshot", "take", "--volume", vol["id"], "--name", "spelled", "--expires", "never")
    when = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    cli.ok("snapshot", "take", "--volume", vol["name"], "--name", "dated", "--expires", when.isoformat())

    listed = {s["name"]: s for s in cli.json("snapshot", "list", "--volume", vol["name"])}
    assert sorted(listed) == ["dated", "forever", "spelled", "weekly"]
    assert listed["forever"]["expires_at"] is None and listed["spelled"]["expires_at"] is None
    assert datetime.fromisoformat(listed["dated"]["expires_at"]) == when
    assert snap["id"] in [s["id"] for s in cli.json("snapshot", "list")]
    table = cli.ok("snapshot", "list", "--volume", vol["name"])
    assert all(name in table for name in listed) and "never" in table and "quiesced" in table

    by_name = cli.json("snapshot", "show", "weekly", "--volume", vol["name"])
    assert by_name == cli.json("snapshot", "show", snap["id"])
    shown = cli.ok("snapshot", "show", "forever", "--volume", vol["name"])
    assert "never" in shown and listed["forever"]["id"] in shown

    space = cli.json("snapshot", "space", "weekly", "--volume", vol["name"])
    assert space["status"] == "succeeded"
    assert isinstance(space["result"]["exclusive_bytes"], int)
    assert isinstance(space["result"]["shared_bytes"], int)
    measured = cli.json("snapshot", "show", snap["id"])
    assert measured["shared_bytes"] + measured["exclusive_bytes"] >= 256 * 1024
    assert "exclusive" in cli.ok("snapshot", "space", snap["id"])

    assert "deleted" in cli.ok("snapshot", "delete", "forever", "--volume", vol["name"])
    assert cli.json("snapshot", "delete", listed["dated"]["id"])["status"] == "succeeded"
    assert snapshot_names(cli, vol["name"]) == ["spelled", "weekly"]
    cli.refused("snapshot", "show", listed["dated"]["id"], code="not_found", exit_code=3)


def test_restore_in_place_and_as_new(cli: Cli) -> None:
    vol = make_volume(cli)
    name, path = vol["name"], vol["path"]
    write(path, "a.bin", os.urandom(300 * 1024))
    write(path, "sub/b.txt", b"second file\n")
    os.symlink("a.bin", os.path.join(path, "link"))
    original = tree(path)
    cli.ok("volume", "update", name, "--description", "first", "--set", "mode=one")
    cli.ok("snapshot", "take", "--volume", name, "--name", "good")

    write(path, "a.bin", b"damaged")
    os.remove(os.path.join(path, "sub/b.txt"))
    write(path, "new.txt", b"added later")
    cli.ok("volume", "update", name, "--description", "second", "--set", "mode=two")

    said = cli.ok("snapshot", "restore", "good", "--volume", name)
    assert "restored in place" in said
    assert tree(path) == original
    assert cli.json("volume", "show", name)["description"] == "second"  # data only, by default
    pre_restore = [n for n in snapshot_names(cli, name) if n.startswith("pre-restore_")]
    assert len(pre_restore) == 1

    write(path, "a.bin", b"damaged again")
    job = cli.json("snapshot", "restore", "good", "--volume", name, "--mode", "data_and_settings", "--no-pre-restore")
    assert job["status"] == "succeeded" and job["result"]["pre_restore_snapshot_id"] is None
    assert tree(path) == original
    settings = cli.json("volume", "show", name)
    assert settings["description"] == "first" and settings["settings"] == {"mode": "one"}
    assert [n for n in snapshot_names(cli, name) if n.startswith("pre-restore_")] == pre_restore

    snap_id = cli.json("snapshot", "show", "good", "--volume", name)["id"]
    as_new = cli.json("snapshot", "restore", snap_id, "--as-new")
    assert as_new["result"]["volume"] == f"{name}_restored"
    assert tree(cli.json("volume", "show", f"{name}_restored")["path"]) == original

    chosen = unique("cli")
    assert repr(chosen) in cli.ok("snapshot", "restore", "good", "--volume", name, "--new-name", chosen)
    assert tree(cli.json("volume", "show", chosen)["path"]) == original

    cli.refused("snapshot", "restore", snap_id, "--as-new", "--mode", "data", code="invalid_input", exit_code=2)
    cli.refused("snapshot", "restore", snap_id, "--new-name", "a/b", code="invalid_name", exit_code=2)
    # A clash is refused before any job starts, so nothing is printed as a job and nothing is made.
    err = cli.refused("snapshot", "restore", snap_id, "--new-name", chosen, code="name_clash", exit_code=4)
    assert chosen in err
    failed = cli.run("snapshot", "restore", snap_id, "--new-name", chosen, "--json")
    assert failed.returncode == 4 and "(name_clash)" in failed.stderr and failed.stdout == ""


def test_browse_and_extract(cli: Cli) -> None:
    vol, other = make_volume(cli), make_volume(cli)
    path = vol["path"]
    report = os.urandom(64 * 1024)
    write(path, "docs/report.txt", report)
    write(path, "docs/deep/notes.md", b"# notes\n")
    write(path, "top.txt", b"top\n")
    os.symlink("top.txt", os.path.join(path, "link"))
    docs = tree(os.path.join(path, "docs"))
    snap = cli.json("snapshot", "take", "--volume", vol["name"], "--name", "files")["result"]["snapshot"]

    root = {e["name"]: e for e in cli.json("snapshot", "browse", snap["id"])}
    assert sorted(root) == ["docs", "link", "top.txt"]
    assert root["docs"]["type"] == "dir" and root["link"]["target"] == "top.txt"
    inner = cli.json("snapshot", "browse", "files", "docs", "--volume", vol["name"])
    assert [e["name"] for e in inner] == ["deep", "report.txt"]
    [entry] = cli.json("snapshot", "browse", snap["id"], "docs/report.txt")
    assert entry["type"] == "file" and entry["size"] == len(report)
    listing = cli.ok("snapshot", "browse", snap["id"])
    assert "link -> top.txt" in listing and "drwx" in listing
    for bad in ["../x", "/etc", "docs/../../x"]:
        cli.refused("snapshot", "browse", snap["id"], bad, code="invalid_path", exit_code=2)
    cli.refused("snapshot", "browse", snap["id"], "missing", code="not_found", exit_code=3)

    write(path, "docs/report.txt", b"overwritten")
    said = cli.ok("snapshot", "extract", snap["id"], "docs/report.txt")
    assert "docs/report.txt" in said and "what it replaced is in pre-restore snapshot" in said
    assert Path(path, "docs/report.txt").read_bytes() == report

    job = cli.json("snapshot", "extract", "files", "docs", "--volume", vol["name"], "--to", "docs-copy")
    assert job["result"] == {"volume": vol["name"], "path": "docs-copy", "skipped_special": 0, "replaced": False}
    assert tree(os.path.join(path, "docs-copy")) == docs
    cli.ok("snapshot", "extract", snap["id"], "top.txt", "--to-volume", other["name"], "--to", "from-snap.txt")
    assert Path(other["path"], "from-snap.txt").read_bytes() == b"top\n"
    write(other["path"], "from-snap.txt", b"changed since")
    again = ("snapshot", "extract", snap["id"], "top.txt", "--to-volume", other["name"], "--to", "from-snap.txt")
    cli.refused(*again, code="name_clash", exit_code=4)
    assert Path(other["path"], "from-snap.txt").read_bytes() == b"changed since"
    assert "what it replaced is in pre-restore snapshot" in cli.ok(*again, "--replace")
    assert Path(other["path"], "from-snap.txt").read_bytes() == b"top\n"
    write(other["path"], "from-snap.txt", b"changed again")
    kept = len(cli.json("snapshot", "list", "--volume", other["name"]))
    assert "pre-restore snapshot" not in cli.ok(*again, "--replace", "--no-pre-restore")
    assert Path(other["path"], "from-snap.txt").read_bytes() == b"top\n"
    assert len(cli.json("snapshot", "list", "--volume", other["name"])) == kept  # told not to: none taken

    before = (tree(path), tree(other["path"]))
    for args in (["../x"], ["/etc/passwd"], ["top.txt", "--to", "../escape"], ["top.txt", "--to", "/tmp/x"]):
        cli.refused("snapshot", "extract", snap["id"], *args, code="invalid_path", exit_code=2)
    assert (tree(path), tree(other["path"])) == before
    assert not os.path.exists(os.path.join(os.path.dirname(path), "escape"))


def locked_until_expiry(cli: Cli, vol: str, expires: datetime) -> None:
    """Three immutable snapshots expiring at ``expires``: every deletion before then is refused."""
    until = expires.isoformat()
    for name in ("locked", "swept", "unlocked"):
        cli.ok("snapshot", "take", "--volume", vol, "--name", name, "--immutable", "--expires", until)
    err = cli.refused("snapshot", "delete", "locked", "--volume", vol, code="snapshot_locked", exit_code=4)
    assert "immutable" in err
    cli.refused("volume", "delete", vol, "--yes", code="snapshot_locked", exit_code=4)
    assert cli.json("volume", "show", vol)["name"] == vol
    assert snapshot_names(cli, vol) == ["locked", "swept", "unlocked"]
    assert "immutable" in cli.ok("snapshot", "list", "--volume", vol)

    unlocked = cli.json("snapshot", "unlock", "unlocked", "--volume", vol)
    assert unlocked["unlocked_at"] is not None
    assert unlocked["deletable_at"] == unlocked["expires_at"]  # expiry comes before the cooling-off ends
    assert "unlocked" in cli.ok("snapshot", "unlock", unlocked["id"])
    cli.refused("snapshot", "delete", unlocked["id"], code="snapshot_locked", exit_code=4)
    assert snapshot_names(cli, vol) == ["locked", "swept", "unlocked"]


def test_immutable_snapshots_resist_deletion_until_they_expire(cli: Cli) -> None:
    """The service runs on the real clock, so the snapshots must expire during the test. A check that fails
    after the expiry has passed proves nothing (the machine was slower than the margin): it is retried with
    a new volume and a wider margin; a check that fails before the expiry is a real failure."""
    for margin_s in (10, 40, 160):
        vol = make_volume(cli)["name"]
        expires = datetime.now(UTC) + timedelta(seconds=margin_s)
        try:
            locked_until_expiry(cli, vol, expires)
        except AssertionError:
            if datetime.now(UTC) < expires:
                raise
            continue
        break
    else:
        pytest.fail("the machine was too slow to check the locks before a 160 s expiry")

    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    deleted = cli.run("snapshot", "delete", "locked", "--volume", vol)
    # the lock ended at expiry: our delete goes through, unless the service's periodic sweep was first
    assert "deleted" in deleted.stdout if deleted.returncode == 0 else "not_found" in deleted.stderr, deleted
    swept = cli.json("snapshot", "sweep")
    assert swept["status"] == "succeeded" and isinstance(swept["result"]["deleted"], list)
    assert snapshot_names(cli, vol) == []  # the service's own periodic sweep may have been first
    assert "expired snapshot(s) deleted" in cli.ok("snapshot", "sweep")
    cli.ok("volume", "delete", vol, "--yes")


# --- jobs --------------------------------------------------------------------------------------------
def test_jobs_no_wait_then_wait_show_list(cli: Cli) -> None:
    vol = make_volume(cli)["name"]
    job_id = cli.ok("snapshot", "take", "--volume", vol, "--name", "later", "--no-wait").strip()
    assert uuid.UUID(job_id)
    assert "succeeded" in cli.ok("job", "wait", job_id)
    waited = cli.json("job", "wait", job_id)
    assert waited["id"] == job_id and waited["status"] == "succeeded"
    assert waited["result"]["snapshot"]["name"] == "later"
    assert cli.json("job", "show", job_id) == waited
    shown = cli.ok("job", "show", job_id)
    assert "snapshot.take" in shown and "succeeded" in shown
    assert job_id in [j["id"] for j in cli.json("job", "list")]
    assert job_id in cli.ok("job", "list", "--limit", "50")

    started = cli.json("snapshot", "space", "later", "--volume", vol, "--no-wait")
    assert started["kind"] == "snapshot.space" and started["status"] in ("queued", "running", "succeeded")
    assert cli.json("job", "wait", started["id"])["status"] == "succeeded"

    # A pool damaged behind snapkeep's back (the manifest gone): the restore reads the manifest before it
    # starts its job, so it is refused at once, and no job is left behind.
    snap = cli.json("snapshot", "show", "later", "--volume", vol)
    pool_root = os.path.dirname(os.path.dirname(make_volume(cli)["path"]))
    manifest = os.path.join(pool_root, "snapshots", snap["id"], "manifest.json")
    os.rename(manifest, manifest + ".away")
    try:
        jobs_before = {j["id"] for j in cli.json("job", "list", "--limit", "1000")}
        err = cli.refused("snapshot", "restore", "later", "--volume", vol, "--no-wait", code="pool_error", exit_code=1)
        assert "manifest" in err
        assert {j["id"] for j in cli.json("job", "list", "--limit", "1000")} == jobs_before
    finally:
        os.rename(manifest + ".away", manifest)
    cli.refused("job", "show", str(uuid.uuid4()), code="not_found", exit_code=3)


# --- finding the service -----------------------------------------------------------------------------
def test_service_found_from_env_or_token_file(server: Server, tmp_path: Path) -> None:
    from_file = run(clean_env(SNAPKEEP_URL=server.url, SNAPKEEP_DATA_DIR=server.data_dir), "volume", "list")
    assert from_file.returncode == 0, from_file.stderr

    bad_token = run(clean_env(SNAPKEEP_URL=server.url, SNAPKEEP_TOKEN="nope"), "volume", "list")
    assert bad_token.returncode == 5 and bad_token.stderr.startswith("error: ")
    assert "(unauthorized)" in bad_token.stderr

    no_token = run(clean_env(SNAPKEEP_URL=server.url, SNAPKEEP_DATA_DIR=str(tmp_path)), "volume", "list")
    assert no_token.returncode == 5 and "SNAPKEEP_TOKEN" in no_token.stderr

    nobody = f"http://127.0.0.1:{free_port()}"
    down = run(clean_env(SNAPKEEP_URL=nobody, SNAPKEEP_TOKEN="x"), "job", "list")
    assert down.returncode == 9 and nobody in down.stderr and "(service_unavailable)" in down.stderr


def test_serve_options_override_env_and_create_a_loop_pool() -> None:
    """``serve --data-dir --listen --create-loop-pool`` where the filesystem cannot hold a pool (ext4)."""
    require(os.geteuid() == 0 and shutil.which("mkfs.btrfs") is not None, "loop pools need root and btrfs")
    data_dir = make_traversable_tmp("snapkeep-serve-")
    try:
        port, env_port = free_port(), free_port()
        env = clean_env(SNAPKEEP_LISTEN=f"127.0.0.1:{env_port}", SNAPKEEP_POOL_IMAGE_SIZE="1G")
        refused = run(env, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}")
        if refused.returncode == 0 or "(unsupported_filesystem)" not in refused.stderr:
            pytest.skip(f"{data_dir} can hold a pool itself; the loop pool is not needed here")
        assert refused.returncode == 6

        log = open(os.path.join(data_dir, "serve.log"), "wb")  # noqa: SIM115 (the child writes it)
        argv = [*CLI, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}", "--create-loop-pool"]
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + SERVE_START_TIMEOUT
            while True:
                assert process.poll() is None, Path(data_dir, "serve.log").read_text()
                assert time.monotonic() < deadline, "serve did not answer in time"
                try:
                    health = httpx.get(f"{url}/api/v1/health", timeout=1).json()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            assert health["pool_driver"] == "btrfs"
            assert os.path.ismount(os.path.join(data_dir, "pool"))
            assert os.stat(os.path.join(data_dir, "admin.token")).st_mode & 0o777 == 0o600
            client = clean_env(SNAPKEEP_URL=url, SNAPKEEP_DATA_DIR=data_dir)
            created = run(client, "volume", "create", "first", "--size", "64M", "--json")
            assert created.returncode == 0, created.stderr
            assert json.loads(created.stdout)["path"].startswith(os.path.join(data_dir, "pool"))
        finally:
            process.terminate()
            process.wait(15)
            log.close()
    finally:
        if os.path.ismount(os.path.join(data_dir, "pool")):
            loopfs.unmount(os.path.join(data_dir, "pool"))
        shutil.rmtree(data_dir, ignore_errors=True)


def test_version() -> None:
    done = run(clean_env(), "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"snapkeep {__version__}"
