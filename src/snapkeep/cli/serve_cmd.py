"""``snapkeep serve``: run the service (REST API, job runner, expiry sweep) in this process."""

from __future__ import annotations

from typing import Annotated

import typer

from snapkeep.cli.settings import load
from snapkeep.config import Settings


def serve(
    data_dir: Annotated[
        str | None,
        typer.Option(metavar="DIR", help="State directory (env SNAPKEEP_DATA_DIR; default /var/lib/snapkeep)."),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(metavar="HOST:PORT", help="Where to listen (env SNAPKEEP_LISTEN; default 127.0.0.1:8470)."),
    ] = None,
    create_loop_pool: Annotated[
        bool,
        typer.Option(
            "--create-loop-pool",
            help="If the data directory is on neither btrfs nor XFS, keep the pool in a loop-mounted btrfs "
            "image there.",
        ),
    ] = False,
) -> None:
    """Run the snapkeep service; at first start it writes an admin token to DIR/admin.token."""
    from snapkeep.api.server import serve as run_service  # the server stack loads only for this command

    run_service(load(Settings, data_dir=data_dir, listen=listen), create_loop_pool)
