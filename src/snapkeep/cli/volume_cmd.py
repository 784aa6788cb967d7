"""``snapkeep volume``: create, list, show, update and delete NAS volumes."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from snapkeep.cli import render
from snapkeep.cli.client import JsonObject, connect
from snapkeep.cli.job_cmd import NoWaitOption, follow
from snapkeep.cli.render import JsonOption, LimitOption
from snapkeep.errors import InvalidInput

app = typer.Typer(help="NAS volumes: file trees with a size limit.", no_args_is_help=True)

RefArgument = Annotated[str, typer.Argument(metavar="NAME|ID", help="The volume's name or id.")]


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Name of the new volume.")],
    size: Annotated[
        str | None,
        typer.Option(
            "--size",
            help="Size limit: bytes, or e.g. 512M, 10G, 1T. Required where the pool enforces limits; "
            "elsewhere the pool's size by default.",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="Free text shown in listings.")] = "",
    tenant: Annotated[str | None, typer.Option("--tenant", help="The owning tenant (id, name or path).")] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="A tag to give it (repeatable).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an empty volume."""
    body: JsonObject = {"name": name, "description": description, "tenant": tenant, "tags": tags or []}
    if size is not None:
        body["size_limit"] = size
    volume: JsonObject = connect().post("volumes", body=body)
    if as_json:
        render.print_json(volume)
    else:
        render.say(
            f"volume {volume['name']!r} created: {volume['id']}" + (f" at {volume['path']}" if volume["path"] else "")
        )


@app.command("list")
def list_volumes(
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only those this tenant owns itself.")] = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """All volumes, by name."""
    volumes = connect().listing("volumes", limit=limit, tenant=tenant)
    if as_json:
        render.print_json(volumes)
        return
    render.table(
        ["ID", "NAME", "SIZE LIMIT", "CREATED", "OWNER", "TAGS", "DESCRIPTION"],
        (
            [
                v["id"],
                v["name"],
                render.size(v["size_limit"]),
                render.local_time(v["created_at"]),
                v["tenant_id"] or "-",
                ",".join(v["tags"]),
                v["description"],
            ]
            for v in volumes
        ),
    )


def _show(volume: JsonObject) -> None:
    render.details(
        [
            ("id", volume["id"]),
            ("name", volume["name"]),
            ("description", volume["description"]),
            ("size limit", render.size(volume["size_limit"])),
            ("limit enforced", "yes" if volume["limits_enforced"] else "no (this pool cannot hold volumes to a size)"),
            ("path", volume["path"] or "- (shown to system admins only)"),
            ("created", render.local_time(volume["created_at"])),
            ("settings", render.compact(volume["settings"])),
            ("owner", volume["tenant_id"] or "- (the system)"),
            ("tags", ", ".join(volume["tags"]) or "-"),
        ]
    )


@app.command("show")
def show(ref: RefArgument, as_json: JsonOption = False) -> None:
    """One volume, with the path its files live under."""
    volume: JsonObject = connect().get("volumes", ref)
    if as_json:
        render.print_json(volume)
    else:
        _show(volume)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _setting(assignment: str) -> tuple[str, Any]:
    """``KEY=VALUE``; VALUE is read as JSON when it is JSON (``true``, ``3``, ``[1]``, ``null`` to remove the
    key), else as text (so ``NaN``, which is not JSON, is the text "NaN")."""
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise InvalidInput(f"--set wants KEY=VALUE, got {assignment!r}", value=assignment)
    try:
        return key, json.loads(value, parse_constant=_not_json)
    except ValueError:
        return key, value


@app.command("update")
def update(
    ref: RefArgument,
    name: Annotated[str | None, typer.Option(help="Rename the volume.")] = None,
    description: Annotated[str | None, typer.Option(help="Replace the description.")] = None,
    size: Annotated[str | None, typer.Option("--size", help="New size limit, e.g. 20G.")] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Set one setting (repeatable); VALUE is JSON if it parses as JSON, else text; null removes it.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Change a volume's name, description, size limit or settings (other settings are kept)."""
    body: JsonObject = {
        key: value
        for key, value in {"name": name, "description": description, "size_limit": size}.items()
        if value is not None
    }
    if settings:
        body["settings"] = dict(_setting(s) for s in settings)
    if not body:
        raise InvalidInput("nothing to change: give --name, --description, --size or --set")
    volume: JsonObject = connect().patch("volumes", ref, body=body)
    if as_json:
        render.print_json(volume)
    else:
        _show(volume)


@app.command("delete")
def delete(
    ref: RefArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    no_wait: NoWaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete a volume with its data and all its snapshots (refused while one of them is immutable)."""
    if not yes:
        typer.confirm(f"Delete volume {ref!r}, its data and all its snapshots?", abort=True)
    api = connect()
    job: JsonObject = api.delete("volumes", ref)
    follow(
        api,
        job,
        no_wait=no_wait,
        as_json=as_json,
        done=lambda _result: f"volume {job['params']['volume']!r} deleted",
    )
