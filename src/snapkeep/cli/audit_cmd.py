"""``snapkeep audit``: read the audit log of the caller's scope, newest first, with the API's filters."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import connect
from snapkeep.cli.render import JsonOption, LimitOption

app = typer.Typer(help="The audit log: what was done or refused, by whom, to what.", no_args_is_help=True)


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"


@app.command("list")
def list_entries(
    actor: Annotated[str | None, typer.Option(help="Only this actor's entries (exact name).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action (exact), e.g. user.create, login.")] = None,
    target: Annotated[
        str | None, typer.Option(help="Only targets containing this (case-insensitive), e.g. user:alice.")
    ] = None,
    outcome: Annotated[Outcome | None, typer.Option(help="Only entries that ended so.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only entries at or after this ISO 8601 time (UTC default).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Only entries before this ISO 8601 time (UTC default).")] = None,
    limit: LimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """The entries that match every filter given, newest first (all of them, page by page, unless --limit)."""
    filters = {"actor": actor, "action": action, "target": target, "since": since, "until": until}
    entries = connect().listing("audit", limit=limit, outcome=outcome and outcome.value, **filters)
    if as_json:
        render.print_json(entries)
        return
    render.table(
        ["ID", "AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "DETAIL"],
        (
            [str(e["id"]), render.local_time(e["at"]), e["actor"], e["action"], e["target"], e["outcome"], e["detail"]]
            for e in entries
        ),
    )
