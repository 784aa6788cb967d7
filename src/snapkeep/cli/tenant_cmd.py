"""``snapkeep tenant``: create, list (as a tree), show, update, start, stop and delete tenants.

A tenant is named by id, by name (when unique), or by its path of names (``acme/dev``). Power changes
and deletes are jobs: the command waits for them with a progress bar unless ``--no-wait``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import ApiClient, JsonObject, connect
from snapkeep.cli.job_cmd import NoWaitOption, follow
from snapkeep.cli.render import JsonOption, LimitOption
from snapkeep.errors import InvalidInput, NotFound

app = typer.Typer(help="Tenants: isolated virtual data centres, nested inside the system or each other.")

RefArgument = Annotated[str, typer.Argument(metavar="TENANT", help="The tenant's id, name or path (acme/dev).")]
TagOption = Annotated[list[str] | None, typer.Option("--tag", help="A tag to give it (repeatable).")]


def tenant_segment(api: ApiClient, ref: str) -> str:
    """What names the tenant in a URL: its id for a path of names (a URL segment cannot hold ``/``)."""
    if "/" not in ref:
        return ref
    for tenant in api.get("tenants"):
        if tenant["path"] == ref:
            return str(tenant["id"])
    raise NotFound(f"no tenant at {ref!r}", tenant=ref)


def _show(tenant: JsonObject) -> None:
    render.details(
        [
            ("id", tenant["id"]),
            ("name", tenant["name"]),
            ("path", tenant["path"]),
            ("parent", tenant["parent_id"] or "- (the system)"),
            ("description", tenant["description"]),
            ("online", "yes" if tenant["online"] else "no"),
            ("tags", ", ".join(tenant["tags"]) or "-"),
            ("created", render.local_time(tenant["created_at"])),
        ]
    )


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Name of the new tenant (unique among its siblings).")],
    parent: Annotated[
        str | None, typer.Option(help="The tenant to create it in (default: the system, or your own tenant).")
    ] = None,
    description: Annotated[str, typer.Option(help="Free text shown in listings.")] = "",
    tags: TagOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a tenant."""
    body: JsonObject = {"name": name, "description": description, "parent": parent, "tags": tags or []}
    tenant: JsonObject = connect().post("tenants", body=body)
    if as_json:
        render.print_json(tenant)
    else:
        render.say(f"tenant {tenant['path']!r} created: {tenant['id']}")


@app.command("list")
def list_tenants(limit: LimitOption = None, as_json: JsonOption = False) -> None:
    """Every tenant you see, as a tree."""
    tenants = connect().listing("tenants", limit=limit)
    if as_json:
        render.print_json(tenants)
        return
    render.table(
        ["ID", "NAME", "ONLINE", "TAGS", "DESCRIPTION"],
        (
            [
                t["id"],
                "  " * t["depth"] + t["name"],
                "yes" if t["online"] else "no",
                ",".join(t["tags"]),
                t["description"],
            ]
            for t in tenants
        ),
    )


@app.command("show")
def show(ref: RefArgument, as_json: JsonOption = False) -> None:
    """One tenant."""
    api = connect()
    tenant: JsonObject = api.get("tenants", tenant_segment(api, ref))
    if as_json:
        render.print_json(tenant)
    else:
        _show(tenant)


@app.command("update")
def update(
    ref: RefArgument,
    name: Annotated[str | None, typer.Option(help="Rename the tenant.")] = None,
    description: Annotated[str | None, typer.Option(help="Replace the description.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a tenant's name or description (moving it to another parent is not offered)."""
    body = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
    if not body:
        raise InvalidInput("nothing to change: give --name or --description")
    api = connect()
    tenant: JsonObject = api.patch("tenants", tenant_segment(api, ref), body=body)
    if as_json:
        render.print_json(tenant)
    else:
        _show(tenant)


@app.command("start")
def start(ref: RefArgument, no_wait: NoWaitOption = False, as_json: JsonOption = False) -> None:
    """Power the tenant on: start every VM of it and of the tenants beneath it."""
    api = connect()
    job: JsonObject = api.post("tenants", tenant_segment(api, ref), "start")
    follow(api, job, no_wait=no_wait, as_json=as_json, done=lambda r: f"started: {', '.join(r['started']) or '-'}")


@app.command("stop")
def stop(
    ref: RefArgument,
    force: Annotated[bool, typer.Option("--force", help="Power off at once instead of shutting down.")] = False,
    timeout: Annotated[float, typer.Option(metavar="SECONDS", help="How long each VM may take to shut down.")] = 60.0,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Power the tenant off: stop every VM of it and of the tenants beneath it."""
    api = connect()
    job: JsonObject = api.post("tenants", tenant_segment(api, ref), "stop", body={"force": force, "timeout": timeout})
    follow(api, job, no_wait=no_wait, as_json=as_json, done=lambda r: f"stopped: {', '.join(r['stopped']) or '-'}")


@app.command("delete")
def delete(
    ref: RefArgument,
    force: Annotated[bool, typer.Option("--force", help="Delete even while its VMs run.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a tenant with everything beneath it: tenants, VMs, volumes, networks, settings and snapshots."""
    if not yes:
        typer.confirm(f"Delete tenant {ref!r} and everything in it?", abort=True)
    api = connect()
    job: JsonObject = api.delete("tenants", tenant_segment(api, ref), force=force)
    follow(
        api,
        job,
        no_wait=no_wait,
        as_json=as_json,
        done=lambda r: (
            f"tenant {job['params']['tenant']!r} deleted ({r['tenants']} tenant(s), {r['vms']} VM(s), "
            f"{r['volumes']} volume(s), {r['networks']} network(s), {r['snapshots']} snapshot(s))"
        ),
    )
