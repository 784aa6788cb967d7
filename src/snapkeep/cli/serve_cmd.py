"""``snapkeep serve``: run the service (REST API, job runner, expiry sweep) in this process."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError

from snapkeep.config import Settings
from snapkeep.errors import InvalidInput


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

    run_service(_settings(data_dir=data_dir, listen=listen), create_loop_pool)


def _settings(**overrides: Any) -> Settings:
    """The service's settings from the environment, with the command line's ``overrides`` (``None`` = not
    given); a bad value becomes :class:`InvalidInput` naming the setting, not a traceback."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"SNAPKEEP_{'_'.join(str(part) for part in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"invalid setting: {problems}") from exc
