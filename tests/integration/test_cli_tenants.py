"""``snapkeep tenant|network|settings|tag`` and ``--tenant``/``--tag`` on volumes, run as real subprocesses
against a real running service (the session's ``server``); every tenant a test makes is deleted after it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Mounted, Server, make_traversable_tmp, start_server, stop_server
from tests.integration.test_cli import Cli, unique


@pytest.fixture
def cli(server: Server, libvirtd: None) -> Iterator[Cli]:
    """Networks live in libvirtd (an update or a tenant's deletion asks it), so it must run here too."""
    with server.client() as api:
        before = {t["id"] for t in api.get("/api/v1/tenants").json() if t["depth"] == 0}
        before_networks = {n["id"] for n in api.get("/api/v1/networks").json()}
        yield Cli(server.cli_env())
        for network in api.get("/api/v1/networks").json():
            if network["id"] not in before_networks:
                api.delete(f"/api/v1/networks/{network['id']}")
        for tenant in api.get("/api/v1/tenants").json():
            if tenant["depth"] == 0 and tenant["id"] not in before:
                answer = api.delete(f"/api/v1/tenants/{tenant['id']}", params={"wait": 30, "force": True})
                assert answer.status_code == 202 and answer.json()["status"] == "succeeded", answer.text


def test_tenant_tree_show_update_and_delete(cli: Cli) -> None:
    top, child = unique("acme"), unique("dev")
    made = cli.json("tenant", "create", top, "--description", "a customer", "--tag", "prod", "--tag", "eu")
    assert made["path"] == top and made["tags"] == ["eu", "prod"] and made["parent_id"] is None
    sub = cli.json("tenant", "create", child, "--parent", top)
    assert sub["path"] == f"{top}/{child}" and sub["parent_id"] == made["id"] and sub["depth"] == 1

    listed = [t["path"] for t in cli.json("tenant", "list")]
    assert listed.index(top) + 1 == listed.index(f"{top}/{child}")
    table = cli.ok("tenant", "list")
    assert f"{made['id']}  {top}" in table and f"  {child}" in table  # the child indented beneath its parent

    assert cli.json("tenant", "show", f"{top}/{child}")["id"] == sub["id"]
    assert cli.json("tenant", "show", sub["id"])["online"] is False
    renamed = cli.json("tenant", "update", f"{top}/{child}", "--name", "staging", "--description", "was dev")
    assert renamed["path"] == f"{top}/staging" and renamed["description"] == "was dev"
    cli.refused("tenant", "create", "staging", "--parent", top, code="name_clash", exit_code=4)
    cli.refused("tenant", "update", top, code="invalid_input", exit_code=2)
    cli.refused("tenant", "show", f"{top}/nope", code="not_found", exit_code=3)

    vol = cli.json("volume", "create", unique("v"), "--size", "64M", "--tenant", f"{top}/staging", "--tag", "gold")
    assert vol["tenant_id"] == sub["id"] and vol["tags"] == ["gold"]
    assert [v["id"] for v in cli.json("volume", "list", "--tenant", f"{top}/staging")] == [vol["id"]]
    assert vol["id"] not in [v["id"] for v in cli.json("volume", "list", "--tenant", top)]

    assert cli.ok("tenant", "start", top).strip() == "started: -"  # no VMs: a job that reaches none
    stopped = cli.json("tenant", "stop", f"{top}/staging", "--force")
    assert stopped["kind"] == "tenant.stop" and stopped["status"] == "succeeded" and stopped["result"]["stopped"] == []
    done = cli.ok("tenant", "delete", top, "--yes")
    assert f"tenant {top!r} deleted (2 tenant(s), 0 VM(s), 1 volume(s)" in done
    assert top not in [t["path"] for t in cli.json("tenant", "list")]
    assert vol["id"] not in [v["id"] for v in cli.json("volume", "list")]


def test_settings_get_set_unset(cli: Cli) -> None:
    top = unique("acme")
    cli.json("tenant", "create", top)
    assert cli.json("settings", "get", "--tenant", top) == {"expose_snapshots": True}
    after = cli.json("settings", "set", "expose_snapshots=false", "quota=50", "contact=ops team", "--tenant", top)
    assert after == {"expose_snapshots": False, "quota": 50, "contact": "ops team"}
    assert cli.json("settings", "get", "quota", "--tenant", top) == {"quota": 50}
    assert "contact" in cli.ok("settings", "get", "--tenant", top)
    after = cli.json("settings", "unset", "expose_snapshots", "quota", "--tenant", top)
    assert after == {"expose_snapshots": True, "contact": "ops team"}
    cli.refused("settings", "set", "expose_snapshots=maybe", "--tenant", top, code="invalid_settings", exit_code=2)
    cli.refused("settings", "set", "novalue", "--tenant", top, code="invalid_input", exit_code=2)

    key = unique("k")
    assert cli.json("settings", "set", f"{key}=1")[key] == 1  # the system's document
    assert key not in cli.json("settings", "unset", key)


def test_tags_and_networks(cli: Cli) -> None:
    top = unique("acme")
    cli.json("tenant", "create", top)
    assert "prod" in cli.ok("tag", "add", "tenant", top, "prod")
    assert cli.json("tenant", "show", top)["tags"] == ["prod"]
    assert "no tags" in cli.ok("tag", "remove", "tenant", top, "prod")
    cli.refused("tag", "add", "tenant", top, "bad,tag", code="invalid_input", exit_code=2)
    cli.refused("tag", "add", "volume", unique("missing"), "x", code="not_found", exit_code=3)

    name = unique("lan")
    net = cli.json("network", "create", name, "--cidr", "10.231.7.0/24", "--tenant", top, "--no-dhcp")
    assert net["cidr"] == "10.231.7.0/24" and net["dhcp"] is False and net["tenant_id"] is not None
    assert [n["id"] for n in cli.json("network", "list", "--tenant", top)] == [net["id"]]
    cli.refused("network", "create", unique("wide"), "--cidr", "10.231.0.0/16", code="network_overlap", exit_code=4)
    cli.refused("network", "create", unique("pub"), "--cidr", "8.8.8.0/24", code="invalid_network", exit_code=2)
    assert cli.json("network", "update", net["id"], "--dhcp")["dhcp"] is True
    assert name in cli.ok("network", "show", net["id"])
    assert "deleted" in cli.ok("network", "delete", net["id"], "--yes")
    cli.refused("network", "show", net["id"], code="not_found", exit_code=3)


def test_moving_an_object_between_owners_is_refused(cli: Cli, server: Server) -> None:
    top = unique("acme")
    cli.json("tenant", "create", top)
    vol = cli.json("volume", "create", unique("v"), "--size", "64M", "--tenant", top)
    with server.client() as api:
        for path, body in (
            (f"/api/v1/volumes/{vol['id']}", {"tenant": None}),
            (f"/api/v1/tenants/{top}", {"parent": None}),
        ):
            before = api.get(path).json()
            answer = api.patch(path, json=body)
            assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_input", answer.text
            assert api.get(path).json() == before


def test_tokens_create_list_revoke_and_a_tenant_token_sees_its_subtree_only(cli: Cli) -> None:
    top, other = unique("acme"), unique("globex")
    cli.json("tenant", "create", top)
    cli.json("tenant", "create", "dev", "--parent", top)
    cli.json("tenant", "create", other)
    name = unique("acme-ops")
    made = cli.json("token", "create", name, "--role", "operator", "--tenant", top)
    assert made["role"] == "operator" and made["secret"].startswith("sk_")
    shown = cli.run("token", "create", unique("plain"), "--tenant", top)
    assert shown.returncode == 0 and shown.stdout.strip().startswith("sk_") and "shown this once" in shown.stderr
    assert made["secret"] not in cli.ok("token", "list")

    scoped = Cli({**cli.env, "SNAPKEEP_TOKEN": made["secret"]})
    assert [t["path"] for t in scoped.json("tenant", "list")] == [top, f"{top}/dev"]
    scoped.refused("tenant", "show", other, code="not_found", exit_code=3)
    scoped.refused("settings", "get", code="not_found", exit_code=3)
    scoped.refused("token", "create", unique("up"), "--role", "admin", code="forbidden", exit_code=5)
    child = scoped.json("tenant", "create", "team")  # beneath its own tenant
    assert child["path"] == f"{top}/team"
    assert name in [t["name"] for t in scoped.json("token", "list")]

    assert "revoked" in cli.ok("token", "revoke", name)
    scoped.refused("tenant", "list", code="unauthorized", exit_code=5)


def test_system_snapshots_of_a_tenant_from_the_cli(cli: Cli) -> None:
    """A tenant's own system snapshot: taken, listed, its contents shown, then one file, one VM (as new) and
    one VM's state (imported) taken out of it; partial snapshots pick by tag."""
    top, tag = unique("acme"), unique("pick")
    cli.json("tenant", "create", top)
    volume = cli.json("volume", "create", unique("docs"), "--size", "32M", "--tenant", top, "--tag", tag)
    Path(volume["path"], "note.txt").write_text("as it was\n")
    vm = cli.json("vm", "create", unique("web"), "--disk", "8M", "--nics", "0", "--tenant", top)

    taken = cli.json("snapshot", "take", "--system", "--tenant", top, "--name", "sys1", "--public")
    snap = taken["result"]["snapshot"]
    assert (snap["kind"], snap["subject_name"], snap["private"]) == ("system", top, False)
    assert [s["id"] for s in cli.json("snapshot", "list", "--system", "--tenant", top)] == [snap["id"]]
    contents = cli.json("snapshot", "contents", snap["id"])
    assert [t["path"] for t in contents["tenants"]] == [top] and contents["selection"] == "full"
    # addressed by name with its subject, as volume and VM snapshots are
    assert cli.json("snapshot", "show", "sys1", "--system", "--tenant", top)["id"] == snap["id"]
    assert cli.json("snapshot", "contents", "sys1", "--system", "--tenant", top) == contents
    cli.refused("snapshot", "show", "sys1", "--system", code="not_found", exit_code=3)  # not the system's
    cli.refused("snapshot", "show", "sys1", "--system", "--vm", vm["name"], code="invalid_input", exit_code=2)
    by_parent = cli.json("snapshot", "take", "--tenant", top, "--name", "t1")["result"]["snapshot"]
    assert cli.json("snapshot", "show", "t1", "--tenant", top)["id"] == by_parent["id"]
    cli.ok("snapshot", "delete", "t1", "--tenant", top)
    cli.refused("snapshot", "show", by_parent["id"], code="not_found", exit_code=3)
    assert [v["name"] for v in contents["vms"]] == [vm["name"]]
    assert [v["name"] for v in contents["volumes"]] == [volume["name"]]
    table = cli.ok("snapshot", "contents", snap["id"])
    assert vm["name"] in table and "was off" in table and volume["name"] in table

    Path(volume["path"], "note.txt").write_text("changed\n")
    cli.ok("snapshot", "extract", snap["id"], "note.txt", "--volume", volume["name"])
    assert Path(volume["path"], "note.txt").read_text() == "as it was\n"
    assert "note.txt" in cli.ok("snapshot", "browse", snap["id"], "--volume", volume["name"])

    copy = cli.json("snapshot", "restore", snap["id"], "--vm", vm["name"], "--as-new")
    assert copy["result"]["vm"] == f"{vm['name']} (1)"
    assert cli.json("vm", "show", copy["result"]["vm_id"])["tenant_id"] == vm["tenant_id"]
    imported = cli.json("snapshot", "import", snap["id"], "--vm", vm["name"])["result"]["snapshot"]
    assert (imported["kind"], imported["subject_id"], imported["name"]) == ("vm", vm["id"], "sys1")
    cli.refused("snapshot", "import", snap["id"], "--vm", vm["name"], code="name_clash", exit_code=4)
    cli.refused("snapshot", "restore", snap["id"], "--vm", unique("nope"), "--as-new", code="not_found", exit_code=3)

    partial = cli.json("snapshot", "take", "--system", "--name", unique("tagged"), "--include-tag", tag)
    picked = cli.json("snapshot", "contents", partial["result"]["snapshot"]["id"])
    assert [v["name"] for v in picked["volumes"]] == [volume["name"]] and picked["vms"] == []
    assert picked["selection"] == f"partial: only objects tagged {tag}"
    cli.ok("snapshot", "delete", partial["result"]["snapshot"]["id"])
    cli.refused(
        "snapshot", "take", "--system", "--name", "x", "--include-tag", "a", "--exclude-tag", "b",
        code="invalid_input", exit_code=2,
    )  # fmt: skip
    cli.refused("snapshot", "take", "--system", "--vm", vm["name"], "--name", "x", code="invalid_input", exit_code=2)
    cli.refused("snapshot", "take", "--volume", volume["id"], "--name", "x", "--private", code="invalid_input",
                exit_code=2)  # fmt: skip


def test_every_restore_out_of_a_system_snapshot_from_the_cli(cli: Cli) -> None:
    """The restore rows of a system snapshot, each from the CLI: one volume over itself with its settings,
    one VM as new under a given name with its MACs kept, one tenant as new (``<name> (n)``), a tenant
    snapshot (taken by the parent) over its tenant, and a tenant's own system snapshot over its whole
    subtree; ``--exclude-tag`` alone leaves out what carries the tag."""
    top, tag = unique("shop"), unique("skip")
    cli.json("tenant", "create", top)
    net = cli.json("network", "create", unique("lan"), "--cidr", "10.219.44.0/24", "--tenant", top)["name"]
    volume = cli.json("volume", "create", unique("data"), "--size", "32M", "--tenant", top)
    scratch = cli.json("volume", "create", unique("tmp"), "--size", "32M", "--tenant", top, "--tag", tag)
    vm = cli.json("vm", "create", unique("app"), "--disk", "8M", "--nic", net, "--tenant", top)
    Path(volume["path"], "note.txt").write_text("as it was\n")

    taken = cli.json("snapshot", "take", "--system", "--name", unique("sys"), "--exclude-tag", tag)["result"]
    snap = taken["snapshot"]["id"]
    contents = cli.json("snapshot", "contents", snap)
    assert contents["selection"] == f"partial: all but objects tagged {tag}"
    names = {v["name"] for v in contents["volumes"]}
    assert volume["name"] in names and scratch["name"] not in names

    Path(volume["path"], "note.txt").write_text("changed\n")
    cli.json("volume", "update", volume["id"], "--description", "changed", "--size", "48M")
    over = cli.json("snapshot", "restore", snap, "--volume", volume["id"], "--mode", "data_and_settings")
    assert over["status"] == "succeeded" and over["result"]["pre_restore_snapshot_id"]
    restored = cli.json("volume", "show", volume["id"])
    assert (restored["description"], restored["size_limit"]) == (volume["description"], volume["size_limit"])
    assert Path(volume["path"], "note.txt").read_text() == "as it was\n"

    copy_name = unique("copy")
    copy = cli.json("snapshot", "restore", snap, "--vm", vm["name"], "--new-name", copy_name, "--preserve-macs")
    kept = cli.json("vm", "show", copy["result"]["vm_id"])
    assert (kept["name"], kept["macs"], kept["tenant_id"]) == (copy_name, vm["macs"], vm["tenant_id"])
    cli.ok("vm", "delete", kept["id"], "--yes")  # its MACs are the original's: not left beside it

    assert cli.json("snapshot", "restore", snap, "--tenant", top, "--as-new")["result"]["tenant"] == f"{top} (1)"

    of_tenant = cli.json("snapshot", "take", "--tenant", top, "--name", unique("parents"))["result"]["snapshot"]
    assert (of_tenant["kind"], of_tenant["subject_name"]) == ("tenant", top)
    cli.ok("volume", "delete", scratch["id"], "--yes")
    cli.json("snapshot", "restore", of_tenant["id"])  # the tenant is off: its subtree as it was
    assert scratch["id"] in {v["id"] for v in cli.json("volume", "list", "--tenant", top)}

    own = cli.json("snapshot", "take", "--system", "--tenant", top, "--name", unique("own"))["result"]["snapshot"]
    made_since = cli.json("volume", "create", unique("later"), "--size", "16M", "--tenant", top)
    whole = cli.json("snapshot", "restore", own["id"])
    assert whole["status"] == "succeeded" and whole["result"]["pre_restore_snapshot_id"]
    assert made_since["id"] not in {v["id"] for v in cli.json("volume", "list", "--tenant", top)}


def test_the_specs_take_line_names_the_snapshot_itself(fs: Mounted) -> None:
    """SPEC §6 writes ``snapkeep snapshot take --system --never --immutable``, without a name: the snapshot
    is named ``manual_<YYYYMMDD>_<HHMMSS>`` (UTC), and a second one in the same second gets ``_2``. On a
    service of its own: an immutable snapshot of the whole system stays for good."""
    data_dir = make_traversable_tmp("snapkeep-spec-take-")
    server = start_server(data_dir, fs.new_dir("spec-take-pool"))
    try:
        cli = Cli(server.cli_env())
        first = cli.json("snapshot", "take", "--system", "--never", "--immutable")["result"]["snapshot"]
        second = cli.json("snapshot", "take", "--system", "--never", "--immutable")["result"]["snapshot"]
    finally:
        stop_server(server)
        shutil.rmtree(data_dir, ignore_errors=True)

    assert (first["kind"], first["subject_id"], first["expires_at"], first["immutable"]) == (
        "system",
        "system",
        None,
        True,
    )
    assert re.fullmatch(r"manual_\d{8}_\d{6}", first["name"]), first["name"]
    assert second["name"] != first["name"]
    assert re.fullmatch(r"manual_\d{8}_\d{6}(_2)?", second["name"]), second["name"]
    when = datetime.strptime(first["name"], "manual_%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    assert abs((datetime.fromisoformat(first["created_at"]) - when).total_seconds()) < 2
