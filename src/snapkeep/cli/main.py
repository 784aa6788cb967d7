"""``snapkeep``: the command line. ``main()`` is the one place errors become messages and exit codes."""

from __future__ import annotations

from typing import Annotated

import typer

from snapkeep import __version__
from snapkeep.cli import (
    audit_cmd,
    job_cmd,
    network_cmd,
    profile_cmd,
    serve_cmd,
    settings_cmd,
    snapshot_cmd,
    tag_cmd,
    tenant_cmd,
    token_cmd,
    user_cmd,
    vm_cmd,
    volume_cmd,
)
from snapkeep.errors import SnapkeepError

app = typer.Typer(
    name="snapkeep",
    help="Instant snapshots and restores for KVM/libvirt hosts (a client of the snapkeep service).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold the API token
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"snapkeep {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Instant snapshots and restores for KVM/libvirt hosts (a client of the snapkeep service)."""


app.command("serve")(serve_cmd.serve)
app.add_typer(volume_cmd.app, name="volume")
app.add_typer(vm_cmd.app, name="vm")
app.add_typer(snapshot_cmd.app, name="snapshot")
app.add_typer(job_cmd.app, name="job")
app.add_typer(tenant_cmd.app, name="tenant")
app.add_typer(network_cmd.app, name="network")
app.add_typer(settings_cmd.app, name="settings")
app.add_typer(tag_cmd.app, name="tag")
app.add_typer(token_cmd.app, name="token")
app.add_typer(user_cmd.app, name="user")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(profile_cmd.app, name="profile")
app.add_typer(profile_cmd.scheduler_app, name="scheduler")


def main() -> None:
    """Run the CLI; a refusal prints ``error: <message> (<code>)`` on stderr and exits with its code."""
    try:
        app()
    except SnapkeepError as exc:
        typer.echo(f"error: {exc.message} ({exc.code})", err=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
