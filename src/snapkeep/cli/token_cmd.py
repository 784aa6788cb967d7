"""``snapkeep token``: make, list and revoke API tokens (the secret is shown once, when made)."""

from __future__ import annotations

from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import JsonObject, connect
from snapkeep.cli.render import JsonOption, LimitOption
from snapkeep.model.principal import Role

app = typer.Typer(help="API tokens: a role and a scope (the system or one tenant).", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Name of the new token (unique).")],
    role: Annotated[Role, typer.Option(help="At most your own role.")] = Role.VIEWER,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Scope it to this tenant (id, name or path); default: your own.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Make a token and print its secret (shown this once)."""
    token: JsonObject = connect().post("tokens", body={"name": name, "role": role.value, "tenant": tenant})
    if as_json:
        render.print_json(token)
        return
    render.note(f"token {token['name']!r} ({token['role']}) created: {token['id']}; its secret, shown this once:")
    render.say(token["secret"])


@app.command("list")
def list_tokens(limit: LimitOption = None, as_json: JsonOption = False) -> None:
    """The tokens of your scope (never their secrets)."""
    tokens = connect().listing("tokens", limit=limit)
    if as_json:
        render.print_json(tokens)
        return
    render.table(
        ["ID", "NAME", "ROLE", "SCOPE", "CREATED"],
        (
            [t["id"], t["name"], t["role"], t["tenant_id"] or "system", render.local_time(t["created_at"])]
            for t in tokens
        ),
    )


@app.command("revoke")
def revoke(ref: Annotated[str, typer.Argument(metavar="NAME|ID", help="The token's name or id.")]) -> None:
    """Revoke a token: its secret stops working at once."""
    connect().request("DELETE", "tokens", ref)
    render.say(f"token {ref!r} revoked")
