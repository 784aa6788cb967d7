"""``snapkeep``: the command line. ``main()`` is the one place errors become messages and exit codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar

import typer

from snapkeep import __version__
from snapkeep.cli.lazy import LazyGroup
from snapkeep.errors import SnapkeepError


class _Commands(LazyGroup):
    """Every command of ``snapkeep``, each imported only when it is run (see :mod:`snapkeep.cli.lazy`)."""

    lazy: ClassVar[Mapping[str, str]] = {
        "serve": "snapkeep.cli.serve_cmd:serve",
        "volume": "snapkeep.cli.volume_cmd:app",
        "vm": "snapkeep.cli.vm_cmd:app",
        "snapshot": "snapkeep.cli.snapshot_cmd:app",
        "job": "snapkeep.cli.job_cmd:app",
        "tenant": "snapkeep.cli.tenant_cmd:app",
        "network": "snapkeep.cli.network_cmd:app",
        "settings": "snapkeep.cli.settings_cmd:app",
        "tag": "snapkeep.cli.tag_cmd:app",
        "token": "snapkeep.cli.token_cmd:app",
        "user": "snapkeep.cli.user_cmd:app",
        "audit": "snapkeep.cli.audit_cmd:app",
        "profile": "snapkeep.cli.profile_cmd:app",
        "scheduler": "snapkeep.cli.profile_cmd:scheduler_app",
    }


app = typer.Typer(
    cls=_Commands,
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


def main() -> None:
    """Run the CLI; a refusal prints ``error: <message> (<code>)`` on stderr and exits with its code."""
    try:
        app()
    except SnapkeepError as exc:
        typer.echo(f"error: {exc.message} ({exc.code})", err=True)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
