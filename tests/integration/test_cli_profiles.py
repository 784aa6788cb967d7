"""``snapkeep profile`` and ``snapkeep scheduler``, run as real subprocesses against the session's running
service: a profile is built period by period, checked as it is saved, assigned, previewed, shown on the
scheduler's status and deleted; a tenant's token sees and assigns only its own. Every profile, volume and
tenant a test makes is deleted after it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Server
from tests.integration.test_cli import Cli, unique


@pytest.fixture
def cli(server: Server) -> Iterator[Cli]:
    with server.client() as api:
        before = {p["id"] for p in api.get("/api/v1/profiles").json()}
        volumes = {v["id"] for v in api.get("/api/v1/volumes").json()}
        tenants = {t["id"] for t in api.get("/api/v1/tenants").json()}
        yield Cli(server.cli_env())
        for profile in api.get("/api/v1/profiles").json():
            if profile["id"] not in before:
                assert api.delete(f"/api/v1/profiles/{profile['id']}", params={"detach": True}).status_code == 204
        for volume in api.get("/api/v1/volumes").json():
            if volume["id"] not in volumes:
                api.delete(f"/api/v1/volumes/{volume['id']}", params={"wait": 30})
        for tenant in api.get("/api/v1/tenants").json():
            if tenant["depth"] == 0 and tenant["id"] not in tenants:
                api.delete(f"/api/v1/tenants/{tenant['id']}", params={"wait": 30, "force": True})


def test_a_profile_built_assigned_previewed_and_deleted(cli: Cli) -> None:
    name, volume = unique("nightly"), unique("docs")
    made = cli.json("profile", "create", name, "--timezone", "Europe/Berlin", "--description", "nights")
    assert made["periods"] == [] and made["timezone"] == "Europe/Berlin"
    cli.refused(
        "profile",
        "period",
        "add",
        name,
        "bad",
        "--frequency",
        "daily",
        "--minute",
        "61",
        code="invalid_input",
        exit_code=2,
    )
    cli.refused(
        "profile",
        "period",
        "add",
        name,
        "feb",
        "--frequency",
        "yearly",
        "--month",
        "2",
        "--day-of-month",
        "30",
        code="invalid_schedule",
        exit_code=2,
    )
    saved = cli.json(
        "profile",
        "period",
        "add",
        name,
        "daily",
        "--frequency",
        "daily",
        "--hour",
        "2",
        "--minute",
        "30",
        "--retention",
        "7d",
    )
    [daily] = saved["periods"]
    assert daily["estimate"] == 7 and "02:30" in daily["runs"] and saved["warnings"] == []
    monthly = cli.json(
        "profile",
        "period",
        "add",
        name,
        "monthly",
        "--frequency",
        "monthly",
        "--day-of-month",
        "31",
        "--retention",
        "1y",
        "--immutable",
    )["periods"]
    assert "last day" in next(p["runs"] for p in monthly if p["name"] == "monthly")
    shown = cli.ok("profile", "show", name)
    assert "daily" in shown and "monthly" in shown and "assigned to: nothing" in shown

    cli.json("volume", "create", volume, "--size", "64M")
    assigned = cli.json("profile", "assign", name, "--volume", volume)
    assert assigned["subject_type"] == "volume" and assigned["subject_name"] == volume
    status = [e for e in cli.json("scheduler", "status") if e["subject_name"] == volume]
    assert sorted(e["period"] for e in status) == ["daily", "monthly"]
    assert all(e["next_run"] and not e["running"] and e["failures"] == 0 for e in status)
    assert volume in cli.ok("scheduler", "status")

    when = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    planned = cli.json("profile", "preview", name, "--at", when, "--volume", volume)
    dailies = [p for p in planned if p["period"] == "daily"]
    assert len(dailies) == 7 and all(not p["existing"] for p in planned)  # a week of nightly snapshots
    assert all(p["name"].startswith("daily_") for p in dailies)

    cli.refused("profile", "delete", name, "--yes", code="conflict", exit_code=4)  # still assigned
    assert name in cli.ok("profile", "delete", name, "--detach", "--yes")
    assert [e for e in cli.json("scheduler", "status") if e["subject_name"] == volume] == []


def test_a_tenant_token_sees_and_assigns_only_its_own(cli: Cli, server: Server) -> None:
    top, sibling, system_profile = unique("acme"), unique("other"), unique("sys")
    cli.json("tenant", "create", top)
    cli.json("tenant", "create", sibling)
    cli.json("profile", "create", system_profile)
    theirs = cli.json("volume", "create", unique("v"), "--size", "64M", "--tenant", sibling)
    token = cli.json("token", "create", unique("acme-op"), "--role", "operator", "--tenant", top)["secret"]
    tenant_cli = Cli({**server.cli_env(), "SNAPKEEP_TOKEN": token})

    own = tenant_cli.json("profile", "create", unique("mine"))
    tenant_cli.json("profile", "period", "add", own["id"], "d", "--frequency", "daily", "--retention", "2d")
    assert [p["id"] for p in tenant_cli.json("profile", "list")] == [own["id"]]  # not the system's
    tenant_cli.refused("profile", "show", system_profile, code="not_found", exit_code=3)
    tenant_cli.refused("profile", "assign", own["id"], "--volume", theirs["id"], code="not_found", exit_code=3)
    tenant_cli.refused("profile", "assign", own["id"], "--system", code="not_found", exit_code=3)
    assert tenant_cli.json("profile", "assign", own["id"], "--tenant", top)["subject_type"] == "tenant"
    assert [e["subject_name"] for e in tenant_cli.json("scheduler", "status")] == [top]
