"""``snapkeep settings``: the system's settings document, or a tenant's with ``--tenant``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from snapkeep.cli import render
from snapkeep.cli.client import ApiClient, connect
from snapkeep.cli.render import JsonOption
from snapkeep.cli.tenant_cmd import tenant_segment
from snapkeep.cli.volume_cmd import _setting
from snapkeep.errors import InvalidInput

app = typer.Typer(help="System and tenant settings (key/value documents).", no_args_is_help=True)

TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="A tenant's settings (id, name or path) instead of the system's.")
]


def _path(api: ApiClient, tenant: str | None) -> tuple[str, ...]:
    return ("settings",) if tenant is None else ("tenants", tenant_segment(api, tenant), "settings")


def _print(document: dict[str, Any], as_json: bool) -> None:
    if as_json:
        render.print_json(document)
    else:
        render.table(["KEY", "VALUE"], ([key, render.compact(value)] for key, value in sorted(document.items())))


@app.command("get")
def get(
    key: Annotated[str | None, typer.Argument(help="One key (default: the whole document).")] = None,
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the settings (a tenant's include the defaults of the keys snapkeep reads)."""
    api = connect()
    document: dict[str, Any] = api.get(*_path(api, tenant))
    if key is not None:
        if key not in document:
            raise InvalidInput(f"no setting {key!r}", key=key)
        document = {key: document[key]}
    _print(document, as_json)


@app.command("set")
def set_(
    assignments: Annotated[
        list[str], typer.Argument(metavar="KEY=VALUE...", help="VALUE is JSON if it parses as JSON, else text.")
    ],
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set settings (the others are kept)."""
    api = connect()
    _print(api.patch(*_path(api, tenant), body=dict(_setting(a) for a in assignments)), as_json)


@app.command("unset")
def unset(
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="Keys to remove.")],
    tenant: TenantOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove settings (a tenant's setting that snapkeep reads goes back to its default)."""
    api = connect()
    _print(api.patch(*_path(api, tenant), body=dict.fromkeys(keys)), as_json)
