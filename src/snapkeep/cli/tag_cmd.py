"""``snapkeep tag``: add and remove tags on VMs, volumes and tenants."""

from __future__ import annotations

from typing import Annotated

import typer

from snapkeep.cli import render
from snapkeep.cli.client import connect
from snapkeep.cli.tenant_cmd import tenant_segment
from snapkeep.model.tags import TagKind

app = typer.Typer(help="Tags on VMs, volumes and tenants.", no_args_is_help=True)

KindArgument = Annotated[TagKind, typer.Argument(help="What is tagged.")]
NameArgument = Annotated[str, typer.Argument(metavar="NAME|ID", help="Its name or id (a tenant's path too).")]
TagArgument = Annotated[str, typer.Argument(help="The tag: letters, digits and . _ : = -")]


def _change(method: str, kind: TagKind, name: str, tag: str) -> None:
    api = connect()
    ref = tenant_segment(api, name) if kind is TagKind.TENANT else name
    tags = api.request(method, "tags", kind.value, ref, tag)["tags"]
    render.say(f"{kind.value} {name!r}: {', '.join(tags) or 'no tags'}")


@app.command("add")
def add(kind: KindArgument, name: NameArgument, tag: TagArgument) -> None:
    """Tag an object (nothing changes if it has the tag already)."""
    _change("PUT", kind, name, tag)


@app.command("remove")
def remove(kind: KindArgument, name: NameArgument, tag: TagArgument) -> None:
    """Remove a tag (nothing changes if the object does not have it)."""
    _change("DELETE", kind, name, tag)
