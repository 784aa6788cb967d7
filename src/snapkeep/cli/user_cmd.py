"""``snapkeep user``: the web UI's users (admins make, change and remove them).

A password is never an argument (it would sit in the shell's history and in every process listing): it is
asked for twice at a hidden prompt, or read from the first line of stdin with ``--password-stdin``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import JsonObject, connect
from snapkeep.cli.render import JsonOption, LimitOption
from snapkeep.errors import InvalidInput
from snapkeep.model.principal import Role

app = typer.Typer(help="Users of the web UI: a role and a scope (the system or one tenant).", no_args_is_help=True)

Ref = Annotated[str, typer.Argument(metavar="NAME|ID", help="The user's name or id.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin (for scripts).")
]


def _password(from_stdin: bool) -> str:
    """The password, from stdin's first line or a hidden prompt asked twice."""
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInput("--password-stdin: stdin held no password")
        return line
    prompted: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return prompted


def _row(user: JsonObject) -> list[str]:
    return [
        user["id"],
        user["name"],
        user["role"],
        user["tenant_id"] or "system",
        render.local_time(user["created_at"]),
    ]


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Name of the new user (unique; what they log in with).")],
    role: Annotated[Role, typer.Option(help="admin, operator or viewer.")] = Role.VIEWER,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Scope it to this tenant (id, name or path); default: your own.")
    ] = None,
    password_stdin: PasswordStdin = False,
    as_json: JsonOption = False,
) -> None:
    """Make a user who can log in to the web UI."""
    body = {"name": name, "password": _password(password_stdin), "role": role.value, "tenant": tenant}
    user: JsonObject = connect().post("users", body=body)
    if as_json:
        render.print_json(user)
        return
    render.say(f"user {user['name']!r} ({user['role']}) created: {user['id']}")


@app.command("list")
def list_users(limit: LimitOption = None, as_json: JsonOption = False) -> None:
    """The users of your scope (never their passwords)."""
    users = connect().listing("users", limit=limit)
    if as_json:
        render.print_json(users)
        return
    render.table(["ID", "NAME", "ROLE", "SCOPE", "CREATED"], (_row(u) for u in users))


@app.command("show")
def show(ref: Ref, as_json: JsonOption = False) -> None:
    """One user."""
    user: JsonObject = connect().get("users", ref)
    if as_json:
        render.print_json(user)
        return
    render.details(zip(["id", "name", "role", "scope", "created"], _row(user), strict=True))


@app.command("update")
def update(
    ref: Ref,
    role: Annotated[Role | None, typer.Option(help="A new role.")] = None,
    new_password: Annotated[bool, typer.Option("--new-password", help="Set a new password (asked for).")] = False,
    password_stdin: PasswordStdin = False,
    as_json: JsonOption = False,
) -> None:
    """Change a user's role and/or password; their web sessions end either way."""
    body: JsonObject = {}
    if role is not None:
        body["role"] = role.value
    if new_password or password_stdin:
        body["password"] = _password(password_stdin)
    if not body:
        raise InvalidInput("nothing to change: give --role, --new-password or --password-stdin")
    user: JsonObject = connect().patch("users", ref, body=body)
    if as_json:
        render.print_json(user)
        return
    render.say(f"user {user['name']!r} updated ({user['role']}); their sessions have ended")


@app.command("delete")
def delete(ref: Ref) -> None:
    """Remove a user: their web sessions end at once."""
    connect().delete("users", ref)
    render.say(f"user {ref!r} deleted")
